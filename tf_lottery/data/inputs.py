"""Builds the input pipeline a config asks for: in memory or streamed from shards."""

from __future__ import annotations

from tf_lottery.config import ExperimentConfig
from tf_lottery.data import registry, sources
from tf_lottery.data.pipeline import InMemoryPipeline
from tf_lottery.data.streaming import StreamingPipeline


def make_pipeline(config: ExperimentConfig) -> InMemoryPipeline | StreamingPipeline:
    """Small datasets (``DatasetSpec.in_memory``) are loaded into host memory;
    large ones (ImageNet) stream from TFDS's prepared TFRecord shards.

    Either way a missing dataset is prepared from ``--tfds_manual_dir`` or
    reported as a ``ConfigError`` saying how to provide it.
    """
    spec = registry.get(config.data.dataset)
    rt, data = config.runtime, config.data
    if spec.in_memory:
        arrays = sources.load_in_memory(spec, rt.data_dir, rt.tfds_manual_dir)
        return InMemoryPipeline(spec, arrays, config.train.batch_size, data.eval_batch_size,
                                data.augment, data.train_eval_examples)
    builder = sources.get_builder(spec, rt.data_dir, rt.tfds_manual_dir)
    return StreamingPipeline.from_builder(
        spec, builder, batch_size=config.train.batch_size,
        eval_batch_size=data.eval_batch_size, recipe=data.augment,
        image_size=data.image_size, train_eval_examples=data.train_eval_examples,
        window_shards=data.shuffle_window_shards)
