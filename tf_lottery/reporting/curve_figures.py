"""The report's figure of fitted curves (``--curve``), read from the instability records.

``curves.png``: left, the mean test error along each rewind step k's fitted
curves (solid, against t) and along its straight lines (dashed, against α),
a colour per k; right, the curves' barrier against k beside the lines'
(test and train, mean ± std over pairs and replicates). Drawn for every
instability experiment whose rewind points carry curves; with several, the
name gets the experiment's index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tf_lottery.core import layout, records
from tf_lottery.core.layout import SPLITS
from tf_lottery.reporting import figure_sets

TEXT = ("fitted quadratic Bézier curves between children (--curve): mean test error "
        "along the curve (solid, against t) and the line (dashed, against α) per rewind "
        "step k, and the curve barrier vs k beside the linear one (mean ± std)")


def _mean(curves: Sequence[Sequence[float]]) -> np.ndarray:
    return 100 * np.mean(np.asarray(curves, dtype=np.float64), axis=0)


def curves_figure(result: records.InstabilityResults) -> Figure | None:
    """The figure of one instability experiment; None without curves."""
    points = [p for p in result.rewind_steps if p.curve_barrier is not None]
    if not points:
        return None
    fig = Figure(figsize=(11, 4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    path_ax, barrier_ax = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(points))]
    for point, colour in zip(points, colours, strict=True):
        curves = [c for rep in point.replicates for c in rep.curves or []]
        pairs = [p for rep in point.replicates for p in rep.pairs]
        k = point.rewind_step
        path_ax.plot(curves[0].alphas, _mean([c.error["test"] for c in curves]), "-",
                     color=colour, label=f"k = {k}: curve")
        path_ax.plot(pairs[0].alphas, _mean([p.error["test"] for p in pairs]), "--",
                     color=colour, label=f"k = {k}: line")
    path_ax.set_xlabel("t (curve), α (line)")
    path_ax.set_ylabel("test error (%)")
    path_ax.set_title("mean test error along curves and lines")
    path_ax.legend(fontsize=8)
    ks = [p.rewind_step for p in points]
    for split, marker in zip(SPLITS, ("o", "s"), strict=True):
        for name, get, style in (("line", lambda p: p.barrier, "--"),
                                 ("curve", lambda p: p.curve_barrier, "-")):
            found = [get(p)[split] for p in points]
            barrier_ax.errorbar(ks, [100 * s.mean for s in found],
                                yerr=[100 * (s.std or 0.0) for s in found], fmt=marker + style,
                                capsize=3, label=f"{split}, {name}")
    barrier_ax.axhline(100 * result.settings.stability_threshold, color="black", linewidth=0.8,
                       linestyle=":", label="threshold")
    barrier_ax.set_xscale("symlog", linthresh=max(1, min([k for k in ks if k] or [1])))
    barrier_ax.set_xlabel("rewind step k")
    barrier_ax.set_ylabel("error barrier (%)")
    barrier_ax.set_title("barrier vs k: curve and line")
    barrier_ax.legend(fontsize=8)
    return fig


def figures(paths: Sequence[str]) -> dict[str, tuple[Figure, str]]:
    """name -> (figure, description) for every instability experiment at
    ``paths`` with curves."""
    drawn: list[figure_sets.Drawn] = []
    for path, result in figure_sets.results(paths):
        if isinstance(result, records.InstabilityResults):
            fig = curves_figure(result)
            if fig is not None:
                drawn.append((path, fig, TEXT))
    return figure_sets.numbered({layout.CURVES_FIGURE: drawn})
