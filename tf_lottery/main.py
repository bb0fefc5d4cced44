"""Entry point: ``python -m tf_lottery.main --flagfile=flags/<recipe>.cfg``.

flags -> config -> (strategy, data) -> lease -> experiment. Relaunching the
same command resumes; a finished run is reported and left untouched. The
strategy and the data are the launch's environment checks and come before
anything is written; then the launch takes the lease of --model_dir (one
writer at a time, see ``lease``) and only then writes there. In a
multi-worker launch that is the chief alone; the other workers write a scratch
directory of their own (``chief``).
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (selects Keras 2 before TensorFlow loads)

# isort: split

import _thread
import signal
import sys

from tf_lottery.config import helptext

# An action of this launch, not part of the config (nor of config.json).
FORCE_UNLOCK_HELP = (
    "Runtime: take over --model_dir's lease (lease.json) although its holder looks "
    "alive: for when you know that launch is gone (its machine was preempted or "
    "deleted). Not needed after a crash on the same host, nor once the lease went "
    "unrefreshed for 5 minutes (tf_lottery.lease.STALE_AFTER_S): such a lease is "
    "taken over anyway.")

if __name__ == "__main__" and helptext.asked(sys.argv):
    # --help answers before TensorFlow loads (seconds, not half a minute).
    from absl import flags as _flags

    from tf_lottery import config as _config
    _help_flags = _flags.FlagValues()
    _config.define_flags(_help_flags)
    _flags.DEFINE_boolean("force_unlock", False, FORCE_UNLOCK_HELP, flag_values=_help_flags)
    print(helptext.grouped(_help_flags, __doc__ or "", ["force_unlock"]), end="")
    sys.exit(0)

import tensorflow as tf
from absl import app, flags, logging

from tf_lottery import chief, compose, files, lease, quiet, rundir, startup
from tf_lottery import config as config_lib
from tf_lottery.core import layout, records
from tf_lottery.data.pipeline import Pipeline
from tf_lottery.errors import ConfigError
from tf_lottery.reporting import console
from tf_lottery.training import strategy as strategy_lib

config_lib.define_flags()
flags.DEFINE_boolean("force_unlock", False, FORCE_UNLOCK_HELP)


def run(config: config_lib.ExperimentConfig, force_unlock: bool = False
        ) -> records.Results:
    """Runs (or resumes) the experiment ``config`` describes; returns its record.

    ``force_unlock`` takes over the lease of a launch that looks alive.
    """
    run_experiment = config_lib.experiments.get(config.experiment).load()
    startup.mark("experiment")
    model_dir = config.runtime.model_dir
    if config.runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = strategy_lib.make_strategy(config.runtime)
    startup.mark("strategy")
    # In host memory for small datasets, streamed from shards for ImageNet.
    pipeline = compose.make_pipeline(config)
    startup.mark("data")
    with chief.writing_as(strategy, model_dir):
        return _run_leased(config, run_experiment, strategy, pipeline, force_unlock)


def _run_leased(config: config_lib.ExperimentConfig, run_experiment,
                strategy: tf.distribute.Strategy, pipeline: Pipeline,
                force_unlock: bool) -> records.Results:
    model_dir = config.runtime.model_dir
    files.ensure_writable_dir(model_dir)
    if not chief.is_chief():
        # A multi-worker run's non-chief workers: the chief holds the lease.
        return _run_claimed(config, run_experiment, strategy, pipeline)
    held = lease.Lease(model_dir, force=force_unlock, label=f"--model_dir={model_dir}",
                       on_lost=_thread.interrupt_main)
    try:
        with held:
            return _run_claimed(config, run_experiment, strategy, pipeline)
    except KeyboardInterrupt:
        if held.lost:
            raise lease.LeaseHeldError(
                f"--model_dir={model_dir}: another launch took over its lease while this "
                "one ran (--force_unlock?), so this one stopped; run one launch per "
                "--model_dir") from None
        raise


def _run_claimed(config: config_lib.ExperimentConfig, run_experiment,
                 strategy: tf.distribute.Strategy, pipeline: Pipeline) -> records.Results:
    model_dir = config.runtime.model_dir
    rundir.claim(config)
    chief.check_shared(strategy, layout.config_file(model_dir))
    startup.mark("claimed")
    done = rundir.results(model_dir)
    if done is not None and layout.is_complete(done):
        logging.info("%s is complete; nothing to do (results in %s).",
                     model_dir, layout.results_file(model_dir))
        print(f"tf_lottery: {model_dir} is already complete; nothing to do.")
        return done
    return run_experiment(config, strategy, pipeline)


def _exit_on_sigterm(signum, frame) -> None:
    # As SystemExit, so that the lease is released on the way out (a TPU VM
    # is sent SIGTERM before it is preempted).
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"tf_lottery: error: unexpected argument(s) {' '.join(argv[1:])!r}: every "
              "setting is a flag (--name=value); see --helpfull", file=sys.stderr)
        return 2
    startup.mark("main")
    logging.set_verbosity(logging.INFO)
    quiet.install()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        config = config_lib.config_from_flags()
        results = run(config, force_unlock=flags.FLAGS.force_unlock)
    except ConfigError as e:
        print(f"tf_lottery: error: {config_lib.cli_message(e)}", file=sys.stderr)
        return 2
    if isinstance(results, records.RunRecord):
        m = results.metrics
        print(f"tf_lottery: test accuracy {m.test_accuracy:.4f}, "
              f"train accuracy {m.train_accuracy:.4f}")
    else:  # the experiment's summary table, also on a relaunch of a finished run
        print(console.summary(results, config.runtime.model_dir))
    return 0


if __name__ == "__main__":
    app.run(main)
