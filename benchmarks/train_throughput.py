"""Training throughput of a recipe: steps/s, examples/s and peak memory, as JSON.

    python benchmarks/train_throughput.py --flagfile=flags/lenet_fashion_mnist.cfg \
        --bench_steps=2000 [--mock_data] [any tf_lottery flag]

Builds the recipe's model, data pipeline and strategy exactly as
``tf_lottery.main`` does, warms up (tracing + one loop), then times
``--bench_steps`` steps of the distributed loop. ``--mock_data`` uses TFDS
mock data so model cost can be measured without the dataset (in-memory
datasets only: ImageNet streams from prepared shards in ``--data_dir``).
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (Keras 2)

# isort: split

import json
import resource
import tempfile
import time
from unittest import mock

import tensorflow as tf
import tensorflow_datasets as tfds
from absl import app, flags

from tf_lottery import compose
from tf_lottery import config as config_lib
from tf_lottery.data import cache, sources
from tf_lottery.models import registry as model_registry
from tf_lottery.training import strategy as strategy_lib
from tf_lottery.training.trainer import Trainer

config_lib.define_flags()
flags.DEFINE_integer("bench_steps", 1000, "Benchmark: steps to time.")
flags.DEFINE_boolean("mock_data", False, "Benchmark: use TFDS mock data.")
FLAGS = flags.FLAGS


def measure(config: config_lib.ExperimentConfig, bench_steps: int) -> dict:
    strategy = strategy_lib.make_strategy(config.runtime)
    pipeline = compose.make_pipeline(config)  # in memory, or streamed (ImageNet)
    trainer = Trainer(config, strategy, pipeline)
    loop = config.runtime.steps_per_loop
    warmup = loop
    dataset = strategy.distribute_datasets_from_function(
        pipeline.train_dataset_fn(0, warmup + bench_steps, 0, 0))
    iterator = iter(dataset)
    trainer._train_loop(iterator, tf.constant(warmup, tf.int64))[0].numpy()
    start = time.perf_counter()
    done = 0
    while done < bench_steps:
        n = min(loop, bench_steps - done)
        totals, _ = trainer._train_loop(iterator, tf.constant(n, tf.int64))
        done += n
    totals.numpy()
    seconds = time.perf_counter() - start
    out = {
        "model": config.model.name,
        "dataset": config.data.dataset,
        "strategy": config.runtime.strategy,
        "precision": config.model.precision,
        "replicas": strategy.num_replicas_in_sync,
        "global_batch": config.train.batch_size,
        "steps_per_loop": loop,
        "params": model_registry.count_params(trainer.model),
        "steps": bench_steps,
        "seconds": round(seconds, 3),
        "steps_per_sec": round(bench_steps / seconds, 2),
        "examples_per_sec": round(bench_steps * config.train.batch_size / seconds, 1),
        "peak_host_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": (tf.config.list_logical_devices("GPU") or
                   tf.config.list_logical_devices("CPU"))[0].name,
    }
    if tf.config.list_physical_devices("GPU"):
        out["peak_gpu_mb"] = round(
            tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)
    return out


def main(_):
    if not FLAGS.model_dir:
        FLAGS.model_dir = tempfile.mkdtemp()
    if FLAGS.train_steps is None and FLAGS.train_epochs is None:
        FLAGS.train_steps = FLAGS.bench_steps
    config = config_lib.config_from_flags()
    if FLAGS.mock_data:
        n = max(config.train.batch_size * 4, config.data.eval_batch_size)
        with tfds.testing.mock_data(num_examples=n), \
                mock.patch.object(sources, "is_prepared", lambda b: True), \
                mock.patch.object(cache, "load", lambda *args: None):
            result = measure(config, FLAGS.bench_steps)
    else:
        result = measure(config, FLAGS.bench_steps)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    app.run(main)
