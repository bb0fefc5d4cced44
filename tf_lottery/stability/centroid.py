"""The centroid of N networks: their plain average, raw and after alignment.

Pairwise linear mode connectivity says every two children of W_k are joined
by a low-error segment. Whether all N are connected *at once* is a stronger
question; the simplest test is their centroid W̄ = (1/N)·Σ W_i, the model
soup of Wortsman et al. 2022 (Sharma et al. 2024 study it against k): if the
children share one convex low-error region, W̄ lies in it and its error is
near the children's. The **gap** is E(W̄) − mean_i E(W_i), per split.

Two centroids:

- raw: the children's weights averaged as they are;
- aligned: children 2..N are first aligned to child 1 by weight matching
  (``alignment.weight_matching``, with the experiments' seed and pass cap),
  then averaged. Child 1 is the reference because it is the one choice that
  needs N − 1 matchings and no iteration; its hidden units' order is as good
  as any other's, but the centroid leans towards its basin. An iterated
  merge (align each to the mean of the others until nothing changes,
  Ainsworth et al.'s MergeMany) is not done here.

The average is computed in float64 and written in the weights' dtype, so
the centroid of N identical networks is that network bit for bit (N copies
of a float32 value sum exactly in float64 and divide back to it).

BatchNorm: averaging the children's moving statistics does not give the
statistics of the averaged network (a unit's input distribution changes
non-linearly with the weights, as along a path, ``bn``), so a network with
BatchNorm layers always gets its centroid's statistics re-estimated on
training batches (``bn.BatchNormRecompute``), whatever ``--bn_mode`` says
of paths. Pruning masks (equal in every child) average to themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tf_lottery.models import permutation
from tf_lottery.stability import aligned_paths
from tf_lottery.stability.path_evaluator import PathEvaluator

Named = dict[str, np.ndarray]


def average(networks: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of networks given as arrays in one order, in
    float64, returned in the first network's dtypes."""
    if not networks:
        raise ValueError("the centroid of no networks")
    out = []
    for arrays in zip(*networks, strict=True):
        total = np.zeros(np.shape(arrays[0]), np.float64)
        for a in arrays:
            total += np.asarray(a, np.float64)
        out.append((total / len(arrays)).astype(np.asarray(arrays[0]).dtype))
    return out


def align_to_first(spec: permutation.PermutationSpec, networks: Sequence[Named]
                   ) -> tuple[list[Named], list[dict]]:
    """Networks 2..N aligned to network 1 by weight matching, network 1 as
    it is; and each matching's record (``aligned_paths.align_endpoints``)."""
    out, matchings = [dict(networks[0])], []
    for other in networks[1:]:
        aligned, matching = aligned_paths.align_endpoints(
            spec, networks[0], other, aligned_paths.MATCHING_SEED,
            aligned_paths.MATCHING_MAX_ITER)
        out.append(aligned)
        matchings.append(matching)
    return out, matchings


def evaluate(evaluator: PathEvaluator, checkpoints: Sequence[str], *, aligned: bool,
             recompute: Callable[[], None] | None) -> dict:
    """Error and loss of the centroid of the networks in ``checkpoints``.

    ``recompute`` re-estimates BatchNorm statistics (None: the model has no
    BatchNorm, or the evaluator's own ``prepare`` already does). Returns
    ``{"raw": metrics, "aligned": metrics or None, "matching": [...]}``
    with ``<split>_error`` / ``<split>_loss`` metrics (``PathEvaluator``'s
    keys).
    """
    trainer = evaluator.trainer
    named = [aligned_paths.endpoint_weights(trainer, c) for c in checkpoints]
    found: dict = {"aligned": None, "matching": None}
    versions = [("raw", named)]
    if aligned:
        spec = permutation.permutation_spec(trainer.model)
        moved, found["matching"] = align_to_first(spec, named)
        versions.append(("aligned", moved))
    for name, networks in versions:
        arrays = [aligned_paths.path_arrays(trainer, n) for n in networks]
        found[name] = measure(evaluator, average(arrays), recompute)
    return found


def measure(evaluator: PathEvaluator, weights: list[np.ndarray],
            recompute: Callable[[], None] | None) -> dict[str, float]:
    """``PathEvaluator.at``, with BatchNorm statistics re-estimated first
    where ``recompute`` is given."""
    if recompute is None:
        return evaluator.at(weights)
    evaluator.write(weights)
    recompute()
    return evaluator.measure()
