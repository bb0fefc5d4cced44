"""Several runs trained side by side in one compiled loop.

The paper's experiments are dozens to hundreds of small runs (the children of
every W_k, every level's subnetwork), and one LeNet at batch 60 or ResNet-20
at batch 128 leaves most of an accelerator idle. One way to fill it is to run
several processes on one device (Ray's fractional ``--task_resources``);
``PackedLoop`` is the other: N trainers, each with its own model, optimizer,
step counter and data, stepped together in one ``tf.function``, so a single
dispatch runs a step of every run and the runtime may overlap their kernels.

Each run's step is its own ``Trainer.one_step``, so its loss, gradients and
optimizer update are those of training it alone: only their scheduling is
shared (tests/test_packed.py compares the weights). ``benchmarks/device_check``
measures both ways against one run at a time on the same device.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tf_lottery.training.trainer import Trainer


class PackedLoop:
    """One compiled loop that trains every trainer in ``trainers`` a step at a time."""

    def __init__(self, trainers: Sequence[Trainer]):
        if not trainers:
            raise ValueError("PackedLoop needs at least one trainer")
        strategy = trainers[0].strategy
        if any(t.strategy is not strategy for t in trainers):
            # Their variables and inputs must live on the same devices.
            raise ValueError("PackedLoop's trainers must share one tf.distribute strategy")
        self.trainers = tuple(trainers)
        self._loop = tf.function(self._loop_impl)

    def _loop_impl(self, iterators, num_steps: tf.Tensor) -> tf.Tensor:
        totals = tf.zeros([len(self.trainers), 2])
        for _ in tf.range(num_steps):
            # No run's step waits on another's: the runtime may overlap them.
            totals += tf.stack([trainer.one_step(iterator)[0]
                                for trainer, iterator in zip(self.trainers, iterators,
                                                             strict=True)])
        return totals

    def __call__(self, iterators: Sequence, num_steps: int) -> tf.Tensor:
        """Trains ``num_steps`` steps of every run, run i reading ``iterators[i]``
        (a distributed dataset iterator, as ``Trainer`` reads).

        Returns each run's summed training loss and correct predictions over
        those steps, shape ``[runs, 2]``.
        """
        if len(iterators) != len(self.trainers):
            raise ValueError(f"{len(iterators)} iterators for {len(self.trainers)} trainers")
        return self._loop(tuple(iterators), tf.constant(num_steps, tf.int64))
