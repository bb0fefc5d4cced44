"""Step-indexed input pipelines that stream a large TFDS dataset (ImageNet) from its shards.

A ``pipeline.Pipeline``, like ``pipeline.InMemoryPipeline``, for data that
do not fit in host memory: TFDS's prepared TFRecord shards are read from ``--data_dir``
(local or ``gs://``) while training.

**Training order.** A TFRecord shard can only be read front to back, so an
epoch cannot be an arbitrary permutation of N examples. Epoch ``e`` is
instead built from *windows*:

1. the split's shards are put in the order
   ``stateless_shuffle(range(num_shards), seed=(data_order_seed, e))``;
2. consecutive groups of ``--shuffle_window_shards`` shards in that order
   form the epoch's windows (the last may be smaller);
3. each window's examples (its shards read in full) are permuted with
   ``stateless_shuffle(seed=fold_in((data_order_seed, e), window))``;
4. the epoch is the concatenation of the permuted windows, cut into global
   batches with the remainder (fewer than one batch) dropped.

With TFDS's imagenet2012 (1024 train shards of ~1251 examples, written in
a hashed, class-mixed order) and the default 16 shards per window, each
window is a uniform shuffle of ~20,000 examples drawn from 16 random
shards, and the windows come in a random order.

**Determinism guarantee.** The global batch of step ``s`` -- which
examples, in which order, and their augmentation -- is a pure function of
(``data_order_seed``, ``augment_seed``, ``s``, the global batch size,
``--shuffle_window_shards``, the augmentation recipe and image size) and of
the prepared split's shard layout (the shard files in TFDS's order and
their example counts, recorded in TFDS's ``dataset_info.json``). It does not
depend on the number of hosts, replicas or tf.data threads, nor on where a
run started: a run resumed at ``s``, a child spawned at ``k`` or an IMP level
rewound to ``k`` sees exactly the batches an uninterrupted run sees. The
same preparation copied elsewhere (e.g. to ``gs://``) gives the same
stream; a preparation with a different sharding gives a different (equally
valid) stream.

**Resuming is cheap.** The start step's position in its epoch is mapped to
its window; earlier windows are never opened, and the start window is read
and permuted (at most ``--shuffle_window_shards`` shards, ~2 GB for
ImageNet), then skipped to the position before anything is decoded.

**Hosts.** Each input pipeline (one per host) reads the whole record stream
but decodes and augments only its own slice of every global batch (its
replicas' contiguous rows), so the global batch is the same for any
topology. Reading is cheap next to JPEG decoding; the price is that every
host reads every record (~140 GB per ImageNet epoch). Up to four windows
are in host memory at once (read-ahead), ~9 GB of JPEG bytes for ImageNet
with 16 shards per window; use fewer shards per window on small hosts.

**Augmentation.** Example ``slot`` of the global batch of step ``s`` is
augmented with the stateless seed ``example_seed(augment_seed, s, slot)``
(``imagenet_preprocessing``), so it does not depend on which host decodes it.

**Evaluation** reads a split's shards in TFDS's order (``test``: the
validation split; ``train_eval``: the first ``--train_eval_examples``
training examples on disk), pads the last global batch with zero-weight
copies of the first example and slices it per host like training.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tf_lottery.data import imagenet_preprocessing as prep
from tf_lottery.data.pipeline import DatasetFn, EvalSplit, local_replicas
from tf_lottery.data.registry import DatasetSpec
from tf_lottery.errors import ConfigError, FieldError

READ_BUFFER_BYTES = 8 << 20  # per open shard; large reads suit gs://
WINDOWS_READ_AHEAD = 2


@dataclasses.dataclass(frozen=True)
class Shard:
    """Consecutive examples of one TFRecord file: records [skip, skip + take)."""

    path: str
    skip: int
    take: int


@dataclasses.dataclass(frozen=True)
class Window:
    """A group of shards read and shuffled together, and the part of it a run uses.

    ``shards`` index the split's shard list; ``keep`` is the [lo, hi) range of
    the window's permuted examples that the run consumes.
    """

    epoch: int
    index: int
    shards: tuple[int, ...]
    size: int
    keep: tuple[int, int]


def split_shards(builder: tfds.core.DatasetBuilder, split: str) -> tuple[Shard, ...]:
    """The shards of a prepared TFDS split, in TFDS's order.

    Raises:
      ConfigError: the split is missing or not stored as TFRecord.
    """
    fmt = getattr(builder.info.file_format, "value", builder.info.file_format)
    if fmt != "tfrecord":
        raise ConfigError(
            f"{builder.name} in {builder.data_dir} is stored as {fmt}; streaming reads "
            "TFRecord shards: prepare it with TFDS's default file format")
    try:  # a split's name, or a slice of one (train[:90%])
        instructions = builder.info.splits[split].file_instructions
    except (KeyError, ValueError):
        raise ConfigError(f"{builder.name} in {builder.data_dir} has no '{split}' split "
                          f"(has: {', '.join(builder.info.splits)})") from None
    return tuple(Shard(os.fspath(fi.filename), int(fi.skip), int(fi.take))
                 for fi in instructions)


def shard_order(data_order_seed: int, epoch: int, num_shards: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the shards."""
    return tf.random.experimental.stateless_shuffle(
        tf.range(num_shards, dtype=tf.int64),
        seed=tf.constant([data_order_seed, epoch], tf.int64)).numpy()


def window_seed(data_order_seed: int, epoch: int, window: int) -> tf.Tensor:
    """Seed of the permutation of one window's examples."""
    return tf.random.experimental.stateless_fold_in(
        tf.constant([data_order_seed, epoch], tf.int64), window)


def train_plan(sizes: list[int], window_shards: int, batch_size: int,
               data_order_seed: int, start_step: int, end_step: int) -> list[Window]:
    """The windows that steps [start_step, end_step) read, with the part each keeps."""
    total = sum(sizes)
    steps_per_epoch = total // batch_size
    plan = []
    for epoch in range(start_step // steps_per_epoch, (end_step - 1) // steps_per_epoch + 1):
        first = max(0, start_step - epoch * steps_per_epoch) * batch_size
        last = min(steps_per_epoch, end_step - epoch * steps_per_epoch) * batch_size
        order = shard_order(data_order_seed, epoch, len(sizes))
        start = 0
        for index, lo in enumerate(range(0, len(order), window_shards)):
            shards = tuple(int(i) for i in order[lo:lo + window_shards])
            size = sum(sizes[i] for i in shards)
            keep = (min(max(first - start, 0), size), min(max(last - start, 0), size))
            if keep[1] > keep[0]:
                plan.append(Window(epoch, index, shards, size, keep))
            start += size
    return plan


class StreamingPipeline:
    """Step-indexed pipelines over TFRecord shards of an image classification split."""

    def __init__(
        self,
        spec: DatasetSpec,
        features: tfds.features.FeaturesDict,
        train_shards: tuple[Shard, ...],
        test_shards: tuple[Shard, ...],
        batch_size: int,
        eval_batch_size: int,
        recipe: str,
        image_size: int,
        train_eval_examples: int,
        window_shards: int,
    ):
        if recipe not in prep.RECIPES:
            raise ValueError(f"unknown ImageNet recipe {recipe!r}")
        self.spec = dataclasses.replace(spec, image_shape=(image_size, image_size, 3))
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.recipe = recipe
        self.image_size = image_size
        self.window_shards = window_shards
        self._features = features
        self._is_jpeg = spec.image_format == "jpeg"
        self._train = train_shards
        self._test = test_shards
        self.num_train = sum(s.take for s in train_shards)
        self.steps_per_epoch = self.num_train // batch_size
        if self.steps_per_epoch < 1:
            raise FieldError("train.batch_size", f"={batch_size} exceeds the "
                             f"{self.num_train} training examples of {spec.name}")
        self._train_eval = self._first_examples(train_shards, train_eval_examples)

    @classmethod
    def from_builder(cls, spec: DatasetSpec, builder: tfds.core.DatasetBuilder, *,
                     batch_size: int, eval_batch_size: int, recipe: str, image_size: int,
                     train_eval_examples: int, window_shards: int) -> StreamingPipeline:
        """A pipeline over a prepared TFDS builder's train and test splits."""
        return cls(spec, builder.info.features,
                   split_shards(builder, spec.train_split),
                   split_shards(builder, spec.test_split),
                   batch_size, eval_batch_size, recipe, image_size,
                   train_eval_examples, window_shards)

    @staticmethod
    def _first_examples(shards: tuple[Shard, ...], n: int) -> tuple[Shard, ...]:
        out, left = [], n
        for shard in shards:
            if left <= 0:
                break
            out.append(dataclasses.replace(shard, take=min(shard.take, left)))
            left -= out[-1].take
        return tuple(out)

    # -- reading and decoding -------------------------------------------------

    def _records(self, shards: tuple[Shard, ...] | tf.data.Dataset,
                 cycle_length: int) -> tf.data.Dataset:
        """Serialized examples of ``shards``, interleaved deterministically."""
        if isinstance(shards, tuple):
            shards = tf.data.Dataset.from_tensor_slices((
                tf.constant([s.path for s in shards]),
                tf.constant([s.skip for s in shards], tf.int64),
                tf.constant([s.take for s in shards], tf.int64)))
        return shards.interleave(
            lambda path, skip, take: tf.data.TFRecordDataset(
                path, buffer_size=READ_BUFFER_BYTES).skip(skip).take(take),
            cycle_length=cycle_length, block_length=1,
            num_parallel_calls=cycle_length, deterministic=True)

    def _parse(self, record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, label = self.spec.image_key, self.spec.label_key
        example = self._features.deserialize_example(
            record, decoders={image: tfds.decode.SkipDecoding()})
        return example[image], tf.cast(example[label], tf.int32)

    def _decode_train(self, augment_seed: int):
        def decode(step, slot, record):
            jpeg, label = self._parse(record)
            seed = prep.example_seed(augment_seed, step, slot)
            return prep.preprocess_train(jpeg, self.recipe, self.image_size, seed,
                                         self._is_jpeg), label

        return decode

    def _decode_eval(self, record, weight):
        jpeg, label = self._parse(record)
        return (prep.preprocess_eval(jpeg, self.recipe, self.image_size, self._is_jpeg),
                label, weight)

    # -- training -------------------------------------------------------------

    def plan(self, start_step: int, end_step: int, data_order_seed: int) -> list[Window]:
        """The windows steps [start_step, end_step) read (see the module doc)."""
        return train_plan([s.take for s in self._train], self.window_shards,
                          self.batch_size, data_order_seed, start_step, end_step)

    def global_records(self, start_step: int, end_step: int,
                       data_order_seed: int) -> tf.data.Dataset:
        """(step, serialized examples of its global batch [B]) for each step in
        [start_step, end_step): the data order, before any decoding."""
        return self._global_records_fn(start_step, end_step, data_order_seed)()

    def _global_records_fn(self, start_step: int, end_step: int,
                           data_order_seed: int) -> Callable[[], tf.data.Dataset]:
        """Plans the windows now (eagerly, on the host) and returns a function
        that builds ``global_records``'s dataset from the plan."""
        cycle = self.window_shards
        plan = self.plan(start_step, end_step, data_order_seed)
        shard_ids = np.full([len(plan), cycle], -1, np.int64)
        for row, window in enumerate(plan):
            shard_ids[row, :len(window.shards)] = window.shards
        columns = (
            shard_ids,
            np.array([w.size for w in plan], np.int64),
            np.stack([window_seed(data_order_seed, w.epoch, w.index).numpy()
                      for w in plan]).astype(np.int64),
            np.array([w.keep for w in plan], np.int64).reshape([-1, 2]),
        )
        paths = tf.constant([s.path for s in self._train])
        skips = tf.constant([s.skip for s in self._train], tf.int64)
        takes = tf.constant([s.take for s in self._train], tf.int64)

        def read_window(ids, size, seed, keep):
            ids = tf.boolean_mask(ids, ids >= 0)
            shards = tf.data.Dataset.from_tensor_slices(
                (tf.gather(paths, ids), tf.gather(skips, ids), tf.gather(takes, ids)))

            def permute(window):
                order = tf.random.experimental.stateless_shuffle(tf.range(size), seed=seed)
                return tf.gather(window, order)[keep[0]:keep[1]]

            return self._records(shards, cycle).batch(size).map(permute)

        def build() -> tf.data.Dataset:
            windows = tf.data.Dataset.from_tensor_slices(columns).interleave(
                read_window, cycle_length=WINDOWS_READ_AHEAD,
                num_parallel_calls=WINDOWS_READ_AHEAD, deterministic=True)
            batches = windows.prefetch(1).unbatch().batch(self.batch_size,
                                                          drop_remainder=True)
            return tf.data.Dataset.zip((tf.data.Dataset.range(start_step, end_step), batches))

        return build

    def train_dataset_fn(
        self, start_step: int, end_step: int, data_order_seed: int, augment_seed: int
    ) -> DatasetFn:
        """Batches for steps [start_step, end_step), one per replica per step."""
        global_batch = self.batch_size
        decode = self._decode_train(augment_seed)
        records = self._global_records_fn(start_step, end_step, data_order_seed)

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            local, first_replica = local_replicas(ctx)
            per_replica = ctx.get_per_replica_batch_size(global_batch)
            lo = first_replica * per_replica
            hi = lo + local * per_replica

            def host_slice(step, records):
                return (tf.fill([hi - lo], step), tf.range(lo, hi, dtype=tf.int64),
                        records[lo:hi])

            ds = records().map(host_slice).unbatch()
            ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

        return dataset_fn

    # -- evaluation -----------------------------------------------------------

    def eval_split(self, name: str) -> EvalSplit:
        """'test' or 'train_eval' (the fixed unaugmented train subset)."""
        shards = {"test": self._test, "train_eval": self._train_eval}[name]
        n, global_batch = sum(s.take for s in shards), self.eval_batch_size
        num_batches = math.ceil(n / global_batch)
        padding = num_batches * global_batch - n

        def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            local, first_replica = local_replicas(ctx)
            per_replica = ctx.get_per_replica_batch_size(global_batch)
            lo = first_replica * per_replica
            hi = lo + local * per_replica
            records = self._records(shards, self.window_shards)
            records = records.concatenate(records.take(1).repeat(padding))
            positions = tf.data.Dataset.range(num_batches * global_batch)

            def host_slice(pos, recs):
                return recs[lo:hi], tf.cast(pos[lo:hi] < n, tf.float32)

            ds = tf.data.Dataset.zip((positions, records)).batch(global_batch)
            ds = ds.map(host_slice).unbatch()
            ds = ds.map(self._decode_eval, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
            return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

        return EvalSplit(name, dataset_fn, num_batches, n)
