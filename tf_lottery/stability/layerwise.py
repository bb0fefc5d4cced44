"""Layer-wise barriers: where along the network a pair's barrier lives.

For a pair of networks W₁, W₂ and a *group* g of weights (a layer, a
residual block, an Inception module), the group's path moves g alone and
leaves every other weight at child 1:
W_g(α) = W₁ with g replaced by (1−α)·W₁[g] + α·W₂[g]. Its barrier (the
error barrier of that path, ``barrier.error_barrier``) says how much of the
pair's instability g carries (Adilova et al. 2023: barriers concentrate in
a few layers). Moving every group at once is the pair's own path.

Groups are read off the Keras graph, not written per architecture
(``groups``): the graph is cut at every tensor that all paths from the
inputs to the (main) output go through; the layers between two cuts form a
segment, so a chain (LeNet, VGG) splits into its layers, a residual block
(its convolutions, BatchNorms and projection shortcut, up to the Add) and an
Inception module (its branches, up to the Concatenate) are one segment
each. A segment whose weights hold no kernel (a BatchNorm after its
convolution) joins the segment before it, so a Dense/Conv layer carries its
BatchNorm. Layers that only feed other outputs (Inception's auxiliary head)
form one group per such output. Weights are named as in
``models.permutation`` (``"<layer>/<weight>"``, pruning wrappers seen
through; a wrapper's mask belongs to its layer's group).

Evaluation goes through ``PathEvaluator.point``: the trainer's model, its
distributed evaluation loop and ``--bn_mode`` as for the pair's own path
(with ``recompute`` every BatchNorm's statistics are re-estimated at every
point, since they depend on all the weights). The shared start W₁ (α = 0)
is evaluated once for all groups.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras
from absl import logging

from tf_lottery.core.layout import SPLITS
from tf_lottery.models import permutation
from tf_lottery.stability import barrier, interpolation
from tf_lottery.stability.path_evaluator import PathEvaluator

Weights = interpolation.Weights


@dataclasses.dataclass(frozen=True)
class Group:
    """Weights that move together on a layer-wise path.

    Attributes:
      name: the kernel layer's name for a single layer, else the name of the
        segment's last layer (a residual block's Add, an Inception module's
        Concatenate), or of the output a head feeds.
      layers: the layers whose weights it holds, in the model's layer order.
      weights: their weights' names (``permutation.weight_variables``).
    """

    name: str
    layers: tuple[str, ...]
    weights: tuple[str, ...]


def _inner(layer: tf_keras.layers.Layer) -> tf_keras.layers.Layer:
    return layer.layer if permutation.is_pruning_wrapper(layer) else layer


def _has_kernel(layer: tf_keras.layers.Layer) -> bool:
    return any("kernel" in permutation.short_name(v) for v in _inner(layer).weights)


def _producers(model: tf_keras.Model) -> dict[int, Any]:
    """id(KerasTensor) -> the node that produces it."""
    out = {}
    for depth_nodes in model._nodes_by_depth.values():
        for node in depth_nodes:
            for t in tf.nest.flatten(node.outputs):
                out[id(t)] = node
    return out


def _ancestors(output, producers: dict[int, Any]) -> set[int]:
    """ids of the nodes ``output`` depends on (its own producer included)."""
    seen: set[int] = set()
    stack = [producers[id(output)]]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack += [producers[id(t)] for t in node.keras_inputs if id(t) in producers]
    return seen


def _segments(model: tf_keras.Model, keep: set[int]) -> list[list[tf_keras.layers.Layer]]:
    """The layers of the nodes in ``keep``, cut at every tensor that is the
    only one still to be consumed (Keras' depth order puts every ancestor of a
    node before it, so such a tensor is one all paths go through)."""
    nodes = [node for depth in sorted(model._nodes_by_depth, reverse=True)
             for node in model._nodes_by_depth[depth] if id(node) in keep]
    remaining: dict[int, int] = {}
    for node in nodes:
        for t in node.keras_inputs:
            remaining[id(t)] = remaining.get(id(t), 0) + 1
    for output in model.outputs:
        remaining[id(output)] = remaining.get(id(output), 0) + 1
    open_: set[int] = set()
    segments: list[list[tf_keras.layers.Layer]] = [[]]
    for node in nodes:
        for t in node.keras_inputs:
            remaining[id(t)] -= 1
            if remaining[id(t)] == 0:
                open_.discard(id(t))
        for t in tf.nest.flatten(node.outputs):
            if remaining.get(id(t), 0) > 0:
                open_.add(id(t))
        segments[-1].append(node.layer)
        if len(open_) <= 1:
            segments.append([])
    return [s for s in segments if s]


def groups(model: tf_keras.Model) -> list[Group]:
    """The model's layer-wise groups, in graph order; every weight of the
    model is in exactly one.

    Raises:
      ValueError: ``model`` has no functional graph, or a weighted layer is
        reached from no output.
    """
    if not getattr(model, "_nodes_by_depth", None):
        raise ValueError(f"{model.name} is not a functional model: no graph to group by")
    producers = _producers(model)
    taken: set[int] = set()  # id(layer) already in a group (shared layers: once)
    found: list[tuple[str, list[tf_keras.layers.Layer]]] = []
    main = _ancestors(model.outputs[0], producers)
    for segment in _segments(model, main):
        weighted = [layer for layer in segment if layer.weights and id(layer) not in taken]
        if not weighted:
            continue
        taken.update(id(layer) for layer in weighted)
        kernels = [layer for layer in weighted if _has_kernel(layer)]
        if not kernels and found:
            found[-1][1].extend(weighted)  # a BatchNorm joins its convolution
            continue
        name = (permutation.owner_name(kernels[0]) if len(kernels) == 1
                else permutation.owner_name(segment[-1]))
        found.append((name, weighted))
    for output in model.outputs[1:]:
        head = [node.layer for depth in sorted(model._nodes_by_depth, reverse=True)
                for node in model._nodes_by_depth[depth]
                if id(node) in _ancestors(output, producers)]
        weighted = [layer for layer in head if layer.weights and id(layer) not in taken]
        if weighted:
            taken.update(id(layer) for layer in weighted)
            found.append((permutation.owner_name(producers[id(output)].layer), weighted))
    names = permutation.weight_variables(model)
    position = {id(layer): i for i, layer in enumerate(model.layers)}
    out = []
    for name, layers in found:
        owners = [permutation.owner_name(layer)
                  for layer in sorted(layers, key=lambda layer: position[id(layer)])]
        weights = tuple(n for n in names if n.rsplit("/", 1)[0] in owners)
        out.append(Group(name, tuple(owners), weights))
    covered = {w for g in out for w in g.weights}
    missing = [n for n in names if n not in covered]
    if missing:
        raise ValueError(f"{model.name}: weights {missing[:5]} are in no layer-wise group "
                         "(their layers feed no output)")
    return out


def parameters(model: tf_keras.Model, group: Group) -> int:
    """Scalars in the group's own floating-point weights, pruned zeros
    included. A pruning wrapper's mask and threshold are not counted: they
    are the wrapper's bookkeeping (equal at both ends of a path), not the
    network's weights, so an IMP level's group has the dense network's size."""
    variables = permutation.weight_variables(model)
    state = {id(v) for layer in model.submodules if permutation.is_pruning_wrapper(layer)
             for v in layer.weights if all(v is not w for w in layer.layer.weights)}
    return sum(int(np.prod(variables[w].shape)) for w in group.weights
               if variables[w].dtype.is_floating and id(variables[w]) not in state)


def moving_masks(model: tf_keras.Model, found: Sequence[Group],
                 variables: Sequence[tf.Variable]) -> list[list[bool]]:
    """For each group, which of ``variables`` (a path's, in its order) move."""
    by_id = {id(v): n for n, v in permutation.weight_variables(model).items()}
    names = [by_id[id(v)] for v in variables]
    return [[n in set(g.weights) for n in names] for g in found]


def endpoint_for(w1: Weights, w2: Weights, moving: Sequence[bool]) -> Weights:
    """W₁ with the moving arrays taken from W₂: the far end of a group's path."""
    if not len(w1) == len(w2) == len(moving):
        raise ValueError(f"{len(w1)}, {len(w2)} arrays and {len(moving)} flags")
    return [b if m else a for a, b, m in zip(w1, w2, moving, strict=True)]


def curves(evaluator: PathEvaluator, w1: Weights, w2: Weights,
           masks: Sequence[Sequence[bool]], points: int) -> list[dict]:
    """Error and loss along each group's path at ``points`` evenly spaced α.

    Returns one dict per mask, shaped like ``PathEvaluator.curves``
    (``alphas``, ``<split>_error``, ``<split>_loss``, ``barrier``). The
    model is left holding the last group's far end.
    """
    grid = [float(a) for a in interpolation.alphas(points)]
    start = evaluator.point(w1, w1, 0.0)
    out = []
    for moving in masks:
        far = endpoint_for(w1, w2, moving)
        per_point = [start] + [evaluator.point(w1, far, a) for a in grid[1:]]
        result: dict = {"alphas": grid}
        for split in SPLITS:
            for metric in ("error", "loss"):
                result[f"{split}_{metric}"] = [p[f"{split}_{metric}"] for p in per_point]
        result["barrier"] = {s: barrier.error_barrier(result[f"{s}_error"]) for s in SPLITS}
        out.append(result)
    return out


def evaluate(evaluator: PathEvaluator, w1: Weights, w2: Weights, points: int,
             label: str = "layer-wise") -> list[tuple[Group, dict]]:
    """Every group of the evaluator's model with its path's curves."""
    model = evaluator.trainer.model
    found = groups(model)
    started = time.perf_counter()
    results = curves(evaluator, w1, w2, moving_masks(model, found, evaluator.variables),
                     points)
    for g, r in zip(found, results, strict=True):
        logging.info("%s: %s moves alone: test barrier %.4f, train barrier %.4f", label,
                     g.name, r["barrier"]["test"], r["barrier"]["train"])
    logging.info("%s: %d groups x %d points in %.1f s", label, len(found), points,
                 time.perf_counter() - started)
    return list(zip(found, results, strict=True))
