"""Builds a dataset's input pipeline from plain settings: in memory or streamed from shards.

Knows no experiment config: an entry point maps its config onto these
parameters (``tf_lottery.compose.make_pipeline``).
"""

from __future__ import annotations

import dataclasses

from tf_lottery.data import registry, sources, stats
from tf_lottery.data.pipeline import InMemoryPipeline, Pipeline


def make_pipeline(dataset: str | registry.DatasetSpec, *, batch_size: int,
                  eval_batch_size: int, augment: str,
                  train_eval_examples: int, image_size: int, window_shards: int,
                  data_dir: str | None, manual_dir: str | None,
                  data_cache: bool = True) -> Pipeline:
    """Small datasets (``DatasetSpec.in_memory``) are loaded into host memory;
    large ones (ImageNet) stream from TFDS's prepared TFRecord shards.

    Either way a missing dataset is prepared from ``manual_dir`` or
    reported as a ``ConfigError`` saying how to provide it. ``image_size`` and
    ``window_shards`` only apply to streamed datasets, ``data_cache`` (keep
    and reuse the decoded arrays in ``data_dir``: ``data.cache``) to those in
    memory.

    ``dataset`` is a registry name or a ``DatasetSpec`` (``DataConfig.spec``);
    a dataset outside the registry held in memory is standardized with its
    training split's own channel statistics (``data.stats``).
    """
    spec = registry.get(dataset) if isinstance(dataset, str) else dataset
    if spec.in_memory:
        arrays = sources.load_in_memory(spec, data_dir, manual_dir, use_cache=data_cache)
        if spec.mean is None and spec.name not in registry.names():
            mean, std = stats.load_or_compute(data_dir, spec.name, spec.version,
                                              spec.train_split, arrays.train_images)
            spec = dataclasses.replace(spec, mean=mean, std=std)
        return InMemoryPipeline(spec, arrays, batch_size, eval_batch_size, augment,
                                train_eval_examples)
    # Imported here: it imports TFDS, which an in-memory launch need not load.
    from tf_lottery.data.streaming import StreamingPipeline

    builder = sources.get_builder(spec, data_dir, manual_dir)
    return StreamingPipeline.from_builder(
        spec, builder, batch_size=batch_size, eval_batch_size=eval_batch_size,
        recipe=augment, image_size=image_size, train_eval_examples=train_eval_examples,
        window_shards=window_shards)
