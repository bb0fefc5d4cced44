"""Masks as pure numpy: magnitude selection, random pruning, density bookkeeping.

A *mask* is a ``dict`` from a prunable weight's name (``"<layer>/kernel"``) to
a float32 array of 0s and 1s with that weight's shape. Everything here is a
pure function of its arguments, so the pruning rules are tested without
TensorFlow and IMP can recompute any level's mask from saved weights.

Pruning targets are *densities*, not per-level fractions: level ``L`` of IMP
with fraction ``p`` keeps ``round(n * (1 - p)**L)`` of a group's ``n`` weights,
so the density after ``L`` levels is ``(1 - p)**L`` to within one weight per
group instead of drifting by a rounding error per level. Selection is by
exact count (top-k of |w| among the surviving weights, ties broken by index),
never by a threshold, so the count is exact even when magnitudes tie.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from tf_lottery import chief
from tf_lottery.errors import CorruptFileError

Masks = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class PruningRule:
    """How one level prunes: the target fraction and how it is shared out.

    Attributes:
      scope: 'global' ranks all weights of the global group together (one
        magnitude threshold across layers); 'layerwise' prunes every layer to
        the same density.
      layer_rates: ``(pattern, rate)`` pairs; a weight whose layer name fully
        matches ``pattern`` (first match wins) is pruned on its own, at
        ``rate`` times the fraction (e.g. the output layer at rate 0.5, as in
        the original lottery ticket paper). Such layers leave the global group.
    """

    scope: str = "global"
    layer_rates: tuple[tuple[str, float], ...] = ()

    def rate(self, name: str) -> float | None:
        """The rate of the weight ``"<layer>/<weight>"``, None if not listed."""
        layer = name.rsplit("/", 1)[0]
        for pattern, rate in self.layer_rates:
            if re.fullmatch(pattern, layer):
                return rate
        return None


def ones_like(weights: Mapping[str, np.ndarray]) -> Masks:
    """The dense mask (level 0)."""
    return {k: np.ones(np.shape(w), np.float32) for k, w in weights.items()}


def count(masks: Mapping[str, np.ndarray]) -> int:
    """Surviving weights."""
    return int(sum(int(np.count_nonzero(m)) for m in masks.values()))


def size(masks: Mapping[str, np.ndarray]) -> int:
    """Prunable weights, pruned or not."""
    return int(sum(m.size for m in masks.values()))


def density(masks: Mapping[str, np.ndarray]) -> float:
    """Fraction of the prunable weights that survive."""
    return count(masks) / max(size(masks), 1)


def layer_densities(masks: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Density of each prunable weight."""
    return {k: float(np.count_nonzero(m)) / max(m.size, 1) for k, m in masks.items()}


def _keep_top(scores: np.ndarray, keep: int) -> np.ndarray:
    """0/1 vector keeping the ``keep`` largest scores (ties: lower index wins)."""
    out = np.zeros(scores.size, np.float32)
    if keep > 0:
        # Stable sort of -score: equal scores keep index order, so results do
        # not depend on the sort algorithm.
        order = np.argsort(-scores, kind="stable")
        out[order[:keep]] = 1.0
    return out


def _select(weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray],
            names: list[str], keep: int) -> Masks:
    """Keeps the ``keep`` largest-magnitude surviving weights among ``names``."""
    if not names:
        return {}
    alive = np.concatenate([masks[n].ravel() for n in names]) > 0
    if keep > int(alive.sum()):
        raise ValueError(f"cannot keep {keep} weights of {names}: only "
                         f"{int(alive.sum())} survive")
    magnitude = np.concatenate(
        [np.abs(np.asarray(weights[n], np.float64)).ravel() for n in names])
    # Pruned weights rank below every surviving one, whatever their value.
    scores = np.where(alive, magnitude, -1.0)
    flat = _keep_top(scores, keep)
    out, start = {}, 0
    for n in names:
        m = masks[n]
        out[n] = flat[start:start + m.size].reshape(m.shape)
        start += m.size
    return out


def _keep_count(n: int, target_density: float) -> int:
    return int(round(n * target_density))


def prune(
    weights: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    targets: Mapping[str, float],
    rule: PruningRule,
) -> Masks:
    """Magnitude pruning of the surviving weights down to target densities.

    Only surviving weights can survive again: masks only ever lose ones.

    Args:
      weights: current values of the prunable weights (the previous level's
        trained weights W_T in IMP).
      masks: the current masks; same keys as ``weights``.
      targets: density each weight must reach (``level_densities``); the
        weights of the global group share one target, and their survivors are
        ranked together, so their individual densities differ.
      rule: scope and per-layer rates.
    """
    if set(weights) != set(masks) or set(targets) != set(masks):
        raise ValueError("weights, masks and targets must name the same weights")
    out: Masks = {}
    global_names = []
    for name in masks:
        if rule.scope == "global" and rule.rate(name) is None:
            global_names.append(name)
        else:
            out.update(_select(weights, masks, [name],
                               _keep_count(masks[name].size, targets[name])))
    if global_names:
        shared = {targets[n] for n in global_names}
        if len(shared) != 1:
            raise ValueError(f"the global group needs one target density, got {shared}")
        total = sum(masks[n].size for n in global_names)
        out.update(_select(weights, masks, global_names,
                           _keep_count(total, shared.pop())))
    return {n: out[n] for n in masks}


def level_densities(names: list[str], fraction: float, level: int,
                    rule: PruningRule) -> dict[str, float]:
    """Target density of each weight after ``level`` levels of pruning.

    A weight pruned at rate ``r`` keeps ``(1 - r * fraction)**level``; the
    rest keep ``(1 - fraction)**level``. One-shot pruning to density D is
    ``level=1, fraction=1-D``.
    """
    out = {}
    for name in names:
        r = rule.rate(name)
        out[name] = (1.0 - (1.0 if r is None else r) * fraction) ** level
    return out


def random_like(masks: Mapping[str, np.ndarray], rng: np.random.Generator) -> Masks:
    """Random pruning: per weight, the same number of survivors at random places.

    The per-layer densities equal those of ``masks`` exactly; the positions
    are uniform over the whole layer (not restricted to ``masks``' survivors).
    """
    out = {}
    for name, m in masks.items():
        keep = int(np.count_nonzero(m))
        flat = np.zeros(m.size, np.float32)
        flat[rng.choice(m.size, size=keep, replace=False)] = 1.0
        out[name] = flat.reshape(m.shape)
    return out


def save(path: str, masks: Mapping[str, np.ndarray]) -> None:
    """Writes ``masks`` as .npz, atomically (temporary name, then rename),
    where this process writes ``path`` (``chief.write_path``)."""
    if chief.is_redirected(path):
        path = chief.write_path(path)
        tf.io.gfile.makedirs(os.path.dirname(path))
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {k: np.asarray(v, np.uint8) for k, v in masks.items()}
    np.savez_compressed(buffer, **arrays)
    tmp = f"{path}.tmp"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(buffer.getvalue())
    tf.io.gfile.rename(tmp, path, overwrite=True)


def load(path: str) -> Masks:
    """Inverse of ``save``.

    Raises:
      CorruptFileError: the file is not a readable .npz of masks.
    """
    with tf.io.gfile.GFile(chief.read_path(path), "rb") as f:
        raw = f.read()
    try:
        with np.load(io.BytesIO(raw)) as data:
            return {k: data[k].astype(np.float32) for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise CorruptFileError(
            path, f"not a readable .npz: {reason}",
            "restore it from a copy: the runs that used this mask depend on it") from None
