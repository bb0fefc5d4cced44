"""The paper's figures as matplotlib Figures (Agg canvas, no pyplot state).

Each function takes prepared series and returns a ``Figure`` (tests inspect
its axes and lines); ``save`` writes it as PNG through ``tf.io.gfile``.
Errors, barriers and accuracies are plotted in percent.

Legends sit outside the axes, below the panels, so they never cover a curve;
they wrap into as many columns as the figure's width holds, so none is
wider than its canvas. Reference lines far above the curves (the barrier of
independently trained networks, ~25 % against the dense curve's ~1 %) are
not drawn on the axis, which would flatten the curves; their legend entry
gives their value instead ("off scale").

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
from matplotlib.artist import Artist
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


@dataclasses.dataclass(frozen=True)
class Band:
    """A horizontal band (e.g. the accuracies that count as matching)."""

    label: str
    low: float
    high: float
    color: str = "green"


OFF_SCALE = 1.5  # a reference this many times above the curves' top is not drawn


def _new(width: float, height: float, ncols: int = 1, sharey: bool = False
         ) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False, sharey=sharey)[0]
    return fig, list(axes)


# Characters of a "small" legend entry per inch of figure width, and the
# width of its line sample and padding in characters: enough to keep a
# legend row inside the canvas.
_LEGEND_CHARS_PER_INCH = 14
_LEGEND_ENTRY_PAD = 6


def _legend_below(fig: Figure, *axes) -> None:
    """One legend for the figure, below its panels: every panel's entries,
    each label once, in as many columns as the figure's width holds."""
    entries: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if not entries:
        return
    room = fig.get_figwidth() * _LEGEND_CHARS_PER_INCH
    widest = max(len(label) for label in entries) + _LEGEND_ENTRY_PAD
    ncols = max(1, min(3, len(entries), int(room // widest)))
    fig.legend(list(entries.values()), list(entries), loc="outside lower center",
               fontsize="small", ncols=ncols)


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
        # Errors, barriers and accuracies lie in [0, 100] %: so does their band.
        spread = np.nan_to_num(std)
        ax.fill_between(series.x, np.clip(y - spread, 0.0, 100.0),
                        np.clip(y + spread, 0.0, 100.0),
                        color=line.get_color(), alpha=0.2, linewidth=0)


def _reference(ax, ref: Reference, top: float | None = None) -> None:
    """Draws ``ref``; above ``top`` (percent) it is named in the legend only."""
    if top is not None and 100.0 * ref.y > top:
        spread = f" ± {100 * ref.std:.2f}%" if ref.std else ""
        ax.plot([], [], linestyle=ref.linestyle, color=ref.color, linewidth=1,
                label=f"{ref.label}: {100 * ref.y:.2f}%{spread} (off scale)")
        return
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


def _curves_top(series: Sequence[Series]) -> float:
    """The highest point (percent) of the curves and their std bands."""
    tops = [100.0 * (y + (sd or 0.0)) for s in series
            for y, sd in zip(s.y, s.std or [None] * len(s.y), strict=True) if y is not None]
    return max(tops, default=0.0)


def instability(curves: Mapping[str, Sequence[Series]], threshold: float,
                references: Mapping[str, Sequence[Reference]] | None = None) -> Figure:
    """Error barrier against the rewind step k, one panel per split (test,
    train): the paper's Figures 3 (dense) and 5 (IMP subnetworks). A
    reference far above the curves is named in the legend, not drawn."""
    splits = list(curves)
    fig, axes = _new(5.2 * len(splits), 4.6, ncols=len(splits))
    for ax, split in zip(axes, splits, strict=True):
        for series in curves[split]:
            _plot(ax, series)
        top = max(_curves_top(curves[split]), 100.0 * threshold) * OFF_SCALE
        _reference(ax, Reference(f"stability threshold ({100 * threshold:g}%)", threshold,
                                 color="red"))
        for ref in (references or {}).get(split, ()):
            _reference(ax, ref, top)
        _rewind_axis(ax, [int(k) for s in curves[split] for k in s.x])
        ax.set_ylabel(f"{SPLIT_TITLES[split]} (%)")
        ax.set_title(f"Instability: {SPLIT_TITLES[split]} vs rewind step")
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
        ax.grid(True, alpha=0.3)
    _legend_below(fig, axes[0])
    return fig


def sparse_vs_rewind(accuracy: Sequence[Series], barriers: Sequence[Series],
                     dense: Sequence[Reference], threshold: float) -> Figure:
    """IMP subnetworks against the rewind step k: test accuracy (with the
    dense network's) and test error barrier (with the stability threshold),
    the paper's Figure 5 with its accuracy beside it."""
    fig, (ax, bx) = _new(10.4, 4.6, ncols=2)
    for s in accuracy:
        _plot(ax, s)
    for ref in dense:
        _reference(ax, ref)
    _fit_y(ax, [*(v for s in accuracy for v in s.y), *(r.y for r in dense)])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("IMP subnetwork accuracy vs rewind step")
    for s in barriers:
        _plot(bx, s)
    _reference(bx, Reference(f"stability threshold ({100 * threshold:g}%)", threshold,
                             color="red"))
    bx.set_ylim(bottom=0.0)
    bx.set_ylabel(f"{SPLIT_TITLES['test']} (%)")
    bx.set_title("IMP subnetwork instability vs rewind step")
    for axis in (ax, bx):
        _rewind_axis(axis, [int(k) for s in (*accuracy, *barriers) for k in s.x])
        axis.grid(True, alpha=0.3)
    _legend_below(fig, ax)
    return fig


def interpolation(title: str, series: Sequence[Series],
                  ylim: tuple[float, float] | None = None) -> Figure:
    """Error along the linear path W(α) = (1−α)·W₁ + α·W₂, mean ± std over
    pairs; ``ylim`` (percent) shares one y axis among several such figures."""
    fig, (ax,) = _new(6.0, 4.4)
    for s in series:
        _plot(ax, s)
    ax.set_xlabel("interpolation α")
    ax.set_ylabel("error (%)")
    ax.set_xlim(0.0, 1.0)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    _legend_below(fig, ax)
    return fig


def paths_ylim(series: Sequence[Series]) -> tuple[float, float]:
    """One y range (percent) for every path figure: 0 to the highest curve."""
    return 0.0, _curves_top(series) * 1.05 or 1.0


def paths_overlay(by_split: Mapping[str, Sequence[Series]],
                  independent: Sequence[Series] = ()) -> Figure:
    """The mean path of every k on one shared y axis, a panel per split (the
    paper's Figures 2 and 4), and the independent networks' paths (ten times
    higher) in a panel of their own scale."""
    splits = list(by_split)
    panels = len(splits) + bool(independent)
    fig, axes = _new(5.2 * panels, 4.8, ncols=panels)
    ylim = paths_ylim([s for split in splits for s in by_split[split]])
    for ax, split in zip(axes[:len(splits)], splits, strict=True):
        for s in by_split[split]:
            _plot(ax, s)
        ax.set_title(f"{split} error along the path, every k")
        ax.set_ylim(*ylim)
    if independent:
        for s in independent:
            _plot(axes[-1], s, color="gray")
        axes[-1].set_ylim(*paths_ylim(independent))
        axes[-1].set_title("independently trained networks (own scale)")
    for ax in axes:
        ax.set_xlabel("interpolation α")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylabel("error (%)")
        ax.grid(True, alpha=0.3)
    _legend_below(fig, *axes)
    return fig


def _density_axis(ax, xs: Sequence[float]) -> None:
    xs = sorted({float(x) for x in xs}, reverse=True)
    ax.set_xscale("log")
    if xs:
        ax.set_xlim(xs[0] * 1.15, xs[-1] / 1.15)  # inverted: dense at the left
        ax.set_xticks(xs, density_labels(xs), rotation=60, fontsize="small")
        ax.minorticks_off()
    ax.set_xlabel("percent of prunable weights remaining (log scale)")


def density_labels(percents: Sequence[float]) -> list[str]:
    """Tick labels of percents remaining, all with one format: one decimal
    ("51.2", "41.0"), or two significant digits below 0.1 % ("0.054")."""
    return [f"{x:.1f}" if x >= 0.1 else f"{x:.2g}" for x in percents]


def imp(series: Sequence[Series], dense: Sequence[Reference],
        matching: Sequence[Band] = (), barriers: Sequence[Series] = (),
        threshold: float | None = None) -> Figure:
    """Test accuracy against the percent of weights remaining (log scale,
    sparsest to the right, as in the lottery ticket papers): IMP and the
    random baselines, with the dense network's accuracy and the band of
    accuracies that count as matching; with ``barriers`` (sparse
    instability, every measured level, level 0 included; IMP and each
    analysed baseline, one series each) a second panel of the error barrier
    against the same axis, with the stability ``threshold``. One legend,
    below both panels."""
    fig, axes = _new(6.5 + 5.0 * bool(barriers), 4.9, ncols=1 + bool(barriers))
    ax = axes[0]
    for s in series:
        _plot(ax, s)
    for ref in dense:
        _reference(ax, ref)
    for band in matching:
        ax.axhspan(100.0 * band.low, 100.0 * band.high, color=band.color, alpha=0.12,
                   linewidth=0, label=band.label)
    _fit_y(ax, [*(v for s in series for v in s.y), *(r.y for r in dense),
                *(b.low for b in matching)])
    _density_axis(ax, [x for s in series for x in s.x])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("IMP with rewinding vs random baselines")
    ax.grid(True, alpha=0.3)
    if barriers:
        bx = axes[1]
        for s in barriers:
            _plot(bx, s)
        if threshold is not None:
            _reference(bx, Reference(f"stability threshold ({100 * threshold:g}%)",
                                     threshold, color="red"))
        _density_axis(bx, [x for s in barriers for x in s.x])
        bx.set_ylim(bottom=0.0)
        bx.set_ylabel("error barrier (%)")
        bx.set_title("Sparse instability at the rewind step")
        bx.grid(True, alpha=0.3)
    _legend_below(fig, *axes)
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
