"""Report figures beyond the line (issue 26), read from an instability run's records.

- ``plane_<plane>_k<k>.png`` (``--plane``): filled contours of the test
  error (%) in the plane through three networks, the three marked and
  labelled, axes in weight-space distance (one per k; with several
  replicates, ``_r<r>`` per replicate);
- ``barrier_matrix_k<k>.png`` (N ≥ 3 children): the test error barrier of
  every pair of children as an N × N heat map (mean over replicates), the
  pairwise picture of many children at once;
- ``centroid.png`` (``--centroid``): the centroid's test and train error gap
  to its children's mean, raw and aligned, against k, beside the pairwise
  barrier (raw, and aligned where measured) against k.

Each is drawn from the run's ``results.json`` and the records it names; a
figure with nothing to show is not drawn (TensorBoard shows the same
figures as images: ``reporting.tensorboard_figures``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tf_lottery.config.experiments import PLANES
from tf_lottery.core import layout, records, store
from tf_lottery.core.layout import SPLITS
from tf_lottery.errors import CorruptFileError
from tf_lottery.reporting import figure_sets

TEXT = {
    "plane": "test error (%) in the plane through three networks (Garipov et al. 2018); "
             "axes are distances in weight space along an orthonormal basis",
    "matrix": "test error barrier (%) of every pair of children of W_k, mean over replicates",
    "centroid": "error gap of the children's centroid (their plain average, raw and aligned "
                "to child 0) to their mean error against k, beside the pairwise barrier",
}
MARKERS = ("o", "s", "^")


def _new(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def plane(found: records.PlaneRecord) -> Figure:
    """Filled contours of the test error with the three networks marked."""
    fig, (ax,) = _new(5.6, 4.4)
    error = 100 * np.asarray(found.error["test"])
    # Levels packed towards the minimum (quadratic spacing): a barrier of a few
    # percent between trained networks stays visible beside an untrained
    # network's chance-level error; capped at the 95th percentile.
    low = float(error.min())
    top = max(float(np.percentile(error, 95)), low + 1e-6)
    levels = low + (top - low) * np.linspace(0, 1, 16) ** 2
    filled = ax.contourf(found.xs, found.ys, np.minimum(error, top), levels=levels,
                         cmap="viridis_r")
    ax.contour(found.xs, found.ys, error, levels=levels[1:8], colors="white",
               linewidths=0.5)
    fig.colorbar(filled, ax=ax, label=f"test error (%), capped at {top:.1f}",
                 format="%.1f")
    for (x, y), name, marker, own in zip(found.coordinates, found.networks, MARKERS,
                                         found.network_error["test"], strict=True):
        name = name.replace("W_k", f"W_{found.rewind_step}")
        ax.plot(x, y, marker, color="white", markeredgecolor="black", markersize=8)
        ax.annotate(f"{name} ({100 * own:.1f} %)", (x, y), textcoords="offset points",
                    xytext=(6, 6), fontsize=8, color="black",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.7})
    a, b, c = (n.replace("W_k", f"W_{found.rewind_step}") for n in found.networks)
    ax.set_xlabel(f"along {a} → {b} (distance in weight space)")
    ax.set_ylabel(f"orthogonal, towards {c}")
    ax.set_aspect("equal")
    ax.set_title(f"plane '{found.plane}' at k = {found.rewind_step} "
                 f"({found.grid}×{found.grid} grid)", fontsize=10)
    return fig


def barrier_matrix(point: records.RewindPointRecord) -> Figure | None:
    """The pairs' mean test barrier as an N × N matrix; None for N < 3."""
    n = max((len(rep.children) for rep in point.replicates), default=0)
    if n < 3:
        return None
    total, count = np.zeros((n, n)), np.zeros((n, n))
    for rep in point.replicates:
        for pair in rep.pairs:
            i, j = pair.children or (0, 0)
            for a, b in ((i, j), (j, i)):
                total[a, b] += pair.barrier["test"]
                count[a, b] += 1
    matrix = np.where(count > 0, 100 * total / np.maximum(count, 1), np.nan)
    fig, (ax,) = _new(4.2, 3.6)
    shown = ax.imshow(matrix, cmap="magma_r", vmin=0)
    for a in range(n):
        for b in range(n):
            if not np.isnan(matrix[a, b]):
                ax.text(b, a, f"{matrix[a, b]:.1f}", ha="center", va="center", fontsize=8,
                        color="black" if matrix[a, b] < 0.6 * np.nanmax(matrix) else "white")
    fig.colorbar(shown, ax=ax, label="test error barrier (%)")
    ax.set_xticks(range(n), [f"child {i}" for i in range(n)], fontsize=8)
    ax.set_yticks(range(n), [f"child {i}" for i in range(n)], fontsize=8)
    ax.set_title(f"pairwise barriers at k = {point.rewind_step}", fontsize=10)
    return fig


def centroid(result: records.InstabilityResults) -> Figure:
    """Centroid gap (raw, aligned) vs k beside the pairwise barrier vs k."""
    fig, (gap, bar) = _new(10, 3.8, ncols=2)
    found = sorted(result.centroid or (), key=lambda c: c.rewind_step)
    ks = [c.rewind_step for c in found]
    points = {p.rewind_step: p for p in result.rewind_steps}
    styles = {"test": "-", "train": "--"}
    for split in SPLITS:
        for values, color, name in (
                ([c.gap[split] for c in found], "tab:red", "raw"),
                ([c.aligned_gap[split] for c in found], "tab:green", "aligned")):
            gap.errorbar(ks, [100 * s.mean for s in values],
                         yerr=[100 * (s.std or 0.0) for s in values], fmt="o" + styles[split],
                         color=color, capsize=3, label=f"{name} centroid, {split}")
        bar.plot(ks, [100 * points[k].barrier[split].mean for k in ks], "o" + styles[split],
                 color="tab:red", label=f"raw pairs, {split}")
        aligned = [points[k].aligned_barrier for k in ks]
        if all(a is not None for a in aligned):
            bar.plot(ks, [100 * a[split].mean for a in aligned if a], "o" + styles[split],
                     color="tab:green", label=f"aligned pairs, {split}")
    gap.axhline(0, color="black", linewidth=0.8)
    gap.set_ylabel("centroid error − children's mean (%)")
    gap.set_title("the centroid of all children", fontsize=10)
    bar.set_ylabel("error barrier (%), mean over pairs")
    bar.set_title("pairwise barrier", fontsize=10)
    for ax in (gap, bar):
        ax.set_xscale("symlog", linthresh=max(1, min((k for k in ks if k), default=1)))
        ax.set_xlabel("rewind step k")
        ax.legend(fontsize=7)
    return fig


def _planes(path: str, result: records.InstabilityResults) -> list[tuple[str, Figure]]:
    """Every plane stored beside the run's rewind points (a relaunch with
    another --plane adds one; the earlier ones stay and are drawn too)."""
    out = []
    for point, which in itertools.product(result.rewind_steps, PLANES[1:]):
        for r in range(result.settings.replicates):
            file = layout.plane_file(layout.rewind_point_dir(path, r, point.rewind_step), which)
            try:
                found = store.read_complete(file, records.PlaneRecord, path, path)
            except (CorruptFileError, ValueError, KeyError, TypeError):
                found = None
            if found is not None:
                suffix = f"_r{r}" if result.settings.replicates > 1 else ""
                out.append((layout.PLANE_FIGURE.format(plane=which, k=point.rewind_step,
                                                       replicate=suffix), plane(found)))
    return out


def figures(paths: Sequence[str]) -> dict[str, tuple[Figure, str]]:
    """name -> (figure, description) for every instability run at ``paths``."""
    found: dict[str, list[figure_sets.Drawn]] = {}
    for path, result in figure_sets.results(paths):
        if not isinstance(result, records.InstabilityResults):
            continue
        for name, fig in _planes(path, result):
            found.setdefault(name, []).append((path, fig, TEXT["plane"]))
        for point in result.rewind_steps:
            matrix = barrier_matrix(point)
            if matrix is not None:
                found.setdefault(layout.BARRIER_MATRIX_FIGURE.format(k=point.rewind_step),
                                 []).append((path, matrix, TEXT["matrix"]))
        if result.centroid:
            found.setdefault(layout.CENTROID_FIGURE, []).append(
                (path, centroid(result), TEXT["centroid"]))
    return figure_sets.numbered(found)
