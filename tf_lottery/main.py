"""Entry point: ``python -m tf_lottery.main --flagfile=flags/<recipe>.cfg``.

flags -> config -> (data, strategy) -> experiment. Relaunching the same
command resumes; a finished run is reported and left untouched.
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (selects Keras 2 before TensorFlow loads)

# isort: split

import sys

import tensorflow as tf
from absl import app, logging

from tf_lottery import config as config_lib
from tf_lottery import rundir
from tf_lottery.data import inputs
from tf_lottery.errors import ConfigError
from tf_lottery.training import strategy as strategy_lib

config_lib.define_flags()


def run(config: config_lib.ExperimentConfig) -> dict:
    """Runs (or resumes) the experiment ``config`` describes; returns results."""
    run_experiment = config_lib.experiments.get(config.experiment).load()
    model_dir = config.runtime.model_dir
    rundir.claim(config)
    if rundir.is_complete(model_dir):
        logging.info("%s is complete; nothing to do (results in %s/%s).",
                     model_dir, model_dir, rundir.RESULTS_FILE)
        print(f"tf_lottery: {model_dir} is already complete; nothing to do.")
        return rundir.results(model_dir)
    if config.runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = strategy_lib.make_strategy(config.runtime)
    # In host memory for small datasets, streamed from shards for ImageNet.
    pipeline = inputs.make_pipeline(config)
    return run_experiment(config, strategy, pipeline)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.INFO)
    try:
        config = config_lib.config_from_flags()
        results = run(config)
    except ConfigError as e:
        print(f"tf_lottery: error: {config_lib.cli_message(e)}", file=sys.stderr)
        return 2
    metrics = results.get("metrics", {})
    if metrics:
        print("tf_lottery: test accuracy {:.4f}, train accuracy {:.4f}".format(
            metrics["test_accuracy"], metrics["train_accuracy"]))
    return 0


if __name__ == "__main__":
    app.run(main)
