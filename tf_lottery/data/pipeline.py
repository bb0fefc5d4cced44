"""Distributed input pipelines whose batches are a pure function of the step.

``Pipeline`` is the contract every consumer (the Trainer, BatchNorm
recomputation, experiments) relies on; ``InMemoryPipeline`` (here) and
``streaming.StreamingPipeline`` (ImageNet) both satisfy it.

Training: epoch ``e`` visits the examples in the order
``stateless_shuffle(range(N), seed=(data_order_seed, e))`` and drops the
remainder (static shapes for TPU). The global batch of step ``s`` is
therefore fixed by (data_order_seed, augment_seed, s) alone, so a run resumed
at step ``s``, a child spawned at ``k`` or an IMP level rewound to ``k`` sees
exactly the batches an uninterrupted run would. Each replica takes its own
contiguous slice of the global batch, so the global batch is the same on one
device, on a MirroredStrategy or on a TPU pod.

Evaluation: fixed order, last batch padded with zero-weight examples, so
every example counts exactly once and shapes stay static.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
import tensorflow as tf

from tf_lottery.data import augment as augment_lib
from tf_lottery.data.registry import DatasetSpec
from tf_lottery.data.sources import InMemoryData

DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]

# tf.data converts every mapped function with AutoGraph unless told not to;
# these hold no Python control flow over tensors, and converting them cost
# ~1 s of every launch's start-up.
no_autograph = tf.autograph.experimental.do_not_convert


@dataclasses.dataclass(frozen=True)
class EvalSplit:
    """A distributed evaluation input: dataset function and batches to run."""

    name: str
    dataset_fn: DatasetFn
    num_batches: int
    num_examples: int


class Pipeline(Protocol):
    """Step-indexed distributed inputs of one dataset: what a trainer consumes.

    The contract, beyond the signatures: the global batch of step ``s`` is a
    pure function of (``data_order_seed``, ``augment_seed``, ``s``) and the
    pipeline's own settings, whatever the start step, the number of
    replicas or hosts; each replica gets its contiguous slice of it. An
    evaluation split visits every example exactly once, the padding of its
    last batch weighted 0.
    """

    @property
    def spec(self) -> DatasetSpec:
        """The dataset, with ``image_shape`` the shape the model is fed."""
        ...

    @property
    def batch_size(self) -> int:
        """Global training batch."""
        ...

    @property
    def steps_per_epoch(self) -> int:
        """Whole batches in one pass over the training split."""
        ...

    def train_dataset_fn(self, start_step: int, end_step: int, data_order_seed: int,
                         augment_seed: int) -> DatasetFn:
        """Batches for steps [start_step, end_step), one per replica per step."""
        ...

    def eval_split(self, name: str) -> EvalSplit:
        """'test' or 'train_eval' (the fixed unaugmented train subset)."""
        ...


def local_replicas(ctx: tf.distribute.InputContext) -> tuple[int, int]:
    """(replicas fed by this input pipeline, index of its first replica)."""
    if ctx.num_replicas_in_sync % ctx.num_input_pipelines:
        raise ValueError("replicas must divide evenly across input pipelines")
    local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    return local, ctx.input_pipeline_id * local


class InMemoryPipeline:
    """Step-indexed pipelines over a dataset held in host memory."""

    def __init__(
        self,
        spec: DatasetSpec,
        data: InMemoryData,
        batch_size: int,
        eval_batch_size: int,
        augment: str,
        train_eval_examples: int,
    ):
        self.spec = spec
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.augment = augment
        self.num_train = len(data.train_labels)
        self.steps_per_epoch = self.num_train // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch {batch_size} exceeds the {self.num_train} "
                             "training examples")
        self._train = (data.train_images, data.train_labels)
        self._test = (data.test_images, data.test_labels)
        n = min(train_eval_examples, self.num_train)
        self._train_eval = (data.train_images[:n], data.train_labels[:n])

    # -- training -------------------------------------------------------------

    def epoch_order(self, data_order_seed: int, epoch: int) -> tf.Tensor:
        """Example indices of one epoch, truncated to whole batches: [spe, B]."""
        perm = tf.random.experimental.stateless_shuffle(
            tf.range(self.num_train, dtype=tf.int64),
            seed=tf.stack([tf.cast(data_order_seed, tf.int64),
                           tf.cast(epoch, tf.int64)]),
        )
        used = self.steps_per_epoch * self.batch_size
        return tf.reshape(perm[:used], [self.steps_per_epoch, self.batch_size])

    def train_dataset_fn(
        self, start_step: int, end_step: int, data_order_seed: int, augment_seed: int
    ) -> DatasetFn:
        """Batches for steps [start_step, end_step), one per replica per step."""
        spe, global_batch = self.steps_per_epoch, self.batch_size
        images_np, labels_np = self._train
        kind = self.augment

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            local, first_replica = local_replicas(ctx)
            per_replica = ctx.get_per_replica_batch_size(global_batch)
            images = tf.constant(images_np)
            labels = tf.constant(labels_np)

            @no_autograph
            def steps_of_epoch(epoch):
                order = self.epoch_order(data_order_seed, epoch)
                lo = tf.maximum(start_step - epoch * spe, 0)
                hi = tf.minimum(end_step - epoch * spe, spe)
                steps = epoch * spe + tf.range(lo, hi, dtype=tf.int64)
                return tf.data.Dataset.from_tensor_slices((steps, order[lo:hi]))

            @no_autograph
            def make_batch(step, indices):
                draws = augment_lib.augment_draws(augment_seed, step, global_batch, 3)
                lo = first_replica * per_replica
                hi = lo + local * per_replica
                idx = indices[lo:hi]
                # Augment the raw pixels, then normalize: the crop's padding is
                # black, as torchvision's RandomCrop in the paper's framework.
                x = augment_lib.augment(tf.gather(images, idx), kind, draws[lo:hi])
                x = augment_lib.normalize(x, self.spec.mean, self.spec.std)
                y = tf.gather(labels, idx)
                shape = [local, per_replica]
                return (tf.reshape(x, shape + list(x.shape[1:])),
                        tf.reshape(y, shape))

            first_epoch, last_epoch = start_step // spe, (end_step - 1) // spe
            ds = tf.data.Dataset.range(first_epoch, last_epoch + 1)
            ds = ds.flat_map(steps_of_epoch)
            ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
            ds = ds.unbatch() if local > 1 else ds.map(no_autograph(lambda x, y: (x[0], y[0])))
            return ds.prefetch(tf.data.AUTOTUNE)

        return dataset_fn

    # -- evaluation -----------------------------------------------------------

    def eval_split(self, name: str) -> EvalSplit:
        """'test' or 'train_eval' (the fixed unaugmented train subset)."""
        images_np, labels_np = {"test": self._test, "train_eval": self._train_eval}[name]
        n, global_batch = len(labels_np), self.eval_batch_size
        num_batches = math.ceil(n / global_batch)

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            local, first_replica = local_replicas(ctx)
            per_replica = ctx.get_per_replica_batch_size(global_batch)
            images = tf.constant(images_np)
            labels = tf.constant(labels_np)

            @no_autograph
            def make_batch(batch):
                start = batch * global_batch + first_replica * per_replica
                pos = start + tf.range(local * per_replica, dtype=tf.int64)
                valid = pos < n
                idx = tf.minimum(pos, n - 1)
                x = augment_lib.normalize(tf.gather(images, idx), self.spec.mean,
                                          self.spec.std)
                shape = [local, per_replica]
                return (tf.reshape(x, shape + list(x.shape[1:])),
                        tf.reshape(tf.gather(labels, idx), shape),
                        tf.reshape(tf.cast(valid, tf.float32), shape))

            ds = tf.data.Dataset.range(num_batches).map(
                make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            ds = ds.unbatch() if local > 1 else ds.map(
                no_autograph(lambda x, y, w: (x[0], y[0], w[0])))
            return ds.prefetch(tf.data.AUTOTUNE)

        return EvalSplit(name, dataset_fn, num_batches, n)


def global_batch_at(
    pipeline: Pipeline, step: int, data_order_seed: int, augment_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The global batch of one step, computed on the host (for tests and tools)."""
    ctx = tf.distribute.InputContext(1, 0, 1)
    ds = pipeline.train_dataset_fn(step, step + 1, data_order_seed, augment_seed)(ctx)
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()
