"""The paper's figures as matplotlib Figures (Agg canvas, no pyplot state).

Each function takes prepared series and returns a ``Figure`` (tests inspect
its axes and lines); ``save`` writes it as PNG through ``tf.io.gfile``.
Errors, barriers and accuracies are plotted in percent.

Rewind steps k are on a log axis, but k = 0 has no logarithm: the axis is
``symlog`` with a linear segment from 0 to the smallest positive k, so k = 0
sits at the left end, one segment before the first positive k.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 120
SPLIT_TITLES = {"test": "test error barrier", "train": "train error barrier"}


@dataclasses.dataclass(frozen=True)
class Series:
    """One plotted curve: y (± std, drawn as a band) against x."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    std: Sequence[float | None] | None = None
    linestyle: str = "-"
    marker: str | None = "o"


@dataclasses.dataclass(frozen=True)
class Reference:
    """A horizontal reference line (threshold, dense accuracy), ± an optional band."""

    label: str
    y: float
    std: float | None = None
    linestyle: str = "--"
    color: str = "black"


def _new(width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _percent(values: Sequence[float | None] | None) -> np.ndarray | None:
    if values is None:
        return None
    return np.array([np.nan if v is None else 100.0 * v for v in values], dtype=float)


def _plot(ax, series: Series, color=None) -> None:
    y = _percent(series.y)
    line, = ax.plot(series.x, y, linestyle=series.linestyle, marker=series.marker,
                    label=series.label, color=color)
    std = _percent(series.std)
    if std is not None and np.any(np.nan_to_num(std) > 0):
        ax.fill_between(series.x, y - np.nan_to_num(std), y + np.nan_to_num(std),
                        color=line.get_color(), alpha=0.2, linewidth=0)


def _reference(ax, ref: Reference) -> None:
    ax.axhline(100.0 * ref.y, linestyle=ref.linestyle, color=ref.color, linewidth=1,
               label=ref.label)
    if ref.std:
        ax.axhspan(100.0 * (ref.y - ref.std), 100.0 * (ref.y + ref.std), color=ref.color,
                   alpha=0.08, linewidth=0)


def _fit_y(ax, values: Sequence[float]) -> None:
    """Y limits that also show reference lines (``axhline`` does not autoscale)."""
    low, high = ax.get_ylim()
    low, high = min(low, 100.0 * min(values)), max(high, 100.0 * max(values))
    pad = 0.03 * (high - low or 1.0)
    ax.set_ylim(low - pad, high + pad)


def _rewind_axis(ax, ks: Sequence[int]) -> None:
    positive = [k for k in ks if k > 0]
    if positive:
        ax.set_xscale("symlog", linthresh=min(positive), linscale=0.5)
    if ks:
        ticks = sorted(set(ks))
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.minorticks_off()
    ax.set_xlabel("rewind step k (log scale; k = 0 at the left end)")


def instability(curves: Mapping[str, Sequence[Series]], threshold: float,
                references: Mapping[str, Sequence[Reference]] | None = None) -> Figure:
    """Error barrier against the rewind step k, one panel per split (test,
    train): the paper's Figures 3 (dense) and 5 (IMP subnetworks)."""
    splits = list(curves)
    fig, axes = _new(5.2 * len(splits), 4.0, ncols=len(splits))
    for ax, split in zip(axes, splits, strict=True):
        for series in curves[split]:
            _plot(ax, series)
        _reference(ax, Reference(f"stability threshold ({100 * threshold:g}%)", threshold,
                                 color="red"))
        for ref in (references or {}).get(split, ()):
            _reference(ax, ref)
        _rewind_axis(ax, [int(k) for s in curves[split] for k in s.x])
        ax.set_ylabel(f"{SPLIT_TITLES[split]} (%)")
        ax.set_title(f"Instability: {SPLIT_TITLES[split]} vs rewind step")
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def interpolation(title: str, series: Sequence[Series]) -> Figure:
    """Error along the linear path W(α) = (1−α)·W₁ + α·W₂, mean ± std over pairs."""
    fig, (ax,) = _new(6.0, 4.0)
    for s in series:
        _plot(ax, s)
    ax.set_xlabel("interpolation α")
    ax.set_ylabel("error (%)")
    ax.set_xlim(0.0, 1.0)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def imp(series: Sequence[Series], dense: Sequence[Reference]) -> Figure:
    """Test accuracy against the percent of weights remaining (log scale,
    sparsest to the right, as in the lottery ticket papers): IMP and the
    random baselines, with the dense network's accuracy."""
    fig, (ax,) = _new(6.5, 4.5)
    for s in series:
        _plot(ax, s)
    for ref in dense:
        _reference(ax, ref)
    _fit_y(ax, [*(v for s in series for v in s.y), *(r.y for r in dense)])
    xs = sorted({float(x) for s in series for x in s.x}, reverse=True)
    ax.set_xscale("log")
    if xs:
        ax.set_xlim(xs[0] * 1.15, xs[-1] / 1.15)  # inverted: dense at the left
        ax.set_xticks(xs, [f"{x:.3g}" for x in xs], rotation=60, fontsize="small")
        ax.minorticks_off()
    ax.set_xlabel("percent of prunable weights remaining (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("IMP with rewinding vs random baselines")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def png(fig: Figure) -> bytes:
    """``fig`` as PNG bytes (for a file, or a TensorBoard image)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def save(fig: Figure, path: str) -> None:
    """Writes ``fig`` as PNG to ``path`` (local or ``gs://``)."""
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(png(fig))
