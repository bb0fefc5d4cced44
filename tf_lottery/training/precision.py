"""Mixed precision: Keras dtype policies for the model, loss scaling for float16.

``--precision=mixed_bfloat16`` (TPUs) and ``mixed_float16`` (GPUs) make the
layers compute in 16 bits while every variable -- weights, BatchNorm
statistics, pruning masks, optimizer state -- stays float32. The engine
casts logits to float32 before the softmax cross-entropy. float16 has too
little range for small gradients, so its loss is multiplied by a dynamic
loss scale before differentiation and the gradients divided by it after
(tf_keras' ``LossScaleOptimizer``, which also skips the update of a step
whose gradients overflowed and lowers the scale); bfloat16 has float32's
range and needs no scaling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import tensorflow as tf
import tf_keras


@contextlib.contextmanager
def policy_scope(precision: str) -> Iterator[None]:
    """Layers created inside get the ``precision`` dtype policy.

    The global policy is restored on exit, so models built later (other
    trainers, tests) are unaffected.
    """
    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)


def wrap_optimizer(optimizer: tf_keras.optimizers.Optimizer,
                   precision: str) -> tf_keras.optimizers.Optimizer:
    """Adds dynamic loss scaling for float16; other precisions need none."""
    if precision == "mixed_float16":
        return tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def _scales(optimizer) -> bool:
    return isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer)


def scale_loss(optimizer, loss: tf.Tensor) -> tf.Tensor:
    """The loss to differentiate: multiplied by the loss scale if there is one."""
    return optimizer.get_scaled_loss(loss) if _scales(optimizer) else loss


def unscale_gradients(optimizer, grads: list) -> list:
    """Gradients of the true loss from those of ``scale_loss``'s."""
    return optimizer.get_unscaled_gradients(grads) if _scales(optimizer) else grads
