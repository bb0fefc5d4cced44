"""The summary table an experiment prints at its end (and again on a relaunch
of a finished run), from its ``results.json`` record alone.

- instability: k -> test and train barrier -> stable? -> children's test
  accuracy -> test and train loss barrier (-> with --curve, the fitted
  curves' test and train barrier), then the row of independently trained
  networks;
- IMP: level -> density -> test accuracy -> each baseline's -> the sparse
  test barrier and whether it is stable;
- train: the run's test and train accuracy.

A mean ± std shows its std only where there is one (n >= 2): a single pair
has a barrier, not a spread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tf_lottery.config import branches
from tf_lottery.core import layout, records
from tf_lottery.core.records import Stat

NONE = "—"


def pct(x: float | None) -> str:
    return NONE if x is None else f"{100 * x:.2f}%"


def threshold_pct(x: float | None) -> str:
    """The stability threshold as every table and figure names it ("2%")."""
    return NONE if x is None else f"{100 * x:g}%"


def points(x: float | None) -> str:
    """A difference of two accuracies (a tolerance), in percentage points, so
    that "0.5" is never read as a relative 0.5 %."""
    return NONE if x is None else f"{100 * x:.2g} percentage points"


def cell(s: Stat | None) -> str:
    """mean ± std in percent; the std only where it describes a spread (n >= 2)."""
    if s is None:
        return NONE
    if s.std is not None and (s.n is None or s.n >= 2):
        return f"{pct(s.mean)} ± {pct(s.std)}"
    return pct(s.mean)


def loss_cell(by_split: Mapping[str, Stat] | None, split: str) -> str:
    """A loss barrier's mean ± std (the std where n >= 2), in loss units
    (cross-entropy in nats, not a percentage); — where none was recorded."""
    if by_split is None:
        return NONE
    s = by_split[split]
    if s.std is not None and (s.n is None or s.n >= 2):
        return f"{s.mean:.4f} ± {s.std:.4f}"
    return f"{s.mean:.4f}"


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(f"{str(c):>{w}}" for c, w in zip(row, widths, strict=True))
                     .rstrip() for row in (header, *rows))


def instability_table(results: records.InstabilityResults) -> str:
    threshold = results.settings.stability_threshold
    rows = []
    # --centroid: the centroid's test error gap to its children's, raw / aligned
    centroids = {c.rewind_step: c for c in results.centroid or ()}
    for point in results.rewind_steps:
        children = [c.metrics.test_accuracy for rep in point.replicates for c in rep.children]
        loss = None if point.loss_barrier is None else {
            s: point.loss_barrier[s].stat for s in point.loss_barrier}
        rows.append([str(point.rewind_step), cell(point.barrier["test"]),
                     cell(point.barrier["train"]), "yes" if point.stable else "no",
                     pct(sum(children) / len(children)) if children else NONE,
                     loss_cell(loss, "test"), loss_cell(loss, "train")])
        found = centroids.get(point.rewind_step)
        if centroids:
            rows[-1].append(NONE if found is None else
                            f"{cell(found.gap['test'])} / {cell(found.aligned_gap['test'])}")
    if results.independent is not None:
        b, lb = results.independent.barrier, results.independent.loss_barrier
        rows.append(["independent", cell(b["test"]), cell(b["train"]), NONE, NONE,
                     loss_cell(lb, "test"), loss_cell(lb, "train")] + [NONE] * bool(centroids))
    header = ["k", "test barrier", "train barrier",
              f"stable (test < {threshold_pct(threshold)})", "children's test accuracy",
              "test loss barrier", "train loss barrier",
              *["centroid test gap (raw / aligned)"] * bool(centroids)]
    if any(p.curve_barrier is not None for p in results.rewind_steps):  # --curve
        header += ["curve test barrier", "curve train barrier"]
        curves = [p.curve_barrier for p in results.rewind_steps]
        for row, curve in zip(rows, curves + [None] * (len(rows) - len(curves)), strict=True):
            row += [NONE, NONE] if curve is None else [cell(curve[s].stat) for s in layout.SPLITS]
    return _grid(header, rows)


def imp_table(results: records.ImpResults) -> str:
    names = [n for n in branches.baseline_names()
             if any(n in level.baselines for level in results.levels)]
    sparse = any(level.instability is not None for level in results.levels)
    measured = [n for n in names if any(n in level.baselines and level.baselines[n].instability
                                        for level in results.levels)]
    header = ["level", "density", "test accuracy", *(branches.get(n).title for n in names)]
    if sparse:
        header += [f"test barrier at k = {results.rewind_step}", "stable"]
    for n in measured:  # each baseline's sparse instability beside IMP's
        header += [f"{branches.get(n).title} barrier", "stable"]
    to_next = {p.levels[0]: p.pair.barrier["test"] for p in results.level_paths
               if p.gap == 1}  # --imp_level_barriers=1: the path to level L + 1
    if to_next:
        header.append("test barrier to L + 1")
    rows = []
    for level in results.levels:
        row = [str(level.level), pct(level.density), pct(level.test_accuracy),
               *(pct(level.baselines[n].test_accuracy) if n in level.baselines else NONE
                 for n in names)]
        found_all = [level.instability] if sparse else []
        found_all += [level.baselines[n].instability if n in level.baselines else None
                      for n in measured]
        for found in found_all:
            row += [cell(found.barrier["test"]) if found else NONE,
                    NONE if found is None else ("yes" if found.stable else "no")]
        if to_next:
            row.append(pct(to_next[level.level]) if level.level in to_next else NONE)
        rows.append(row)
    return _grid(header, rows)


def summary(results: records.Results, model_dir: str) -> str:
    """The experiment's closing summary: a title line and its table."""
    if isinstance(results, records.InstabilityResults):
        return f"Instability analysis of {model_dir}:\n{instability_table(results)}"
    if isinstance(results, records.ImpResults):
        return (f"IMP with rewinding to k = {results.rewind_step} ({results.status}) of "
                f"{model_dir}:\n{imp_table(results)}")
    if isinstance(results, records.ImpSweepResults):
        return "\n".join(
            f"IMP with rewinding to k = {chain.rewind_step} ({chain.status}) of "
            f"{layout.chain_dir(model_dir, chain.rewind_step)}:\n{imp_table(chain)}"
            for chain in results.chains)
    if isinstance(results, records.OnsetResults):
        where = f"IMP level {results.level}" if results.level else "dense"
        return (f"Onset search ({where}, {results.status}) of {model_dir}: "
                f"{results.child_runs} child runs (the full grid: "
                f"{results.full_grid_child_runs})\n{results.table}")
    m = results.metrics
    return (f"{model_dir}: test accuracy {pct(m.test_accuracy)}, train accuracy "
            f"{pct(m.train_accuracy)}")
