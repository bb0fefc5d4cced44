"""Training throughput of a recipe: steps/s, examples/s and peak memory, as JSON.

    python benchmarks/train_throughput.py --flagfile=flags/lenet_fashion_mnist.cfg \
        --bench_steps=2000 [--mock_data] [--pruning_wrappers] [--bench_eval] \
        [any tf_lottery flag, e.g. --jit_compile]

Builds the recipe's model, data pipeline and strategy exactly as
``tf_lottery.main`` does, warms up (tracing + one loop: ``warmup_s``, which
includes XLA's compilation under --jit_compile), then times ``--bench_steps``
steps of the distributed loop. ``--mock_data`` uses TFDS mock data so model
cost can be measured without the dataset (in-memory datasets only: ImageNet
streams from prepared shards in ``--data_dir``). ``--pruning_wrappers``
trains the model as IMP does (pruning wrappers, masked gradients, masks
re-applied after every step); ``--bench_eval`` also times one evaluation of
the test split (after a first one that traces).
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (Keras 2)

# isort: split

import json
import os
import resource
import tempfile
import time
from unittest import mock

import tensorflow as tf
import tensorflow_datasets as tfds
from absl import app, flags

from tf_lottery import compose, numerics
from tf_lottery import config as config_lib
from tf_lottery.data import cache, sources
from tf_lottery.models import registry as model_registry
from tf_lottery.training import strategy as strategy_lib
from tf_lottery.training.trainer import Trainer

config_lib.define_flags()
flags.DEFINE_integer("bench_steps", 1000, "Benchmark: steps to time.")
flags.DEFINE_boolean("mock_data", False, "Benchmark: use TFDS mock data.")
flags.DEFINE_boolean("pruning_wrappers", False,
                     "Benchmark: train as IMP does, in pruning wrappers with masks.")
flags.DEFINE_boolean("bench_eval", False, "Benchmark: also time one test-set evaluation.")
FLAGS = flags.FLAGS


def measure(config: config_lib.ExperimentConfig, bench_steps: int,
            pruning_wrappers: bool = False, bench_eval: bool = False) -> dict:
    if config.runtime.deterministic:  # as tf_lottery.main runs it
        tf.config.experimental.enable_op_determinism()
    strategy = strategy_lib.make_strategy(config.runtime)
    pipeline = compose.make_pipeline(config)  # in memory, or streamed (ImageNet)
    if pruning_wrappers:
        from tf_lottery.experiments import imp

        trainer = imp.make_trainer(config, strategy, pipeline)
    else:
        trainer = Trainer(config, strategy, pipeline)
    warmup = loop = config.runtime.steps_per_loop
    dataset = strategy.distribute_datasets_from_function(
        pipeline.train_dataset_fn(0, warmup + bench_steps, 0, 0))
    iterator = iter(dataset)
    started = time.perf_counter()
    trainer._train_loop(iterator, tf.constant(warmup, tf.int64))[0].numpy()
    warmup_s = time.perf_counter() - started
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
        "jit_compile": config.runtime.jit_compile,
        "deterministic": config.runtime.deterministic,
        "pruning_wrappers": pruning_wrappers,
        "replicas": strategy.num_replicas_in_sync,
        "global_batch": config.train.batch_size,
        "steps_per_loop": loop,
        "params": model_registry.count_params(trainer.model),
        "steps": bench_steps,
        "warmup_steps": warmup,
        "warmup_s": round(warmup_s, 3),
        "seconds": round(seconds, 3),
        "steps_per_sec": round(bench_steps / seconds, 2),
        "examples_per_sec": round(bench_steps * config.train.batch_size / seconds, 1),
        "peak_host_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "numerics": numerics.current().describe(),
        "device": (tf.config.list_logical_devices("GPU") or
                   tf.config.list_logical_devices("CPU"))[0].name,
    }
    if bench_eval:
        trainer.evaluate("test")  # traces
        started = time.perf_counter()
        examples = trainer.evaluate("test")["examples"]
        out["eval_examples_per_sec"] = round(examples / (time.perf_counter() - started), 1)
    if tf.config.list_physical_devices("GPU"):
        out["peak_gpu_mb"] = round(
            tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)
    return out


def main(_):
    if not FLAGS.model_dir:
        FLAGS.model_dir = tempfile.mkdtemp()
    if FLAGS.train_steps is None and FLAGS.train_epochs is None:
        FLAGS.train_steps = FLAGS.bench_steps
    if FLAGS.pruning_wrappers:
        FLAGS.experiment = "imp"  # its section says what the wrappers exclude
    config = config_lib.config_from_flags()
    if FLAGS.mock_data:
        n = max(config.train.batch_size * 4, config.data.eval_batch_size)
        with tfds.testing.mock_data(num_examples=n), \
                mock.patch.object(sources, "is_prepared", lambda b: True), \
                mock.patch.object(cache, "load", lambda *args: None):
            result = measure(config, FLAGS.bench_steps, FLAGS.pruning_wrappers,
                             FLAGS.bench_eval)
    else:
        result = measure(config, FLAGS.bench_steps, FLAGS.pruning_wrappers, FLAGS.bench_eval)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    app.run(main)
