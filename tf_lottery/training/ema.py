"""Exponential moving average of a model's weights, the weights the stock Inception
recipe evaluates (``--ema_decay``).

After every optimizer step (and after the masks are re-applied), each
floating-point weight of the model -- trainable weights and BatchNorm moving
statistics alike, as TF's Inception training averaged both -- updates its
shadow copy as ``a <- a - (1 - d_s) (a - w)`` with
``d_s = min(decay, (1 + s) / (10 + s))`` at engine step ``s`` (TF's
``ExponentialMovingAverage`` with ``num_updates`` = the step). That form
leaves a constant weight's average exactly constant: a pruned weight (0)
or a mask (0/1) is averaged to exactly itself, so averaged networks are as
sparse as the trained ones.

The averages live in the trainer's checkpoints next to the weights (a
resumed run continues its averages) and are the weights that evaluation
reports (``Trainer.evaluated_weights``).

Distribution: the averages are sync-on-read variables that every replica
updates locally with no communication. An average of a mirrored weight is
the same on every replica and reads from the first; an average of a
BatchNorm statistic (each replica has its own) reads as the replicas' mean,
like the statistic itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

_ON_READ = tf.VariableSynchronization.ON_READ


def _decay(decay: float, step: tf.Tensor) -> tf.Tensor:
    s = tf.cast(step, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + s) / (10.0 + s))


class WeightAverage(tf.Module):
    """Shadow copies of ``variables`` that follow them as a moving average."""

    def __init__(self, variables: list[tf.Variable], decay: float):
        super().__init__(name="weight_average")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self._sources = [v for v in variables if v.dtype.is_floating]
        self.averages = []
        for v in self._sources:
            aggregation = (v.aggregation if v.synchronization == _ON_READ
                           else tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self.averages.append(tf.Variable(
                tf.zeros(v.shape, v.dtype), trainable=False, synchronization=_ON_READ,
                aggregation=aggregation, name=v.name.split(":")[0].replace("/", "_")))
        self.reset()

    @property
    def sources(self) -> list[tf.Variable]:
        """The averaged variables, in the order of ``averages``."""
        return list(self._sources)

    def reset(self) -> None:
        """Restarts the averages at the current weights (cross-replica context)."""
        for average, v in zip(self.averages, self._sources, strict=True):
            average.assign(tf.convert_to_tensor(v))

    def update(self, step: tf.Tensor) -> None:
        """One averaging step, in the replica context after the optimizer step."""
        rate = 1.0 - _decay(self.decay, step)
        for average, v in zip(self.averages, self._sources, strict=True):
            average.assign_sub(tf.cast(rate, average.dtype) * (average - tf.identity(v)))

    def values(self) -> list[np.ndarray]:
        """Host copies of the averages, in the order of ``sources``."""
        return [np.array(tf.convert_to_tensor(a)) for a in self.averages]

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the model's variables hold the averages; the
        trained weights are put back on exit."""
        trained = [np.array(tf.convert_to_tensor(v)) for v in self._sources]
        try:
            for v, value in zip(self._sources, self.values(), strict=True):
                v.assign(value)
            yield
        finally:
            for v, value in zip(self._sources, trained, strict=True):
                v.assign(value)
