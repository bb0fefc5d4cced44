"""Permutation specs read off a Keras functional graph: which weight axes permute together.

Hidden units can be reordered without changing what a network computes: if
the output units of a layer are permuted, permuting the input axis of every
consumer the same way undoes it. Weight matching (``stability.alignment``)
searches over these symmetries, so it needs, for every weight, which of its
axes move with which permutation. Writing that by hand per architecture is
error-prone (a forgotten BatchNorm statistic or projection shortcut silently
breaks the invariance), so it is derived here from the graph itself, by
walking the functional model's nodes from inputs to outputs and tracking, for
every tensor, how its last (channel/feature) axis is made of permuted parts.

Rules (channels-last tensors; "descriptor" = how a tensor's last axis is made
of blocks, each block one group's units in that group's order):

- a Dense layer's units and a Conv1D/2D/3D's output channels start a new
  permutation *group*; the kernel's input axis takes the input's descriptor;
- BatchNormalization's gamma, beta, moving mean and variance follow their
  channels; DepthwiseConv2D (depth multiplier 1) ties its output channels to
  its input channels;
- elementwise merges (a residual Add, Multiply, ...) tie their inputs to one
  permutation: the groups of matching blocks are merged (union-find);
- Concatenate on the channel axis composes its parts: the result is the
  parts' blocks one after the other, a block permutation of the axis;
- Flatten (and a Reshape to one axis) of an H x W x C tensor repeats the
  channel blocks H*W times (channels-last memory order);
- activations, dropout, pooling, padding and cropping pass the descriptor on;
- model inputs and outputs never move: the logits (and Inception's auxiliary
  logits) are pinned, as is anything merged with them;
- any other layer is treated conservatively: its inputs are pinned and its
  own weights are not permuted (recorded in ``PermutationSpec.unsupported``).
  That is always correct, only less symmetry is exploited.

``PruneLowMagnitude`` wrappers (``pruning.wrappers``) are seen through: the
wrapped layer follows its rule and each mask takes the axes of the weight it
masks. Weights are named ``"<layer>/<weight>"`` with the wrapped layer's name
(``"fc1/kernel"``, ``"fc1/mask"``, ``"conv_bn/moving_mean"``), the keys of
``pruning.wrappers.pruning_vars``, so a mask dictionary keyed like the
kernels is permuted exactly like the kernels. Names are those of one built
model (keras.applications generates layer names from a process-wide counter).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

# How one axis of a weight permutes: None (never), a group name (the whole
# axis is that group's units), or blocks ((group or None, size), ...) laid
# end to end, e.g. the input axis of a Dense after a Concatenate or Flatten.
Block = tuple[str | None, int]
Axis = str | tuple[Block, ...] | None

_FIXED = ""  # the union-find node of everything that must not move
# BatchNorm's running statistics: state rather than parameters, permuted with
# their channels but not part of the weight-matching objective (Ainsworth et
# al. match parameters only). Pruning wrappers' own variables are state too.
_STATISTICS = ("moving_mean", "moving_variance")


@dataclasses.dataclass(frozen=True)
class PermutationSpec:
    """The permutation symmetry of one built model.

    Attributes:
      axes: weight name -> one ``Axis`` per dimension of the weight. Every
        weight of the model is listed (unpermuted ones with all None).
      groups: group name -> size (number of units), in graph order. A group
        is named after the first layer whose units it permutes.
      state: names of weights that are state, not parameters (BatchNorm
        moving statistics, pruning masks and counters): they move with their
        units but weight matching ignores them.
      unsupported: layers the walk did not know and so pinned in place.
    """

    axes: Mapping[str, tuple[Axis, ...]]
    groups: Mapping[str, int]
    state: frozenset[str] = frozenset()
    unsupported: tuple[str, ...] = ()

    def group_axes(self, group: str) -> list[tuple[str, int]]:
        """(weight name, axis) of every weight axis that ``group`` touches."""
        out = []
        for name, axes in self.axes.items():
            for i, axis in enumerate(axes):
                if group in axis_groups(axis):
                    out.append((name, i))
        return out


def axis_blocks(axis: Axis, size: int) -> tuple[Block, ...]:
    """The blocks of an axis of ``size`` elements (None: one unpermuted block)."""
    if axis is None:
        return ((None, size),)
    if isinstance(axis, str):
        return ((axis, size),)
    return axis


def axis_groups(axis: Axis) -> set[str]:
    if axis is None:
        return set()
    if isinstance(axis, str):
        return {axis}
    return {g for g, _ in axis if g is not None}


# -- weights by name ---------------------------------------------------------------

def _flat_layers(model: tf_keras.Model) -> Iterator[tf_keras.layers.Layer]:
    for layer in model.layers:
        if isinstance(layer, tf_keras.Model):
            yield from _flat_layers(layer)
        else:
            yield layer


# The three helpers below define how a weight is named ("<layer>/<weight>",
# pruning wrappers seen through). They are public because every module that
# names weights the way ``weight_variables`` does must agree with it
# (``stability.layerwise`` groups weights by these names); one definition
# keeps the names from drifting apart.

def is_pruning_wrapper(layer: tf_keras.layers.Layer) -> bool:
    """Whether ``layer`` is a pruning wrapper (TFMOT's ``PruneLowMagnitude``).

    Duck-typed so that models/ needs no TFMOT import: a Keras Wrapper that
    holds (weight, mask, threshold) triples, as PruneLowMagnitude does. Its
    weights are named after the layer it wraps (``owner_name``).
    """
    return isinstance(layer, tf_keras.layers.Wrapper) and hasattr(layer, "pruning_vars")


def owner_name(layer: tf_keras.layers.Layer) -> str:
    """The layer name its weights carry: the wrapped layer's for a pruning
    wrapper, so a network names its weights the same wrapped or not."""
    return layer.layer.name if is_pruning_wrapper(layer) else layer.name


def short_name(variable: tf.Variable) -> str:
    """A variable's own name without its scopes and ``:0`` (``kernel``,
    ``moving_mean``, ``mask``): the ``<weight>`` of ``"<layer>/<weight>"``."""
    return variable.name.split("/")[-1].split(":")[0]


def weight_variables(model: tf_keras.Model) -> dict[str, tf.Variable]:
    """Every variable of ``model`` as ``"<layer>/<weight>"`` -> variable.

    The names are the spec's (see the module docstring); the order is the
    layers' order.
    """
    out: dict[str, tf.Variable] = {}
    for layer in _flat_layers(model):
        for v in layer.weights:
            name = f"{owner_name(layer)}/{short_name(v)}"
            if name in out:
                raise ValueError(f"two weights of {model.name} are named {name}")
            out[name] = v
    return out


def get_weights(model: tf_keras.Model) -> dict[str, np.ndarray]:
    """Host copies of every weight of ``model`` by spec name."""
    return {n: np.array(tf.convert_to_tensor(v)) for n, v in weight_variables(model).items()}


def set_weights(model: tf_keras.Model, weights: Mapping[str, np.ndarray]) -> None:
    """Assigns the named ``weights`` (a subset of the model's is fine)."""
    variables = weight_variables(model)
    unknown = sorted(set(weights) - set(variables))
    if unknown:
        raise KeyError(f"{model.name} has no weights named {unknown[:5]}")
    for name, value in weights.items():
        variables[name].assign(np.asarray(value, variables[name].dtype.as_numpy_dtype))


# -- the graph walk ------------------------------------------------------------------

Descriptor = tuple[tuple[str, int], ...]  # blocks of (union-find node, size)


class _Groups:
    """Union-find over permutation groups; ``_FIXED`` is the pinned class."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {_FIXED: _FIXED}
        self.sizes: dict[str, int] = {}  # in creation (graph) order

    def new(self, name: str, size: int) -> str:
        if name not in self.parent:
            self.parent[name] = name
            self.sizes[name] = size
        return name

    def _older(self, a: str, b: str) -> bool:
        order = list(self.sizes)
        return order.index(a) < order.index(b)

    def find(self, g: str) -> str:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        # The pinned class absorbs; otherwise the older group names the class.
        if rb == _FIXED or (ra != _FIXED and self._older(rb, ra)):
            ra, rb = rb, ra
        self.parent[rb] = ra

    def pin(self, desc: Descriptor) -> None:
        for g, _ in desc:
            self.union(_FIXED, g)

    def tie(self, a: Descriptor, b: Descriptor) -> None:
        """Elementwise merge: blocks at the same positions share a permutation;
        blocks whose boundaries do not line up (or broadcast) are pinned."""
        at_a, at_b = _positions(a), _positions(b)
        for key in at_a.keys() | at_b.keys():
            if key in at_a and key in at_b:
                self.union(at_a[key], at_b[key])
            else:
                self.union(_FIXED, at_a[key] if key in at_a else at_b[key])


def _positions(desc: Descriptor) -> dict[tuple[int, int], str]:
    """(start, size) -> group of every block."""
    out, start = {}, 0
    for g, size in desc:
        out[(start, size)] = g
        start += size
    return out


def _fixed(size) -> Descriptor:
    return ((_FIXED, int(size) if size is not None else -1),)


def _last_dim(tensor) -> int | None:
    return tensor.shape[-1] if tensor.shape.rank else None


# A rule sees the layer, its input descriptors and input/output tensors, and
# returns the output descriptors and the descriptor of every weight axis by
# the weight's short name (None: the axis never moves), or None when it does
# not apply (the layer is then handled conservatively).
RuleResult = tuple[list[Descriptor], dict[str, tuple[Descriptor | None, ...]]] | None
Rule = Callable[["_Groups", tf_keras.layers.Layer, str, list[Descriptor], list, list],
                RuleResult]

_PASS_THROUGH = (
    tf_keras.layers.Activation, tf_keras.layers.ReLU, tf_keras.layers.LeakyReLU,
    tf_keras.layers.ELU, tf_keras.layers.Softmax, tf_keras.layers.Dropout,
    tf_keras.layers.SpatialDropout1D, tf_keras.layers.SpatialDropout2D,
    tf_keras.layers.GaussianNoise, tf_keras.layers.GaussianDropout,
    tf_keras.layers.MaxPooling1D, tf_keras.layers.MaxPooling2D, tf_keras.layers.MaxPooling3D,
    tf_keras.layers.AveragePooling1D, tf_keras.layers.AveragePooling2D,
    tf_keras.layers.AveragePooling3D, tf_keras.layers.GlobalAveragePooling1D,
    tf_keras.layers.GlobalAveragePooling2D, tf_keras.layers.GlobalAveragePooling3D,
    tf_keras.layers.GlobalMaxPooling1D, tf_keras.layers.GlobalMaxPooling2D,
    tf_keras.layers.GlobalMaxPooling3D, tf_keras.layers.ZeroPadding1D,
    tf_keras.layers.ZeroPadding2D, tf_keras.layers.ZeroPadding3D,
    tf_keras.layers.Cropping1D, tf_keras.layers.Cropping2D, tf_keras.layers.Cropping3D,
    tf_keras.layers.UpSampling1D, tf_keras.layers.UpSampling2D, tf_keras.layers.UpSampling3D,
)
_ELEMENTWISE = (tf_keras.layers.Add, tf_keras.layers.Subtract, tf_keras.layers.Multiply,
                tf_keras.layers.Average, tf_keras.layers.Maximum, tf_keras.layers.Minimum)
_CONVS = (tf_keras.layers.Conv1D, tf_keras.layers.Conv2D, tf_keras.layers.Conv3D)
_BATCH_NORMS = (tf_keras.layers.BatchNormalization,
                tf_keras.layers.experimental.SyncBatchNormalization)


def _channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _pass_through(groups, layer, name, ins, in_t, out_t) -> RuleResult:
    if len(ins) != 1 or not _channels_last(layer):
        return None
    return [ins[0]], {}


def _dense(groups, layer, name, ins, in_t, out_t) -> RuleResult:
    out = ((groups.new(name, layer.units), layer.units),)
    return [out], {"kernel": (ins[0], out), "bias": (out,)}


def _conv(groups, layer, name, ins, in_t, out_t) -> RuleResult:
    if layer.groups != 1 or not _channels_last(layer):
        return None
    out = ((groups.new(name, layer.filters), layer.filters),)
    return [out], {"kernel": (None,) * layer.rank + (ins[0], out), "bias": (out,)}


def _depthwise(groups, layer, name, ins, in_t, out_t) -> RuleResult:
    # Output channel c is input channel c filtered alone: one permutation.
    if layer.depth_multiplier != 1 or not _channels_last(layer):
        return None
    return [ins[0]], {"depthwise_kernel": (None, None, ins[0], None), "bias": (ins[0],)}


def _batch_norm(groups, layer, name, ins, in_t, out_t) -> RuleResult:
    if list(layer.axis) != [in_t[0].shape.rank - 1]:
        return None
    x = ins[0]
    return [x], {w: (x,) for w in ("gamma", "beta", "moving_mean", "moving_variance")}


def _flatten(groups, layer, name, ins, in_t, out_t) -> RuleResult:
    # Channels-last memory order: position p of the flat axis is channel
    # p mod C at spatial position p // C, so the channel blocks repeat.
    spatial = in_t[0].shape[1:-1]
    if not _channels_last(layer) or None in spatial:
        return None
    return [ins[0] * math.prod(spatial)], {}


def _reshape(groups, layer, name, ins, in_t, out_t) -> RuleResult:
    target = tuple(layer.target_shape)
    if target and target[-1] == _last_dim(in_t[0]) and len(target) > 1:
        return [ins[0]], {}
    if len(target) == 1:
        return _flatten(groups, layer, name, ins, in_t, out_t)
    return None


def _elementwise(groups, layer, name, ins, in_t, out_t) -> RuleResult:
    for other in ins[1:]:
        groups.tie(ins[0], other)
    if sum(size for _, size in ins[0]) != _last_dim(out_t[0]):
        for d in ins:
            groups.pin(d)
        return [_fixed(_last_dim(out_t[0]))], {}
    return [ins[0]], {}


def _concatenate(groups, layer, name, ins, in_t, out_t) -> RuleResult:
    rank = out_t[0].shape.rank
    if layer.axis % rank != rank - 1:
        return _elementwise(groups, layer, name, ins, in_t, out_t)
    return [sum(ins, ())], {}


def _input(groups, layer, name, ins, in_t, out_t) -> RuleResult:
    return [_fixed(_last_dim(t)) for t in out_t], {}


def _rule(layer: tf_keras.layers.Layer) -> Rule | None:
    kind = type(layer)
    if kind is tf_keras.layers.InputLayer:
        return _input
    if kind in _PASS_THROUGH:
        return _pass_through
    if kind is tf_keras.layers.Dense:
        return _dense
    if kind is tf_keras.layers.DepthwiseConv2D:
        return _depthwise
    if kind in _CONVS:
        return _conv
    if isinstance(layer, _BATCH_NORMS):
        return _batch_norm
    if kind is tf_keras.layers.Flatten:
        return _flatten
    if kind is tf_keras.layers.Reshape:
        return _reshape
    if kind in _ELEMENTWISE:
        return _elementwise
    if kind is tf_keras.layers.Concatenate:
        return _concatenate
    return None


class _Walk:
    """Visits a functional model's nodes from inputs to outputs."""

    def __init__(self, model: tf_keras.Model):
        nodes = getattr(model, "_nodes_by_depth", None)
        if not nodes:
            raise ValueError(f"{model.name} is not a functional or Sequential model "
                             "with an Input: no graph to derive permutations from")
        self.model = model
        self.groups = _Groups()
        self.tensors: dict[int, Descriptor] = {}  # id(KerasTensor) -> descriptor
        self.first_inputs: dict[int, list[Descriptor]] = {}  # id(layer) -> inputs
        self.weights: dict[str, tuple[Descriptor | None, ...]] = {}
        self.state: set[str] = set()  # pruning wrappers' masks, thresholds, counters
        self.unsupported: list[str] = []
        for depth in sorted(nodes, reverse=True):  # inputs have the largest depth
            for node in nodes[depth]:
                self.visit(node)
        for output in model.outputs:
            self.groups.pin(self.tensors[id(output)])

    def visit(self, node) -> None:
        layer = node.layer
        inner = layer.layer if is_pruning_wrapper(layer) else layer
        in_t, out_t = list(node.keras_inputs), tf.nest.flatten(node.outputs)
        ins = [self.tensors[id(t)] for t in in_t]
        if layer.weights:
            # A shared layer applies one set of weights to every input.
            first = self.first_inputs.setdefault(id(layer), ins)
            for a, b in zip(first, ins, strict=True):
                self.groups.tie(a, b)
        rule = _rule(inner)
        result = rule(self.groups, inner, inner.name, ins, in_t, out_t) if rule else None
        if result is not None and not self._record_weights(layer, result[1]):
            result = None
        if result is None:
            if layer.name not in self.unsupported:
                self.unsupported.append(layer.name)
            for d in ins:
                self.groups.pin(d)
            result = ([_fixed(_last_dim(t)) for t in out_t], {})
        for t, d in zip(out_t, result[0], strict=True):
            self.tensors[id(t)] = d

    def _record_weights(self, layer, axes: dict) -> bool:
        """Stores the layer's weight axes; False if it has weights the rule
        does not know (then nothing is stored)."""
        owner = owner_name(layer)
        found: dict[str, Any] = {}
        if is_pruning_wrapper(layer):
            for weight, mask, threshold in layer.pruning_vars:
                found[short_name(mask)] = axes.get(short_name(weight))
                found[short_name(threshold)] = ()
            found["pruning_step"] = ()
        for v in layer.weights:
            short = short_name(v)
            if short not in found and short not in axes:
                return False
            found.setdefault(short, axes.get(short))
        if is_pruning_wrapper(layer):
            self.state |= {f"{owner}/{short_name(v)}" for v in layer.weights
                           if all(v is not w for w in layer.layer.weights)}
        for short, desc in found.items():
            self.weights.setdefault(f"{owner}/{short}", desc)
        return True

    def resolve(self, desc: Descriptor | None) -> Axis:
        """A descriptor in terms of the final groups (pinned blocks: None)."""
        if desc is None:
            return None
        blocks: list[Block] = []
        for g, size in desc:
            root = self.groups.find(g)
            group = None if root == _FIXED else root
            if blocks and group is None and blocks[-1][0] is None:
                blocks[-1] = (None, blocks[-1][1] + size)
            else:
                blocks.append((group, size))
        if len(blocks) == 1:
            return blocks[0][0]
        return tuple(blocks)


def permutation_spec(model: tf_keras.Model) -> PermutationSpec:
    """Derives the permutation symmetry of a functional ``model`` from its graph.

    Raises:
      ValueError: ``model`` has no functional graph (a subclassed model).
    """
    walk = _Walk(model)
    axes: dict[str, tuple[Axis, ...]] = {}
    used: set[str] = set()
    for name, v in weight_variables(model).items():
        shape = tuple(v.shape)
        descs = walk.weights.get(name) or (None,) * len(shape)
        if len(descs) != len(shape):
            raise ValueError(f"{name}: {len(descs)} axes derived for shape {shape}")
        axes[name] = tuple(walk.resolve(d) for d in descs)
        for i, axis in enumerate(axes[name]):
            if sum(size for _, size in axis_blocks(axis, shape[i])) != shape[i]:
                raise ValueError(f"{name}: axis {i} of {shape} derived as {axis}")
            used |= axis_groups(axis)
    groups = {g: walk.groups.sizes[g] for g in walk.groups.sizes if g in used}
    state = frozenset(walk.state | {n for n in axes if n.rsplit("/", 1)[1] in _STATISTICS})
    return PermutationSpec(axes=axes, groups=groups, state=state,
                           unsupported=tuple(walk.unsupported))
