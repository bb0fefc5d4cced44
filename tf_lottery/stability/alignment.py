"""Aligning two networks' hidden units by weight matching: pure NumPy/SciPy.

Two networks trained from different initializations can compute nearly the
same function with their hidden units in different orders; linear
interpolation between them then averages unrelated units, and part of the
error barrier measures only that permutation symmetry (Entezari et al.
2022). Ainsworth, Hayase & Srinivasa ("Git Re-Basin", ICLR 2023) remove it
before interpolating: *weight matching* permutes network B's units to
maximize the inner product of its weights with A's, sum over weights W of
<W_A, P(W_B)>, needing no data.

The objective couples the permutations of neighbouring layers, so it is
maximized by coordinate descent: holding every other permutation fixed,
the objective is linear in one group's permutation P_g, and its best value
is a linear assignment problem on the n x n similarity matrix
C[i, j] = sum over weights touching g of <row i of W_A, row j of W_B
(permuted on its other axes)>, solved exactly by
``scipy.optimize.linear_sum_assignment``. Groups are visited in a random
order each iteration (from ``seed``) until a full pass improves no group.

Conventions. A permutation ``perms[g]`` is an index array p: the permuted
network's unit i is the original's unit p[i], i.e. every axis of group g is
gathered with ``np.take(w, p, axis)``. The spec (``models.permutation``)
says which axes each group touches; an axis may be composite (blocks of
several groups, or of one group repeated, after a Concatenate or Flatten),
in which case each block is gathered with its own group's permutation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linear_sum_assignment

if TYPE_CHECKING:
    from tf_lottery.models.permutation import Axis, PermutationSpec

Weights = Mapping[str, np.ndarray]
Permutations = dict[str, np.ndarray]


def _blocks(axis: Axis, size: int) -> tuple[tuple[str | None, int], ...]:
    if axis is None:
        return ((None, size),)
    if isinstance(axis, str):
        return ((axis, size),)
    return axis


def axis_index(axis: Axis, size: int, perms: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Gather indices that permute an axis of ``size`` elements; None for identity."""
    if axis is None:
        return None
    if isinstance(axis, str):
        return np.asarray(perms[axis])
    parts, start = [], 0
    for group, n in axis:
        local = np.arange(n) if group is None else np.asarray(perms[group])
        parts.append(start + local)
        start += n
    if start != size:
        raise ValueError(f"axis {axis} covers {start} elements, not {size}")
    return np.concatenate(parts)


def identity_permutations(spec: PermutationSpec) -> Permutations:
    return {g: np.arange(n) for g, n in spec.groups.items()}


def random_permutations(spec: PermutationSpec, seed: int) -> Permutations:
    """A uniformly random permutation per group (for tests and baselines)."""
    rng = np.random.default_rng(seed)
    return {g: rng.permutation(n) for g, n in spec.groups.items()}


def invert(perms: Mapping[str, np.ndarray]) -> Permutations:
    """The permutations that undo ``perms``."""
    return {g: np.argsort(p) for g, p in perms.items()}


def _permute(w: np.ndarray, axes: Sequence[Axis], perms, skip: int | None = None):
    if len(axes) != w.ndim:
        raise ValueError(f"spec has {len(axes)} axes for a weight of shape {w.shape}")
    for i, axis in enumerate(axes):
        index = None if i == skip else axis_index(axis, w.shape[i], perms)
        if index is not None:
            w = np.take(w, index, axis=i)
    return w


def apply_permutation(weights: Weights, spec: PermutationSpec,
                      perms: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``weights`` with every axis gathered by its group's permutation.

    Any subset of the spec's weights may be given (e.g. only the masks,
    keyed like the kernels they mask); a weight the spec does not know is an
    error rather than silently left in place. Pure indexing: no arithmetic,
    so permuting and permuting back returns the weights bit for bit.
    """
    unknown = sorted(set(weights) - set(spec.axes))
    if unknown:
        raise KeyError(f"weights not in the permutation spec: {unknown[:5]}")
    return {name: _permute(np.asarray(w), spec.axes[name], perms)
            for name, w in weights.items()}


def matched_names(spec: PermutationSpec, weights: Weights) -> list[str]:
    """Weights that enter the matching objective: parameters with a permuted axis."""
    return [n for n, axes in spec.axes.items()
            if n in weights and n not in spec.state and any(a is not None for a in axes)]


def objective(spec: PermutationSpec, weights_a: Weights, weights_b: Weights,
              perms: Mapping[str, np.ndarray], names: Sequence[str] | None = None) -> float:
    """sum over matched weights of <W_A, P(W_B)> (float64)."""
    names = matched_names(spec, weights_a) if names is None else names
    return float(sum(
        np.vdot(np.asarray(weights_a[n], np.float64),
                _permute(np.asarray(weights_b[n], np.float64), spec.axes[n], perms))
        for n in names))


def _group_rows(w: np.ndarray, axis: Axis, i: int, group: str, n: int) -> np.ndarray:
    """The entries of ``w`` on axis ``i`` that belong to ``group``, as an
    (n, -1) matrix whose row u holds everything unit u of the group touches."""
    starts, start = [], 0
    for g, size in _blocks(axis, w.shape[i]):
        if g == group:
            starts.append(start)
        start += size
    index = (np.asarray(starts)[:, None] + np.arange(n)).ravel()
    picked = np.moveaxis(np.take(w, index, axis=i), i, 0)
    picked = picked.reshape(len(starts), n, -1)
    return picked.transpose(1, 0, 2).reshape(n, -1)


def _similarity(spec, group: str, touches, weights_a, weights_b, perms) -> np.ndarray:
    n = spec.groups[group]
    cost = np.zeros((n, n))
    for name, i in touches:
        axes = spec.axes[name]
        # B permuted on every axis but this one (holding the other groups fixed).
        w_b = _permute(np.asarray(weights_b[name]), axes, perms, skip=i)
        rows_a = _group_rows(np.asarray(weights_a[name]), axes[i], i, group, n)
        rows_b = _group_rows(w_b, axes[i], i, group, n)
        cost += rows_a.astype(np.float64) @ rows_b.astype(np.float64).T
    return cost


@dataclasses.dataclass(frozen=True)
class MatchingInfo:
    """How weight matching went.

    Attributes:
      iterations: full passes over the groups that were run.
      objective: sum <W_A, P(W_B)> before the first pass and after each pass.
      converged: the last pass improved no group (False: stopped at max_iter).
    """

    iterations: int
    objective: tuple[float, ...]
    converged: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"objective": list(self.objective)}


def weight_matching(spec: PermutationSpec, weights_a: Weights, weights_b: Weights,
                    seed: int = 0, max_iter: int = 100,
                    names: Sequence[str] | None = None) -> tuple[Permutations, MatchingInfo]:
    """Permutations of B's units that maximize sum <W_A, P(W_B)> (Ainsworth et al.).

    Starts from the identity; each pass visits the groups in an order drawn
    from ``seed`` and replaces a group's permutation by the linear
    assignment optimum only when that strictly improves the objective (so
    ties keep the current alignment and the result is deterministic given
    the seed). Stops after a pass with no improvement or ``max_iter`` passes.

    Args:
      spec: the networks' ``PermutationSpec``.
      weights_a, weights_b: weights by spec name, the same shapes.
      seed: seeds the order in which groups are visited.
      max_iter: cap on the number of passes.
      names: the weights in the objective; default ``matched_names``
        (parameters only, without BatchNorm statistics and pruning state).

    Returns:
      ``(perms, info)``: apply ``perms`` to B (``apply_permutation``) to align
      it with A.
    """
    names = matched_names(spec, weights_a) if names is None else list(names)
    for n in names:
        if np.shape(weights_a[n]) != np.shape(weights_b[n]):
            raise ValueError(f"{n}: shapes {np.shape(weights_a[n])} and "
                             f"{np.shape(weights_b[n])} differ")
    groups = list(spec.groups)
    touches = {g: [(n, i) for n in names for i, axis in enumerate(spec.axes[n])
                   if axis is not None and g in {b[0] for b in _blocks(axis, -1)}]
               for g in groups}
    perms = identity_permutations(spec)
    rng = np.random.default_rng(seed)
    trace = [objective(spec, weights_a, weights_b, perms, names)]
    converged = False
    iterations = 0
    while iterations < max_iter and not converged:
        iterations += 1
        converged = True
        for k in rng.permutation(len(groups)):
            g = groups[k]
            cost = _similarity(spec, g, touches[g], weights_a, weights_b, perms)
            _, best = linear_sum_assignment(cost, maximize=True)
            rows = np.arange(len(best))
            old, new = cost[rows, perms[g]].sum(), cost[rows, best].sum()
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[g] = best
                converged = False
        trace.append(objective(spec, weights_a, weights_b, perms, names))
    return perms, MatchingInfo(iterations, tuple(trace), converged)
