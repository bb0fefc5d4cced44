"""What every entry point builds from a config before an experiment runs: its input pipeline.

``main``, ``align`` and the benchmarks share this mapping of config fields
onto ``data.inputs``, so that ``data/`` never reads an experiment config.
"""

from __future__ import annotations

from tf_lottery.config import ExperimentConfig
from tf_lottery.data import inputs
from tf_lottery.data.pipeline import Pipeline


def make_pipeline(config: ExperimentConfig) -> Pipeline:
    """The recipe's pipeline: in host memory for small datasets, streamed from
    shards for ImageNet (``data.inputs.make_pipeline``)."""
    data, rt = config.data, config.runtime
    return inputs.make_pipeline(
        data.spec(), batch_size=config.train.batch_size,
        eval_batch_size=data.eval_batch_size, augment=data.augment,
        train_eval_examples=data.train_eval_examples, image_size=data.image_size,
        window_shards=data.shuffle_window_shards, data_dir=rt.data_dir,
        manual_dir=rt.tfds_manual_dir, data_cache=rt.data_cache)
