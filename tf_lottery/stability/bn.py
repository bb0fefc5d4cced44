"""BatchNorm moving statistics of an interpolated network: interpolate or recompute.

A point W(α) on the path has interpolated weights, but its BatchNorm moving
statistics are not those of the network W(α) computes: the mean and variance
of a unit's input change non-linearly along the path. Two choices
(``--bn_mode``):

- ``interpolate``: treat the moving statistics like any other weight (the
  literal W(α) of the paper);
- ``recompute``: re-estimate them for every α on training batches, as later
  work showed is needed to see the true barrier of BatchNorm networks (an
  interpolated network with stale statistics can look much worse than it is).

Recomputation runs the model in training mode on ``batches`` training
batches (the recipe's SGD noise, steps 0 .. batches−1, augmented as in
training) and sets each moving statistic to the plain average of its
per-batch values, the cumulative average PyTorch's ``update_bn`` computes.
Keras updates a moving statistic as ``m ← m − (m − batch)·(1 − momentum)``;
with the momentum set to 0 and ``m`` zeroed before each batch this writes
exactly the batch statistic, which is then accumulated on the host. Nothing
but the moving statistics changes (training-mode BatchNorm normalizes with
batch statistics, so the forward passes do not depend on the values being
estimated). Under a MirroredStrategy each replica computes statistics of its
own slice of the batch, as in training, and they are averaged on read.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras
from absl import logging

from tf_lottery.stability import interpolation
from tf_lottery.training.trainer import SgdNoise, Trainer

BN_MODES = ("interpolate", "recompute")
_BN_TYPES = (tf_keras.layers.BatchNormalization,
             tf_keras.layers.experimental.SyncBatchNormalization)


def batchnorm_layers(model: tf_keras.Model) -> list[tf_keras.layers.Layer]:
    """Every BatchNormalization layer in ``model``, nested ones included."""
    seen, out = set(), []
    for module in model.submodules:
        if isinstance(module, _BN_TYPES) and id(module) not in seen:
            seen.add(id(module))
            out.append(module)
    return out


def moving_statistics(model: tf_keras.Model) -> list[tf.Variable]:
    """The moving mean and variance variables of every BatchNorm layer."""
    out = []
    for layer in batchnorm_layers(model):
        out += [layer.moving_mean, layer.moving_variance]
    return out


class BatchNormRecompute:
    """Callable that re-estimates the model's BatchNorm statistics in place."""

    def __init__(self, trainer: Trainer, batches: int, noise: SgdNoise):
        if batches < 1:
            raise ValueError(f"need at least one batch, got {batches}")
        self._model = trainer.model
        self._strategy = trainer.strategy
        self._batches = batches
        self.layers = batchnorm_layers(self._model)
        self._statistics = moving_statistics(self._model)
        self._dataset = self._strategy.distribute_datasets_from_function(
            trainer.pipeline.train_dataset_fn(
                0, batches, noise.data_order_seed, noise.augment_seed))
        self._forward = tf.function(self._forward_impl)
        if not self.layers:
            logging.info("--bn_mode=recompute: %s has no BatchNorm layers; "
                         "nothing to recompute.", self._model.name)

    def _forward_impl(self, iterator) -> None:
        def step(images, labels):
            del labels
            self._model(images, training=True)

        self._strategy.run(step, args=next(iterator))

    def __call__(self) -> None:
        if not self.layers:
            return
        momenta = [layer.momentum for layer in self.layers]
        sums = [np.zeros(v.shape, np.float64) for v in self._statistics]
        try:
            # The forward function is traced under momentum 0, which Keras
            # reads as a Python constant at trace time.
            for layer in self.layers:
                layer.momentum = 0.0
            iterator = iter(self._dataset)
            for _ in range(self._batches):
                for v in self._statistics:
                    v.assign(tf.zeros_like(v))
                self._forward(iterator)
                for total, value in zip(
                        sums, interpolation.snapshot(self._statistics), strict=True):
                    total += value
        finally:
            for layer, momentum in zip(self.layers, momenta, strict=True):
                layer.momentum = momentum
        for v, total in zip(self._statistics, sums, strict=True):
            v.assign((total / self._batches).astype(v.dtype.as_numpy_dtype))
