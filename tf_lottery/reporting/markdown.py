"""``report.md``: the recipe, the tables and the conclusions, as Markdown.

Numbers are percentages with two decimals; ``a ± b`` is mean ± sample std
(shown where there is more than one value, or where an event file gave a
std without a count).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tf_lottery.config import ExperimentConfig, branches
from tf_lottery.core import layout
from tf_lottery.reporting.collect import Experiment, OtherRun

# The terminal's cells, so report.md and the log print the same numbers.
from tf_lottery.reporting.console import NONE, cell, loss_cell, pct, points, threshold_pct
from tf_lottery.reporting.summary import ImpSection, InstabilitySection, SparseFamily


def yes_no(value: bool | None) -> str:
    return NONE if value is None else ("yes" if value else "no")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def _title(kind: str, label: str) -> str:
    return f"{kind} [{label}]" if label else kind


def describe(config: ExperimentConfig) -> str:
    """The recipe in one line: network, data, optimizer, schedule, length, seeds."""
    o, s, t, d = config.optimizer, config.schedule, config.train, config.data
    optimizer = o.name + (f" (momentum {o.momentum:g}{', Nesterov' if o.nesterov else ''})"
                          if o.name in ("momentum", "rmsprop") else "")
    schedule = f"lr {s.learning_rate:g} {s.kind}"
    if s.kind == "step" and s.drop_steps:
        schedule += f" ×{s.drop_factor:g} at {', '.join(map(str, s.drop_steps))}"
    if s.warmup_steps:
        schedule += f", {s.warmup_steps} warmup steps"
    extras = [f"{name} {value:g}" for name, value in (
        ("weight decay", o.weight_decay), ("label smoothing", o.label_smoothing),
        ("gradient clip", o.grad_clip_norm)) if value]
    return (f"{config.model.name} on {d.dataset} (augment {d.augment}); {optimizer}, "
            f"{schedule}{''.join(', ' + e for e in extras)}; batch {t.batch_size}, "
            f"T = {t.train_steps:,} steps; seeds: init {t.init_seed}, data order "
            f"{t.data_order_seed}, augment {t.augment_seed}")


def _analysis(c: ExperimentConfig) -> str:
    ic = c.instability
    return (f"{ic.children} children, {ic.interpolation_points} points on each path, "
            f"BatchNorm {ic.bn_mode}, child optimizer state {ic.child_optimizer_state}, "
            f"stability threshold {threshold_pct(ic.stability_threshold)}")


def _instability_line(e: Experiment) -> str:
    c = e.config
    return (f" Rewind steps k = {', '.join(map(str, c.train.rewind_steps))}; "
            f"{c.instability.replicates} replicate(s); {_analysis(c)}.")


def _imp_line(e: Experiment) -> str:
    c = e.config
    p = c.pruning
    line = (f" {p.levels} level(s) pruning {pct(p.prune_fraction)} of the remaining "
            f"weights ({p.scope}), rewind to k = {p.rewind_step} (optimizer "
            f"{p.rewind_optimizer})")
    if p.baselines:
        line += f"; baselines {', '.join(p.baselines)}"
    if p.instability:
        levels = ", ".join(map(str, p.instability_levels)) or "every level"
        line += f"; sparse instability at {levels} ({_analysis(c)})"
    return line + "."


def _accuracy_line(e: Experiment) -> str:
    if isinstance(e, OtherRun) and e.test_accuracy is not None:
        return f" Test accuracy {pct(e.test_accuracy)}."
    return ""


# What the recipe line adds for each experiment, by its --experiment value
# (any other: the run's test accuracy).
SETTINGS_LINES: dict[str, Callable[[Experiment], str]] = {
    "instability": _instability_line,
    "imp": _imp_line,
}


def _experiment_line(e: Experiment) -> str:
    c = e.config
    line = (f"- `{e.name}`: **{c.experiment}**, "
            f"{'complete' if e.complete else 'not finished'}, recipe `{c.recipe_hash()}`. "
            f"{describe(c)}.")
    line += SETTINGS_LINES.get(c.experiment, _accuracy_line)(e)
    if e.numerics:
        line += f" CPU numerics: {e.numerics}."
    return line


def recipe(experiments: Sequence[Experiment]) -> list[str]:
    return ["## Recipe", "", *(_experiment_line(e) for e in experiments), "",
            f"Full configurations: each experiment's `{layout.CONFIG_FILE}`.", ""]


def instability(sections: Sequence[InstabilitySection]) -> list[str]:
    out = ["## Instability of the dense network", "",
           "Error barrier max_α E(α) − ½(E(W₁) + E(W₂)) between children trained from W_k "
           f"with different SGD noise (figure: `{layout.INSTABILITY_FIGURE}`, paths: "
           f"`{layout.interpolation_figure('<k>')}`); the loss barrier is the same on the "
           "loss (cross-entropy, not in percent), from the same paths. Stability is judged "
           "on the test error barrier, as in the paper.", ""]
    for s in sections:
        out += [f"### {_title('dense', s.label)} — runs: {', '.join(s.runs)}", ""]
        if s.parent_accuracy:
            out += [f"Parents (trained from W_0 to T): test accuracy {cell(s.parent_accuracy)}.",
                    ""]
        rows = [[str(r.k), cell(r.barrier["test"]), cell(r.barrier["train"]),
                 yes_no(r.stable) + ("" if r.complete else " (partial)"),
                 cell(r.children_accuracy), loss_cell(r.loss_barrier, "test"),
                 loss_cell(r.loss_barrier, "train"), r.source] for r in s.rows]
        out += _table(["k", "test barrier", "train barrier",
                       f"stable (test < {threshold_pct(s.threshold)})", "children's test accuracy",
                       "test loss barrier", "train loss barrier", "read from"], rows)
        if s.stable_from is None:
            out.append("Not stable at the largest rewind step measured." if s.rows else
                       "No rewind step measured yet.")
        else:
            out.append(f"**Becomes stable at k = {s.stable_from}** (stable at every "
                       "measured k from there on).")
        if s.independent:
            out.append(f"Two independently initialized and trained networks: test barrier "
                       f"{cell(s.independent['test'])}, train barrier "
                       f"{cell(s.independent['train'])}; test loss barrier "
                       f"{loss_cell(s.independent_loss, 'test')}, train loss barrier "
                       f"{loss_cell(s.independent_loss, 'train')}.")
        out.append("")
    return out


def imp(sections: Sequence[ImpSection]) -> list[str]:
    out = ["## IMP with rewinding", "",
           f"Test accuracy of each level's subnetwork (figure: `{layout.IMP_FIGURE}`); "
           "density is the "
           "fraction of the prunable weights remaining.", ""]
    for s in sections:
        names = [n for n in branches.baseline_names() if any(n in r.baselines for r in s.rows)]
        sparse = any(r.barrier for r in s.rows)
        out += [f"### {_title(f'IMP, rewind to k = {s.rewind_step}', s.label)} — runs: "
                f"{', '.join(s.runs)}", ""]
        if s.dense:
            out += [f"Dense (level 0) test accuracy {cell(s.dense)}; matching: within "
                    f"τ = {points(s.tolerance)} below it ({s.tolerance_source}).", ""]
        header = ["level", "density", "test accuracy", "train accuracy", "matching",
                  *(h for n in names for h in (branches.get(n).title, "matching"))]
        if sparse:
            header += [f"test barrier at k = {s.rewind_step}", "train barrier",
                       f"stable (test < {threshold_pct(s.threshold)})"]
        measured = [n for n in names if any(n in r.baseline_barriers for r in s.rows)]
        header += [h for n in measured for h in (
            f"{branches.get(n).title}: test barrier", "train barrier", "stable")]
        rows = []
        for r in s.rows:
            row = [str(r.level), pct(r.density), cell(r.test_accuracy), cell(r.train_accuracy),
                   yes_no(r.matching if s.dense else None),
                   *(c for n in names for c in (
                       cell(r.baselines.get(n)),
                       yes_no(r.baseline_matching.get(n) if s.dense else None)))]
            if sparse:
                row += [cell(r.barrier["test"]) if r.barrier else NONE,
                        cell(r.barrier["train"]) if r.barrier else NONE, yes_no(r.stable)]
            for n in measured:
                found = r.baseline_barriers.get(n)
                row += [cell(found["test"]) if found else NONE,
                        cell(found["train"]) if found else NONE,
                        yes_no(r.baseline_stable.get(n))]
            rows.append(row)
        out += _table(header, rows)
        if s.sparsest_matching:
            m = s.sparsest_matching
            out += [f"**Matching down to {pct(m.density)} of the weights** (level {m.level}, "
                    f"test accuracy {cell(m.test_accuracy)}).", ""]
        elif s.dense:
            out += ["No pruned level is matching.", ""]
    return out


def stable_and_matching(instab: Sequence[InstabilitySection],
                        families: Sequence[SparseFamily]) -> list[str]:
    out = ["## When the network becomes stable and matching", ""]
    for s in instab:
        where = _title("dense network", s.label)
        out.append(f"- {where}: " + (f"stable from k = {s.stable_from}." if s.stable_from
                                     is not None else "not stable at the measured k."))
    for f in families:
        rows = [[str(r.k), cell(r.test_accuracy), yes_no(r.matching),
                 cell(r.barrier["test"]) if r.barrier else NONE, yes_no(r.stable),
                 yes_no(r.stable and r.matching if r.barrier else None)] for r in f.rows]
        where = _title(f"IMP subnetwork at level {f.level} ({pct(f.density)} of the weights)",
                       f.label)
        verdict = (f"stable and matching from k = {f.stable_and_matching_from}"
                   if f.stable_and_matching_from is not None
                   else "not stable and matching at the measured k")
        out += [f"- {where}: **{verdict}**.", ""]
        out += _table(["rewind step k", "test accuracy", "matching", "test barrier",
                       "stable", "stable and matching"], rows)
    if not instab and not families:
        out += ["No instability measured yet (instability experiment, or IMP with "
                "--instability).", ""]
    out.append("")
    return out


def missing(items: Sequence[str]) -> list[str]:
    out = ["## Missing", ""]
    out += [f"- {m}" for m in items] if items else ["Nothing: every experiment is complete."]
    return out + [""]


def figures(written: dict[str, str]) -> list[str]:
    return ["## Figures", "", *(f"- `{name}`: {what}" for name, what in written.items()), ""]


DEFINITIONS = """## Definitions

- **Error barrier** of a pair of networks W₁, W₂: max over α of E((1−α)·W₁ + α·W₂) minus
  the mean of E(W₁) and E(W₂), E being test (or train-subset) error, at the run's evenly
  spaced α. With several pairs it is mean ± std over pairs; with several replicates (or
  replicate runs, which differ only in their seeds) over the replicates' means.
- **Stable** at k: mean test barrier below the stability threshold (2 % in the paper).
  The network **becomes stable** at the smallest measured k from which every measured k
  is stable.
- **Matching**: test accuracy at least the dense network's minus τ; τ is one sample std
  of the dense accuracy over replicate runs where there are two or more (the paper's
  criterion), else `--matching_tolerance`.
- Rewind steps are on a symlog axis: k = 0 sits at the left end, one linear segment
  (as wide as the smallest positive k) before the first positive k.
"""


def document(title: str, parts: Sequence[list[str]]) -> str:
    lines = [f"# {title}", ""]
    for part in parts:
        lines += part
    return "\n".join(lines) + "\n" + DEFINITIONS
