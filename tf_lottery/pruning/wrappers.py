"""TFMOT ``PruneLowMagnitude`` wrappers that hold masks our code sets.

``wrap_model`` wraps the kernels of Dense and Conv layers (DepthwiseConv2D
included) of any tf_keras model in ``PruneLowMagnitude`` wrappers
(``FixedMaskWrapper``) with a pruning schedule that never fires, so TFMOT
never changes a mask: masks are computed by ``tf_lottery.pruning.masks`` and
assigned through ``wrapper.pruning_vars`` (as google-research/rigl's
``rigl_tf2`` does). Biases, BatchNorm and every
other layer are left unwrapped and are never pruned.

Keeping pruned weights at exactly 0 is this module's job, at every point
where weights change:

- ``set_masks`` (and ``copy_weights``) zero the pruned weights when a mask or
  new weights are assigned;
- ``mask_gradients`` (a ``TrainerHooks.gradient_fns`` entry) multiplies
  gradients by the masks: the gradient of the effective weight w*m, as in the original
  lottery ticket code; the moments of pruned weights stay zero and their
  gradients stay out of gradient clipping;
- ``enforce_masks`` (a ``TrainerHooks.post_update_fns`` entry, run inside
  the replica step right after the optimizer update) re-applies the masks:
  optimizer state restored from a dense W_k, or weight decay inside an
  optimizer, can still move pruned weights.

So pruned weights are exactly 0 after every step, hence in every checkpoint
and at every point interpolated between two networks with the same mask.
With all-ones masks the wrapped model trains bit for bit like the unwrapped
one (x * 1 == x), which is what lets IMP's level 0 *be* the dense run.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras

# The wrapper class is not exported by tfmot's public API (rigl_tf2 imports
# it the same way); it is what prune_low_magnitude returns.
from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
    PruneLowMagnitude,
)

from tf_lottery.errors import FieldError
from tf_lottery.models import permutation
from tf_lottery.training.trainer import TrainerHooks

# Exact classes: a subclass may hold other weights than its parent's.
PRUNABLE_TYPES = (
    tf_keras.layers.Dense,
    tf_keras.layers.Conv1D,
    tf_keras.layers.Conv2D,
    tf_keras.layers.Conv3D,
    tf_keras.layers.Conv2DTranspose,
    tf_keras.layers.Conv3DTranspose,
    tf_keras.layers.DepthwiseConv2D,
)


def _prunable(layer: tf_keras.layers.Layer) -> tf_keras.layers.Layer:
    """``layer``, ready for ``PruneLowMagnitude``. TFMOT's registry lists no
    prunable weight for DepthwiseConv2D (its wrapper would hold no mask), so
    the layer is given its own ``get_prunable_weights``, which the wrapper
    prefers to the registry: the depthwise kernel, like any conv kernel."""
    if type(layer) is tf_keras.layers.DepthwiseConv2D:
        layer.get_prunable_weights = lambda: [layer.depthwise_kernel]
    return layer


class FixedMaskSchedule(tfmot.sparsity.keras.PruningSchedule):
    """A pruning schedule that never asks TFMOT to update a mask."""

    def __call__(self, step):
        del step
        return tf.constant(False), tf.constant(0.0)

    def get_config(self) -> dict:
        return {}


class FixedMaskWrapper(PruneLowMagnitude):
    """``PruneLowMagnitude`` whose forward pass only runs the wrapped layer.

    TFMOT's own ``call`` adds, on every forward pass (training and
    evaluation), a step-counter update, a mask-update check and a
    re-multiplication of each kernel by its mask that, under a distribution
    strategy, all-reduces every kernel (MEAN over replicas). With masks that
    never change and are enforced after every update by ``enforce_masks``
    (and by ``set_masks`` / ``copy_weights``), that work is redundant, and
    not free: it took LeNet-300-100 from ~500 to ~360 training steps/s on a
    2-core CPU, it would add an all-reduce of every kernel to each training
    and evaluation step on a TPU pod, and a MEAN of n equal float32 values
    summed in sequence is not always that value (n = 3, 5, 6, ...). Masks,
    variables and checkpoint layout are TFMOT's.
    """

    def call(self, inputs, training=None, **kwargs):
        if "training" in inspect.getfullargspec(self.layer.call).args:
            kwargs["training"] = training
        return self.layer.call(inputs, **kwargs)


def _allowed(layer: tf_keras.layers.Layer, exclude: Sequence[str], used: set[str]) -> bool:
    """Dense/Conv layers whose name no exclusion pattern fully matches."""
    if type(layer) not in PRUNABLE_TYPES:
        return False
    for pattern in exclude:
        if re.fullmatch(pattern, layer.name):
            used.add(pattern)
            return False
    return True


def all_layers(model: tf_keras.Model):
    for layer in model.layers:
        if isinstance(layer, tf_keras.Model):
            yield from all_layers(layer)
        else:
            yield layer


def wrap_model(model: tf_keras.Model, exclude: Sequence[str] = ()) -> tf_keras.Model:
    """The same network with prunable kernels held by ``PruneLowMagnitude``.

    Call inside the strategy's scope. The layers themselves (and so their
    weights, e.g. W_0 drawn from the init seed) are reused, not re-created.
    Masks start all ones.

    Args:
      model: a functional or Sequential tf_keras model (nested ones too).
      exclude: regexes; a layer whose name fully matches one stays dense.

    Raises:
      FieldError: (``pruning.exclude``) an exclusion pattern matches no
        Dense/Conv layer, or nothing is left to prune.
    """
    used: set[str] = set()
    candidates = [layer.name for layer in all_layers(model)
                  if type(layer) in PRUNABLE_TYPES]

    def clone(layer: tf_keras.layers.Layer) -> tf_keras.layers.Layer:
        # As tfmot.sparsity.keras.prune_low_magnitude(model), which builds
        # plain PruneLowMagnitude wrappers: nested models are cloned, other
        # layers reused.
        if isinstance(layer, tf_keras.Model):
            return tf_keras.models.clone_model(layer, clone_function=clone)
        if _allowed(layer, exclude, used):
            return FixedMaskWrapper(_prunable(layer), pruning_schedule=FixedMaskSchedule())
        return layer

    wrapped = tf_keras.models.clone_model(model, clone_function=clone)
    unused = [p for p in exclude if p not in used]
    if unused:
        raise FieldError(
            "pruning.exclude", f"pattern(s) {', '.join(unused)} match no Dense/Conv "
            f"layer of {model.name} (layers: {', '.join(candidates)})")
    if not pruning_vars(wrapped):
        raise FieldError("pruning.exclude", f"leaves no prunable layer in {model.name}")
    return wrapped


def pruning_vars(model: tf_keras.Model) -> dict[str, tuple[tf.Variable, tf.Variable]]:
    """``"<layer>/<weight>" -> (weight, mask)`` for every wrapped kernel."""
    out = {}
    for layer in all_layers(model):
        if isinstance(layer, PruneLowMagnitude):
            for weight, mask, _ in layer.pruning_vars:
                name = f"{layer.layer.name}/{permutation.short_name(weight)}"
                if name in out:
                    raise ValueError(f"two prunable weights are named {name}")
                out[name] = (weight, mask)
    return out


def weight_values(model: tf_keras.Model) -> dict[str, np.ndarray]:
    """Current values of the prunable weights."""
    return {n: w.numpy() for n, (w, _) in pruning_vars(model).items()}


def get_masks(model: tf_keras.Model) -> dict[str, np.ndarray]:
    """Current masks."""
    return {n: m.numpy() for n, (_, m) in pruning_vars(model).items()}


def set_masks(model: tf_keras.Model, masks: dict[str, np.ndarray]) -> None:
    """Assigns ``masks`` and zeroes the pruned weights (cross-replica context)."""
    variables = pruning_vars(model)
    if set(masks) != set(variables):
        raise ValueError(f"masks for {sorted(masks)} do not fit the model's "
                         f"prunable weights {sorted(variables)}")
    for name, (weight, mask) in variables.items():
        mask.assign(np.asarray(masks[name], mask.dtype.as_numpy_dtype))
        weight.assign(weight * mask)


def enforce_masks(model: tf_keras.Model) -> None:
    """A ``TrainerHooks.post_update_fns`` entry: w <- w * m after each update.

    Runs in the replica context of the train step; each replica multiplies
    its own copy (the copies are identical, so no reduction is needed).
    """
    pairs = list(pruning_vars(model).values())

    def update(strategy: tf.distribute.Strategy) -> None:
        for weight, mask in pairs:
            strategy.extended.update(
                weight, lambda w, m: w.assign(w * m), args=(mask,))

    tf.distribute.get_replica_context().merge_call(update)


def mask_gradients(model: tf_keras.Model, grads: list, variables: list) -> list:
    """A ``TrainerHooks.gradient_fns`` entry: grad <- grad * m for masked weights."""
    masks = {w.ref(): m for w, m in pruning_vars(model).values()}
    return [g * masks[v.ref()] if g is not None and v.ref() in masks else g
            for g, v in zip(grads, variables, strict=True)]


def masked_training(exclude: Sequence[str] = ()) -> TrainerHooks:
    """Trainer hooks under which masks hold: kernels wrapped (but those of
    layers ``exclude`` matches), gradients masked, masks re-applied after
    every update."""
    return TrainerHooks(wrap_model=functools.partial(wrap_model, exclude=tuple(exclude)),
                        gradient_fns=(mask_gradients,), post_update_fns=(enforce_masks,))


def copy_weights(source: tf_keras.Model, target: tf_keras.Model) -> None:
    """Copies every weight of an unwrapped model into its wrapped twin.

    Masks are left as they are; pruned positions are zeroed afterwards so the
    target stays consistent with its masks. Used to give a wrapped model a
    fresh initialization (random reinitialization).
    """
    src = list(all_layers(source))
    dst = list(all_layers(target))
    if len(src) != len(dst):
        raise ValueError(f"{source.name} and {target.name} have different layers")
    for s, d in zip(src, dst, strict=True):
        inner = d.layer if isinstance(d, PruneLowMagnitude) else d
        # Types, not names: auto-generated names differ between two builds.
        if type(inner) is not type(s):
            raise ValueError(f"layer {s.name} does not match {inner.name}")
        inner.set_weights(s.get_weights())
    for weight, mask in pruning_vars(target).values():
        weight.assign(weight * mask)
