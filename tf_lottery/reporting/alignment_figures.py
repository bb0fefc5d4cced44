"""The report's raw vs aligned barriers (instability experiments run with
``--align=weights``): a figure against k and a table.

How much of a measured barrier is permutation symmetry rather than
instability: beside each rewind step's raw barrier (children of one W_k) and
the independently trained pair's, the barrier after aligning the second
network of every pair to the first by weight matching
(``stability.aligned_paths``), with what the matching cost.

Read from the experiments' records (``results.json``, or the rewind points'
``k_<k>.json`` and the independent pairs' files of an unfinished one), one
row per experiment and rewind step; experiments are not pooled. Separate
from ``report.py``'s own figures so that the report only has to add this
section's figure, table and text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from matplotlib.figure import Figure

from tf_lottery.core import layout, records, store
from tf_lottery.core.layout import SPLITS
from tf_lottery.core.records import Stat
from tf_lottery.errors import CorruptFileError
from tf_lottery.reporting import collect
from tf_lottery.reporting.console import loss_cell
from tf_lottery.stability import barrier

FIGURE = layout.ALIGNED_BARRIER_FIGURE
FIGURE_TEXT = ("error barrier vs rewind step k before (raw) and after aligning the second "
               "network of each pair to the first by weight matching; dotted: "
               "independently trained networks")


@dataclasses.dataclass
class Row:
    """Raw and aligned barrier of one experiment at rewind step ``k`` (None:
    the independently trained parents), mean ± std as its records aggregate
    them, and the matching's cost over its pairs."""

    experiment: str
    k: int | None
    pairs: int
    raw: dict[str, Stat]
    aligned: dict[str, Stat]
    matching_s: Stat  # wall time of one pair's matching
    iterations: Stat  # its passes over the permutation groups
    raw_loss: dict[str, Stat] | None = None  # loss barriers (None: a pair has none)
    aligned_loss: dict[str, Stat] | None = None


@dataclasses.dataclass
class Section:
    rows: list[Row]
    figures: dict[str, Figure]
    described: dict[str, str]
    markdown: list[str]
    table: list[dict]


def _stat(values: Sequence[float]) -> Stat:
    return Stat.from_json(barrier.summarize(values))


def _row(name: str, k: int | None, pairs: list[records.PairRecord],
         raw: dict[str, Stat], aligned: dict[str, Stat]) -> Row:
    matchings = [p.aligned.matching for p in pairs if p.aligned]
    raw_loss = [p.loss_barrier for p in pairs]
    aligned_loss = [p.aligned.loss_barrier if p.aligned else None for p in pairs]
    return Row(name, k, len(pairs), raw, aligned,
               _stat([m.wall_time_s for m in matchings]),
               _stat([m.iterations for m in matchings]),
               _loss_stats(raw_loss), _loss_stats(aligned_loss))


def _loss_stats(per_pair: Sequence[dict[str, float] | None]) -> dict[str, Stat] | None:
    """Loss barriers over pairs (mean ± std); None unless every pair has one."""
    if not per_pair or any(b is None for b in per_pair):
        return None
    return {s: _stat([b[s] for b in per_pair if b]) for s in SPLITS}


def _read(path: str, kind: store.Kind, run: collect.Experiment):
    try:
        return store.read_complete(path, kind, run.path, run.config.runtime.model_dir)
    except CorruptFileError:  # the report names damaged records already
        return None


def _rows_of(run: collect.Experiment) -> list[Row]:
    c = run.config
    results = _read(layout.results_file(run.path), records.InstabilityResults, run)
    points = {p.rewind_step: p for p in results.rewind_steps} if results else {}
    out = []
    for k in c.train.rewind_steps:
        point = points.get(k) or _read(layout.rewind_point_file(run.path, k),
                                       records.RewindPointRecord, run)
        if point is None or point.aligned_barrier is None:
            continue
        pairs = [p for rep in point.replicates for p in rep.pairs]
        out.append(_row(run.name, k, pairs, {s: point.barrier[s].stat for s in SPLITS},
                        {s: point.aligned_barrier[s].stat for s in SPLITS}))
    independent = results.independent if results else None
    if independent is None and c.instability.replicates >= 2:
        found = [_read(layout.independent_pair_file(run.path, a, b), records.PairRecord, run)
                 for a in range(c.instability.replicates)
                 for b in range(a + 1, c.instability.replicates)]
        if found and all(p is not None and p.aligned for p in found):
            pairs = [p for p in found if p is not None]
            independent = records.IndependentRecord(
                pairs=pairs, barrier={s: _stat([p.barrier[s] for p in pairs]) for s in SPLITS},
                aligned_barrier={s: _stat([p.aligned.barrier[s] for p in pairs if p.aligned])
                                 for s in SPLITS})
    if independent is not None and independent.aligned_barrier is not None:
        out.append(_row(run.name, None, independent.pairs, independent.barrier,
                        independent.aligned_barrier))
    return out


def rows(experiments: Sequence[collect.Experiment]) -> list[Row]:
    """Every aligned measurement of the instability experiments run with
    ``--align=weights``."""
    return [row for e in experiments
            if isinstance(e, collect.InstabilityRun) and e.config.instability.align != "none"
            for row in _rows_of(e)]


def _rewind_axis(ax, ks: Sequence[int]) -> None:
    """Symlog k axis: k = 0 at the left end, one linear decade before the
    smallest positive k; ticks at the measured k (the horizontal lines of
    the independent pairs do not widen it)."""
    positive = [k for k in ks if k > 0]
    linthresh = min(positive) if positive else 1
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.set_xlim(-0.1 * linthresh, 1.5 * max(positive) if positive else linthresh)
    if ks:
        ax.set_xticks(list(ks), [str(k) for k in ks])


def figure(found: Sequence[Row]) -> Figure:
    """Test and train barrier vs k, raw and aligned, one panel per split; the
    independent pairs' barriers as horizontal lines."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    names = list(dict.fromkeys(r.experiment for r in found))
    for ax, split in zip(axes, SPLITS, strict=True):
        for index, name in enumerate(names):
            suffix = "" if len(names) == 1 else f" [{name}]"
            points = sorted((r for r in found if r.experiment == name and r.k is not None),
                            key=lambda r: r.k or 0)
            for kind, marker, line in (("raw", "o", "-"), ("aligned", "s", "--")):
                color = f"C{2 * index + (kind == 'aligned')}"
                if points:
                    ks = [r.k for r in points]
                    stats = [getattr(r, kind)[split] for r in points]
                    ax.errorbar(ks, [100 * s.mean for s in stats],
                                yerr=[100 * (s.std or 0.0) for s in stats], marker=marker,
                                linestyle=line, color=color, capsize=3,
                                label=f"children, {kind}{suffix}")
                for r in found:
                    if r.experiment == name and r.k is None:
                        ax.axhline(100 * getattr(r, kind)[split].mean, linestyle=":",
                                   color=color, label=f"independent, {kind}{suffix}")
        _rewind_axis(ax, sorted({r.k for r in found if r.k is not None}))
        ax.set_xlabel("rewind step k")
        ax.set_ylabel(f"{split} error barrier (%)")
        ax.set_title(f"{split}: raw vs aligned barrier")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def _cell(s: Stat) -> str:
    std = "" if s.std is None else f" ± {100 * s.std:.2f}"
    return f"{100 * s.mean:.2f}{std}"


def markdown(found: Sequence[Row]) -> list[str]:
    """The table: per experiment and k, raw and aligned barrier (%), raw and
    aligned test loss barrier, and the matching's wall time and passes."""
    lines = ["## Barriers modulo permutation (--align=weights)", "",
             "Raw: the linear path between the two networks of each pair; aligned: the "
             "path to the second network after weight matching its hidden units to the "
             "first's. Mean ± std over pairs and replicates, in percent; the loss "
             "barriers (same paths, cross-entropy) over pairs.", "",
             "| experiment | pair | pairs | test raw | test aligned | train raw | "
             "train aligned | test loss raw | test loss aligned | matching s | passes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in found:
        pair = "independent" if r.k is None else f"children, k={r.k}"
        lines.append(f"| {r.experiment} | {pair} | {r.pairs} | {_cell(r.raw['test'])} | "
                     f"{_cell(r.aligned['test'])} | {_cell(r.raw['train'])} | "
                     f"{_cell(r.aligned['train'])} | {loss_cell(r.raw_loss, 'test')} | "
                     f"{loss_cell(r.aligned_loss, 'test')} | {r.matching_s.mean:.2f} | "
                     f"{r.iterations.mean:.1f} |")
    return lines + [""]


def table(found: Sequence[Row]) -> list[dict]:
    """The same, unrounded, for ``report.json``."""
    return [{"experiment": r.experiment, "k": r.k, "pairs": r.pairs,
             "raw": {s: r.raw[s].to_json() for s in SPLITS},
             "aligned": {s: r.aligned[s].to_json() for s in SPLITS},
             "raw_loss": _loss_json(r.raw_loss), "aligned_loss": _loss_json(r.aligned_loss),
             "matching_wall_time_s": r.matching_s.to_json(),
             "matching_iterations": r.iterations.to_json()} for r in found]


def _loss_json(loss: dict[str, Stat] | None) -> dict | None:
    return None if loss is None else {s: loss[s].to_json() for s in SPLITS}


def section(experiments: Sequence[collect.Experiment]) -> Section:
    """What the report adds: nothing unless some experiment aligned its pairs."""
    found = rows(experiments)
    if not found:
        return Section([], {}, {}, [], [])
    return Section(found, {FIGURE: figure(found)}, {FIGURE: FIGURE_TEXT}, markdown(found),
                   table(found))
