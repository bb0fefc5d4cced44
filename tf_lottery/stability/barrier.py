"""Error barriers and their aggregation: pure numpy, no TensorFlow.

The paper's instability of a pair of networks is the error barrier along
their linear path: the highest error on the path minus the mean error of
the two endpoints, max_α E(α) − ½(E(W₁) + E(W₂)). A network is *stable*
at rewind step k when this barrier is below a threshold (2 % in the paper).
With more than two children every pair gives a barrier; with several
replicates (independent parents) each replicate's pairs are averaged first
and the spread is reported across replicates.

The loss barrier is the same quantity on the loss curve of the same path
(``loss_barrier``): what the work that followed the paper reports
(Entezari et al. 2022; Ainsworth et al. 2023), reported beside the error
barrier; error stays the paper's stability criterion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def error_barrier(curve: Sequence[float]) -> float:
    """max_α E(α) − mean(E(α=0), E(α=1)) of an error curve along a path.

    Never negative (the maximum includes the endpoints); exactly 0 for a
    constant curve.
    """
    return _barrier(curve, "an error")


def _barrier(curve: Sequence[float], what: str) -> float:
    values = np.asarray(curve, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"{what} curve needs >= 2 points, got shape {values.shape}")
    return float(values.max() - 0.5 * (values[0] + values[-1]))


def loss_barrier(curve: Sequence[float]) -> float:
    """max_α L(α) − mean(L(α=0), L(α=1)) of a loss curve along a path.

    The convention of Ainsworth et al. 2023 ("Git Re-Basin", their loss
    barrier: max over λ of L((1−λ)θ_A + λθ_B) − ½(L(θ_A) + L(θ_B))) and the
    one of the paper's error barrier, so that the two barriers of a pair
    are the same function of their curves and read side by side. Entezari
    et al. 2022 subtract the line between the endpoint losses instead,
    max_α [L(α) − ((1−α)L(W₁) + αL(W₂))]; the two agree when the endpoints'
    losses are equal and differ by at most ½|L(W₁) − L(W₂)| otherwise
    (children of one W_k end with nearly equal losses). Never negative;
    exactly 0 for a constant curve.
    """
    return _barrier(curve, "a loss")


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, sample standard deviation (ddof=1; 0 for one value) and count."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("nothing to summarize")
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return {"mean": float(x.mean()), "std": std, "n": int(x.size)}


def aggregate(per_replicate: Sequence[Sequence[float]]) -> dict:
    """Barriers of every pair, grouped by replicate -> mean ± std.

    Each replicate's pairs are summarized first (mean ± std over its pairs);
    the top-level mean ± std is over the replicates' means, so that a
    replicate with more pairs does not weigh more. With one replicate the
    top level is that replicate's summary over its pairs.
    """
    if not per_replicate or any(len(r) == 0 for r in per_replicate):
        raise ValueError("every replicate needs at least one pair")
    replicates = [summarize(r) for r in per_replicate]
    top: dict[str, Any] = (dict(replicates[0]) if len(replicates) == 1
                           else summarize([r["mean"] for r in replicates]))
    top["per_replicate"] = replicates
    return top


def is_stable(barrier: float, threshold: float) -> bool:
    """The paper's criterion: the barrier is below the threshold (e.g. 0.02)."""
    return barrier < threshold


def format_table(rows: Sequence[tuple[int, dict, dict, bool]], threshold: float) -> str:
    """The log's summary: rewind step k, test and train barrier (mean ± std,
    in percent; no std for a single pair, n = 1), and whether k is stable
    (test barrier below ``threshold``)."""
    lines = [f"{'k':>8}  {'test barrier':>17}  {'train barrier':>17}  "
             f"stable (test < {100 * threshold:g}%)"]  # as reporting.console names it
    for k, test, train, stable in rows:
        cells = [f"{100 * s['mean']:7.2f}% ± {100 * s['std']:5.2f}%"
                 if s.get("std") is not None and (s.get("n") or 2) >= 2
                 else f"{100 * s['mean']:7.2f}%" for s in (test, train)]
        lines.append(f"{k:>8}  {cells[0]:>17}  {cells[1]:>17}  {'yes' if stable else 'no'}")
    return "\n".join(lines)
