"""Report figures of the instruments of issue 16, read from the experiments' records.

- ``layerwise_k<k>.png``: the layer-wise barrier of every group (a layer, a
  residual block, an Inception module) at rewind step k, test and train,
  mean ± std over pairs (``--layerwise_barriers``); IMP draws the same bars
  for each level's sparse-instability pairs as ``layerwise_level<L>.png``;
- ``imp_level_barriers.png``: IMP test accuracy vs percent of weights
  remaining, beside the barrier between the trained networks of levels L
  and L + j against level L's density (``--imp_level_barriers``);
- ``onset.png``: the barrier at every rewind step the onset search probed,
  the threshold and the bracket it found (``--experiment=onset``).

Each figure is drawn from the ``results.json`` of the experiment(s) at
``paths``; one that has nothing to show is not drawn. With several
experiments of one kind, a figure's name gets the experiment's index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tf_lottery.core import layout, records
from tf_lottery.core.layout import SPLITS
from tf_lottery.reporting import figure_sets

COLORS = {"test": "tab:blue", "train": "tab:orange"}
TEXT = {
    "layerwise": "layer-wise barrier at rewind step k: one group (layer, residual block, "
                 "Inception module) moves along the path, the rest stay at child 1; "
                 "mean ± std over pairs",
    "imp_layerwise": "layer-wise barrier of an IMP level's sparse-instability pairs at the "
                     "rewind step k: one group moves along the path, the rest stay at child 1 "
                     "(pruned weights stay 0); mean ± std over pairs",
    "level": "IMP test accuracy vs weights remaining, and the barrier between the trained "
             "networks of levels L and L + j vs level L's weights remaining",
    "onset": "error barrier at every rewind step the onset search probed (mean ± std), "
             "the stability threshold and the bracket [last unstable k, first stable k]",
}


def _new(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def layerwise(summary: records.LayerwiseSummaryRecord, title: str | None = None) -> Figure:
    """Bars per group, test and train side by side (``title``: the rewind step's)."""
    n = len(summary.groups)
    fig, (ax,) = _new(max(5.0, 0.45 * n + 2), 3.6)
    x = np.arange(n)
    for i, split in enumerate(SPLITS):
        means = [100 * summary.barrier[g][split].mean for g in summary.groups]
        stds = [100 * (summary.barrier[g][split].std or 0.0) for g in summary.groups]
        ax.bar(x + (i - 0.5) * 0.4, means, 0.4, yerr=stds, capsize=2, label=split,
               color=COLORS[split])
    ax.set_xticks(x, summary.groups, rotation=60 if n > 6 else 0, ha="right" if n > 6 else
                  "center", fontsize=8)
    ax.set_ylabel("barrier (%)")
    ax.set_title(title or f"layer-wise barriers at k = {summary.rewind_step}")
    ax.legend()
    return fig


def imp_layerwise(result: records.ImpResults) -> list[tuple[str, Figure, str]]:
    """(name, figure, description) of every IMP level whose sparse instability
    has layer-wise barriers: the instability analysis' bars (``layerwise``)."""
    out = []
    for level in result.levels:
        summary = level.instability.layerwise if level.instability else None
        if summary is None:
            continue
        title = (f"layer-wise barriers at IMP level {level.level} "
                 f"({100 * level.density:.3g} % of weights), k = {summary.rewind_step}")
        out.append((layout.IMP_LAYERWISE_FIGURE.format(level=level.level),
                    layerwise(summary, title), f"{TEXT['imp_layerwise']} (level {level.level})"))
    return out


def level_barriers(result: records.ImpResults) -> Figure:
    """Accuracy vs density (left) beside the level-to-level barriers (right)."""
    fig, (acc, bar) = _new(10, 3.8, ncols=2)
    levels = result.levels
    acc.plot([100 * lv.density for lv in levels], [100 * lv.test_accuracy for lv in levels],
             "o-", color="tab:blue", label="IMP test accuracy")
    acc.set_ylabel("test accuracy (%)")
    acc.set_title("IMP: accuracy vs weights remaining")
    for gap in sorted({p.gap for p in result.level_paths}):
        paths = [p for p in result.level_paths if p.gap == gap]
        for split in SPLITS:
            bar.plot([100 * p.densities[0] for p in paths],
                     [100 * p.pair.barrier[split] for p in paths],
                     "o-" if split == "test" else "s--", color=COLORS[split],
                     alpha=1.0 if gap == 1 else 0.5, label=f"{split}, L -> L+{gap}")
    bar.set_ylabel("barrier (%)")
    bar.set_title("barrier between IMP levels L and L + j")
    for ax in (acc, bar):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining at level L (%)")
        ax.legend(fontsize=8)
    return fig


def onset(result: records.OnsetResults) -> Figure:
    """Probed barriers vs k (symlog), threshold, bracket shaded."""
    fig, (ax,) = _new(6, 3.6)
    probes = sorted(result.probes, key=lambda p: p.rewind_step)
    ks = [p.rewind_step for p in probes]
    for split in SPLITS:
        ax.errorbar(ks, [100 * p.barrier[split].mean for p in probes],
                    yerr=[100 * (p.barrier[split].std or 0.0) for p in probes], fmt="o",
                    color=COLORS[split], capsize=3, label=split)
    ax.axhline(100 * result.threshold, color="black", linestyle="--", label="threshold")
    lo, hi = result.bracket
    if hi is not None:
        ax.axvspan(0 if lo is None else lo, hi, color="tab:green", alpha=0.15,
                   label=f"onset in [{'-' if lo is None else lo}, {hi}]")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("rewind step k")
    ax.set_ylabel("error barrier (%)")
    ax.set_title(f"onset search ({len(result.probes)} of {len(result.grid)} grid points, "
                 f"{result.child_runs} of {result.full_grid_child_runs} child runs)",
                 fontsize=9)
    ax.legend(fontsize=8)
    return fig


def figures(paths: Sequence[str]) -> dict[str, tuple[Figure, str]]:
    """name -> (figure, description) for every experiment at ``paths``."""
    found: dict[str, list[figure_sets.Drawn]] = {}
    for path, result in figure_sets.results(paths):
        if isinstance(result, records.InstabilityResults | records.OnsetResults) and \
                result.layerwise:
            for s in result.layerwise:
                found.setdefault(layout.INSTRUMENTS_FIGURE.format(k=s.rewind_step), []).append(
                    (path, layerwise(s), f"{TEXT['layerwise']} (k = {s.rewind_step})"))
        elif isinstance(result, records.ImpResults):
            for name, fig, text in imp_layerwise(result):
                found.setdefault(name, []).append((path, fig, text))
            if result.level_paths:
                found.setdefault(layout.LEVEL_BARRIERS_FIGURE, []).append(
                    (path, level_barriers(result), TEXT["level"]))
        if isinstance(result, records.OnsetResults) and result.probes:
            found.setdefault(layout.ONSET_FIGURE, []).append(
                (path, onset(result), TEXT["onset"]))
    return figure_sets.numbered(found)
