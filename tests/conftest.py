"""Shared test setup: two logical CPUs, tiny learnable data, config parsing.

The host CPU is split into two logical devices before TensorFlow starts so
MirroredStrategy can be compared with a single device on any machine.
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (Keras 2 before TensorFlow)

# isort: split

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from tf_lottery import config as config_lib
from tf_lottery.data import registry
from tf_lottery.data.pipeline import InMemoryPipeline
from tf_lottery.data.sources import InMemoryData
from tf_lottery.training import strategy as strategy_lib

strategy_lib.configure_cpu_devices(2)


def parse_config(*args: str, model_dir: str = "/tmp/unused") -> config_lib.ExperimentConfig:
    """Parses flags in isolation (a fresh FlagValues) into a config."""
    fv = flags.FlagValues()
    config_lib.define_flags(fv)
    fv(["prog", f"--model_dir={model_dir}", *args])
    return config_lib.config_from_flags(fv)


def tiny_data(num_train: int = 240, num_test: int = 100, seed: int = 0,
              shape=(28, 28, 1)) -> InMemoryData:
    """Learnable synthetic images: the label sets which block of rows is lit."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = rng.integers(0, 10, n).astype(np.int32)
        images = rng.integers(0, 60, (n, *shape)).astype(np.uint8)
        band = shape[0] // 10
        for i, y in enumerate(labels):
            images[i, y * band:(y + 1) * band] += 150
        return images, labels

    (xtr, ytr), (xte, yte) = make(num_train), make(num_test)
    return InMemoryData(xtr, ytr, xte, yte)


def tiny_pipeline(config: config_lib.ExperimentConfig, data: InMemoryData | None = None,
                  augment: str | None = None) -> InMemoryPipeline:
    return InMemoryPipeline(
        registry.get(config.data.dataset), data or tiny_data(),
        config.train.batch_size, config.data.eval_batch_size,
        augment or config.data.augment, config.data.train_eval_examples)


def assert_replicas_form_global_batch(strategy: tf.distribute.Strategy, pipeline,
                                      steps: int, order: int, aug: int) -> None:
    """Each step's per-replica batches, concatenated, equal the global batch."""
    from tf_lottery.data.pipeline import global_batch_at

    dist = strategy.distribute_datasets_from_function(
        pipeline.train_dataset_fn(0, steps, order, aug))
    for step, (x, y) in enumerate(dist):
        for part, whole in zip((x, y), global_batch_at(pipeline, step, order, aug),
                               strict=True):
            np.testing.assert_array_equal(
                np.concatenate([t.numpy() for t in strategy.experimental_local_results(part)]),
                whole)


@pytest.fixture
def mirrored() -> tf.distribute.Strategy:
    # A fresh collective key base per test: tests run different models.
    return strategy_lib.mirrored_strategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(autouse=True)
def _deterministic_ops():
    tf.config.experimental.enable_op_determinism()
    yield


def launch_and_kill_after_checkpoint(args, model_dir, step: int, timeout_s: float = 180):
    """Starts ``python -m tests.mock_main ARGS --model_dir=...`` and SIGKILLs it
    as soon as the rolling checkpoint of ``step`` is recorded: a preemption at
    a known point, for the resume-equality tests."""
    import pathlib
    import signal
    import subprocess
    import sys
    import time

    from tf_lottery.core import layout

    root = pathlib.Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.mock_main", *args, f"--model_dir={model_dir}"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = pathlib.Path(layout.resume_state_file(str(model_dir)))
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and f"{layout.CHECKPOINT_NAME}-{step}" in state.read_text():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "run finished before it could be killed"

