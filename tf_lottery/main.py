"""Entry point: ``python -m tf_lottery.main --flagfile=flags/<recipe>.cfg``.

flags -> config -> (strategy, data) -> lease -> experiment. Relaunching the
same command resumes; a finished run is reported and left untouched. The
strategy and the data are the launch's environment checks and come before
anything is written; then the launch takes the lease of --model_dir (one
executor at a time, see ``lease``) and only then writes there. In a
multi-worker launch that is the chief alone; the other workers write a scratch
directory of their own (``chief``).

An experiment is a graph of tasks (``tf_lottery.tasks``; docs/tasks.md).
Besides running all of it (``--executor=inline``, the default, or
``--executor=ray``), a launch may list it (``--list_tasks``: JSON lines,
nothing written) or run one task (``--task=ID`` or ``--task_index=N``):
such a launch holds only that task's lease, so many run side by side.
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (selects Keras 2 before TensorFlow loads)

# isort: split

import _thread
import contextlib
import json
import signal
import sys

from tf_lottery.config import helptext
from tf_lottery.tasks import ray_preflight

# Actions of this launch, not part of the config (nor of config.json): they
# never change the recipe or its hash.
FORCE_UNLOCK_HELP = (
    "Runtime: take over --model_dir's lease (lease.json) although its holder looks "
    "alive: for when you know that launch is gone (its machine was preempted or "
    "deleted). Not needed after a crash on the same host, nor once the lease went "
    "unrefreshed for 5 minutes (tf_lottery.lease.STALE_AFTER_S): such a lease is "
    "taken over anyway.")
LAUNCH_FLAGS = ("force_unlock", "list_tasks", "task", "task_index", "executor",
                "ray_address", "ray_connect_timeout_s", "task_resources")


def define_launch_flags(fv):
    """The launch actions: the lease, and what to run of the task graph and where."""
    from absl import flags as absl_flags

    absl_flags.DEFINE_boolean("force_unlock", False, FORCE_UNLOCK_HELP, flag_values=fv)
    absl_flags.DEFINE_boolean(
        "list_tasks", False,
        "Tasks: print the experiment's task graph as JSON lines (id, deps, kind, "
        "cost_steps, status) and exit; writes nothing.", flag_values=fv)
    absl_flags.DEFINE_string(
        "task", None,
        "Tasks: run exactly this task (an id from --list_tasks, e.g. "
        "replicate_0/k_000000100/child_1) once its dependencies are complete.",
        flag_values=fv)
    absl_flags.DEFINE_integer(
        "task_index", None,
        "Tasks: run the N-th task (from 0) of --list_tasks' order, for array jobs "
        "(Kubernetes Indexed Jobs, SLURM arrays).", lower_bound=0, flag_values=fv)
    absl_flags.DEFINE_enum(
        "executor", "inline", ["inline", "ray"],
        "Tasks: run every pending task in this process, in order ('inline'), or as "
        "Ray tasks respecting dependencies ('ray').", flag_values=fv)
    absl_flags.DEFINE_string(
        "ray_address", None,
        "Tasks: with --executor=ray, the Ray cluster to join (e.g. 10.0.0.2:6379, "
        "or 'auto'); default: start a local Ray instance.", flag_values=fv)
    absl_flags.DEFINE_float(
        "ray_connect_timeout_s", ray_preflight.CONNECT_TIMEOUT_S,
        "Tasks: with --ray_address=HOST:PORT, how long a plain TCP connect to it may "
        "take before the launch stops with one line (checked before Ray connects).",
        flag_values=fv)
    absl_flags.DEFINE_string(
        "task_resources", "",
        "Tasks: with --executor=ray, the resources each task holds, as NAME:AMOUNT "
        "items (e.g. GPU:1,CPU:4 or TPU:1).", flag_values=fv)


if __name__ == "__main__" and helptext.asked(sys.argv):
    # --help answers before TensorFlow loads (seconds, not half a minute).
    from absl import flags as _flags

    from tf_lottery import config as _config
    _help_flags = _flags.FlagValues()
    _config.define_flags(_help_flags)
    define_launch_flags(_help_flags)
    print(helptext.grouped(_help_flags, __doc__ or "", LAUNCH_FLAGS), end="")
    sys.exit(0)

import tensorflow as tf
from absl import app, flags, logging

from tf_lottery import chief, compose, experiments, files, lease, numerics, quiet, rundir, startup
from tf_lottery import config as config_lib
from tf_lottery.core import layout, records
from tf_lottery.data.pipeline import Pipeline
from tf_lottery.errors import ConfigError
from tf_lottery.reporting import console
from tf_lottery.tasks import cli as tasks_cli
from tf_lottery.tasks import plan as plan_lib
from tf_lottery.training import strategy as strategy_lib

config_lib.define_flags()
define_launch_flags(flags.FLAGS)


def parse_resources(text: str) -> dict[str, float]:
    """``--task_resources``: ``GPU:1,CPU:4`` -> ``{"GPU": 1.0, "CPU": 4.0}``."""
    found: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, amount = item.partition(":")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not sep or not name or value < 0 or name in found:
            raise ConfigError(f"--task_resources={text}: items are NAME:AMOUNT with "
                              f"distinct names and AMOUNT >= 0 (e.g. GPU:1,CPU:4), got "
                              f"{item!r}")
        found[name] = value
    return found


def _ray_experiment(experiment: experiments.Experiment, address: str | None,
                    resources: dict[str, float]):
    """The Ray executor as an experiment function (imported only when asked for)."""
    def run_on_ray(config, strategy, pipeline):
        try:
            from tf_lottery.tasks import ray_executor
        except ImportError as e:
            raise ConfigError(f"--executor=ray needs Ray and tf_lottery.tasks.ray_executor "
                              f"({e}); install tf_lottery[ray], or use --executor=inline"
                              ) from None
        return ray_executor.run(config, experiment=experiment, address=address,
                                resources=resources)

    return run_on_ray


def _hide_gpus() -> None:
    """Keeps this process's TensorFlow off the GPUs: the Ray driver still runs
    TensorFlow ops (the figures ``Experiment.refresh`` draws into TensorBoard),
    and the first one would map most of every visible GPU's memory."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialized (a caller in-process)
        logging.warning("The Ray driver could not hide the GPUs from its TensorFlow.")


def run(config: config_lib.ExperimentConfig, force_unlock: bool = False,
        executor: str = "inline", ray_address: str | None = None,
        resources: dict[str, float] | None = None,
        ray_connect_timeout_s: float = ray_preflight.CONNECT_TIMEOUT_S) -> records.Results:
    """Runs (or resumes) the experiment ``config`` describes; returns its record.

    ``force_unlock`` takes over the lease of a launch that looks alive;
    ``executor`` is 'inline' (this process) or 'ray' (``ray_address``, each
    task holding ``resources``). Either way this launch holds the lease of
    the model_dir while it runs: one executor per model_dir.
    """
    if executor == "ray":  # Ray installed, the address answers: before anything is written
        ray_preflight.check(ray_address, ray_connect_timeout_s)
    experiment = experiments.get(config.experiment)
    run_experiment = (experiment.run if executor == "inline"
                      else _ray_experiment(experiment, ray_address, resources or {}))
    startup.mark("experiment")
    model_dir = config.runtime.model_dir
    if config.runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    if executor == "ray":
        # The driver trains nothing: a strategy here would take the accelerators
        # (TensorFlow maps every visible GPU's memory; a TPU admits one process)
        # that the Ray workers of this machine need, and the data is theirs to
        # load. It is one process, so it writes as the chief.
        strategy, pipeline = None, None
        _hide_gpus()
        writing: contextlib.AbstractContextManager = contextlib.nullcontext()
    else:
        strategy = strategy_lib.make_strategy(config.runtime)
        startup.mark("strategy")
        # In host memory for small datasets, streamed from shards for ImageNet.
        pipeline = compose.make_pipeline(config)
        startup.mark("data")
        writing = chief.writing_as(strategy, model_dir)
    with writing:
        return _run_leased(config, run_experiment, strategy, pipeline, force_unlock)


def _run_leased(config: config_lib.ExperimentConfig, run_experiment,
                strategy: tf.distribute.Strategy | None, pipeline: Pipeline | None,
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
                 strategy: tf.distribute.Strategy | None,
                 pipeline: Pipeline | None) -> records.Results:
    model_dir = config.runtime.model_dir
    rundir.claim(config, reopen=lambda added: _reopen(config, added))
    if strategy is not None:  # the Ray driver is one process: nothing to share
        chief.check_shared(strategy, layout.config_file(model_dir))
    startup.mark("claimed")
    done = rundir.results(model_dir)
    if done is not None and layout.is_complete(done) and not _asks_for_more(config):
        logging.info("%s is complete; nothing to do (results in %s).",
                     model_dir, layout.results_file(model_dir))
        print(f"tf_lottery: {model_dir} is already complete; nothing to do.")
        return done
    return run_experiment(config, strategy, pipeline)


def _reopen(config: config_lib.ExperimentConfig, added: tuple[str, ...]) -> None:
    """A finished run relaunched with an add-on (``--curve``): its aggregates
    are recomputed with the new pieces (``tasks.plan.reopen``)."""
    moved = plan_lib.reopen(experiments.get(config.experiment), config)
    logging.info("Relaunched with %s: %d aggregate record(s) set aside, to be recomputed "
                 "with the new pieces.", ", ".join(added), len(moved))


def _asks_for_more(config: config_lib.ExperimentConfig) -> bool:
    """Whether a complete results.json lacks what this launch's evaluation-only
    knobs ask for (``TaskKind.current``): a finished run relaunched with them
    computes the new pieces and its results again."""
    experiment = experiments.get(config.experiment)
    results = layout.task_id(layout.results_file("<m>"), "<m>")
    found = [t for t in experiment.planner(config) if t.id == results]
    current = experiment.kinds[found[0].kind].current if found else None
    record = files.read_json(layout.results_file(config.runtime.model_dir))
    return current is not None and isinstance(record, dict) and not current(config, record)


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
    f = flags.FLAGS
    try:
        logging.info("CPU numerics: %s", numerics.current().describe())
        config = config_lib.config_from_flags()
        if f.list_tasks:
            lines = tasks_cli.list_tasks(experiments.get(config.experiment), config)
            for line in lines:
                print(json.dumps(line))
            print(tasks_cli.total_line(lines), file=sys.stderr)
            return 0
        if f.task is not None or f.task_index is not None:
            if f.task is not None and f.task_index is not None:
                raise ConfigError("--task and --task_index both name a task; give one")
            ran = tasks_cli.run_task(experiments.get(config.experiment), config, f.task,
                                     f.task_index, force_unlock=f.force_unlock)
            print(f"tf_lottery: task {ran} is complete.")
            return 0
        results = run(config, force_unlock=f.force_unlock, executor=f.executor,
                      ray_address=f.ray_address,
                      resources=parse_resources(f.task_resources),
                      ray_connect_timeout_s=f.ray_connect_timeout_s)
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
