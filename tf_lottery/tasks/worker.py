"""A Worker runs tasks of one experiment, one at a time, each exactly once.

Every executor goes through it: the inline executor (one Worker, the graph
in order), a ``--task=ID`` launch (one Worker, one task) and the Ray
executor (one ``Worker(config)`` per actor, ``worker.run(task_id)`` per
task). ``run`` is idempotent and safe to call from several processes:

1. a task whose output record says complete returns at once;
2. a task whose dependencies are not all complete is refused with one
   line naming them (``MissingDependenciesError``);
3. the task takes its lease (``lease.Lease`` on ``<model_dir>/leases/<id>``,
   ``layout.task_lease_dir``), so two executors never run one task at once;
   holding it, it checks again whether another finished it meanwhile;
4. a damaged output record is set aside (``files.read_summary``), so the
   task recomputes it and the damaged copy stays for inspection;
5. the task kind's function (``tasks.kinds.TaskKind``) runs and
   writes its output atomically, a record last.

Tasks are self-contained: a kind's function builds what it needs from the
config and its task (``RunSpec.start`` states where each run starts). The
Worker only caches what is expensive to build and carries no result between
tasks: the strategy, the input pipeline, Trainers and path evaluators,
built on first use (``cached``), so a long-lived worker traces its loops
once for many tasks.
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (selects Keras 2 before TensorFlow loads)

# isort: split

import time
from collections.abc import Callable
from typing import Any, TypeVar

import tensorflow as tf
from absl import logging

from tf_lottery import chief, files, lease, numerics, provenance
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError
from tf_lottery.tasks import plan as plan_lib
from tf_lottery.tasks.graph import DONE, PENDING, RUNNING, Graph, Task
from tf_lottery.tasks.kinds import Runnable
from tf_lottery.tasks.progress import describe

T = TypeVar("T")


class MissingDependenciesError(ConfigError):
    """A task was asked to run before the tasks it reads are complete."""


def running_holder(model_dir: str, task_id: str) -> dict | None:
    """The live holder of the task's lease (host, pid, started), or None."""
    held = lease.Lease(layout.task_lease_dir(model_dir, task_id))
    return held.live_holder()


class Worker:
    """Runs the tasks of ``experiment``'s graph for ``config`` (``plan.plan``)
    in this process; it is what every task kind's code gets
    (``tasks.kinds.TaskWorker``).

    ``strategy`` and ``pipeline`` may be given (tests, an executor that has
    them); otherwise they are built from the config when a task first needs
    them. ``force_unlock`` takes over task leases that look alive;
    ``on_lost`` is called if another launch takes a held lease over.

    Attributes:
      experiment: its planner and task kinds (``tasks.kinds.Runnable``).
      config: the experiment's config; must round-trip through ``to_json``.
      graph: its task graph.
      last_seconds: how long the last task that ran took.
    """

    def __init__(self, experiment: Runnable, config: ExperimentConfig,
                 strategy: tf.distribute.Strategy | None = None, pipeline: Any = None, *,
                 force_unlock: bool = False, on_lost: Callable[[], None] | None = None):
        self.experiment = experiment
        self.config = config
        self.model_dir = config.runtime.model_dir
        self.graph: Graph = plan_lib.plan(experiment, config)
        self.force_unlock = force_unlock
        self.on_lost = on_lost
        self.last_seconds: float | None = None
        self.lost = False  # a task's lease was taken over while it ran
        self._strategy = strategy
        self._pipeline = pipeline
        self._cache: dict[Any, Any] = {}
        self._numerics_told = False
        if config.runtime.deterministic:
            tf.config.experimental.enable_op_determinism()

    # -- what tasks build on (built once, on first use) --------------------------------

    @property
    def strategy(self) -> tf.distribute.Strategy:
        if self._strategy is None:
            from tf_lottery.training import strategy as strategy_lib

            self._strategy = strategy_lib.make_strategy(self.config.runtime)
        return self._strategy

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            from tf_lottery import compose

            self._pipeline = compose.make_pipeline(self.config)
        return self._pipeline

    def cached(self, key: Any, build: Callable[[], T]) -> T:
        """``build()`` once per ``key`` (a Trainer, a path evaluator): what a
        task may reuse from an earlier one, since every run states its start."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # -- state ---------------------------------------------------------------------------

    def task(self, task_id: str) -> Task:
        return plan_lib.resolve(self.graph, task_id)

    def is_done(self, task_id: str) -> bool:
        return plan_lib.is_done(self.experiment, self.config, self.task(task_id))

    def state(self, task_id: str) -> str:
        """'done' (its record is complete), 'running' (a live lease) or 'pending'."""
        if self.is_done(task_id):
            return DONE
        return RUNNING if running_holder(self.model_dir, task_id) else PENDING

    def done_ids(self) -> set[str]:
        return {t.id for t in self.graph if plan_lib.is_done(self.experiment, self.config, t)}

    def missing(self, task_id: str) -> list[str]:
        """The dependencies of ``task_id`` that are not complete."""
        return [d for d in self.task(task_id).deps if not self.is_done(d)]

    # -- running -------------------------------------------------------------------------

    def run(self, task_id: str) -> None:
        """Runs ``task_id`` unless it is done (see the module docstring).

        Raises:
          MissingDependenciesError: a dependency is not complete.
          lease.LeaseHeldError: another live launch is running the task.
          plan.UnknownTaskError: no such task.
        """
        task = self.task(task_id)
        self.last_seconds = None
        if self.is_done(task_id):
            logging.info("Task %s is already complete: nothing to do.", task_id)
            return
        missing = self.missing(task_id)
        if missing:
            raise MissingDependenciesError(
                f"task {task_id} needs {len(missing)} unfinished task(s) first: "
                f"{', '.join(missing)} (see --list_tasks)")
        if not self._is_chief():
            self._execute(task)  # a multi-worker run's other workers: the chief leases
            return
        held = lease.Lease(layout.task_lease_dir(self.model_dir, task_id),
                           force=self.force_unlock,
                           label=f"task {task_id} of --model_dir={self.model_dir}",
                           on_lost=self._lost)
        with held:
            if self.is_done(task_id):  # finished by another launch meanwhile
                return
            # A damaged output is set aside (renamed, said so in the log), never
            # overwritten unseen; the task then recomputes it.
            files.read_summary(plan_lib.output_file(self.experiment, self.config, task))
            self._execute(task)

    def _lost(self) -> None:
        self.lost = True
        if self.on_lost is not None:
            self.on_lost()

    @staticmethod
    def _is_chief() -> bool:
        """Whether this process writes the model_dir (``chief.writing_as``)."""
        return chief.is_chief()

    def _execute(self, task: Task) -> None:
        if not self._numerics_told:
            self._numerics_told = True
            self._tell_numerics()
        logging.info("Task %s (%s): starting.", task.id, describe(task))
        started = time.perf_counter()
        plan_lib.kind_of(self.experiment, task).run(self, task)
        self.last_seconds = time.perf_counter() - started

    def _tell_numerics(self) -> None:
        """Says in one line when this process computes with other CPU numerics
        than the experiment's first launch (a Ray worker on another kind of
        machine): its runs are then comparable statistically, not bit for bit.
        A run resumed under other numerics is the Trainer's to refuse."""
        try:
            first = provenance.recorded_numerics(
                files.read_json(layout.config_file(self.model_dir)) or {})
        except ConfigError:
            return  # a damaged config.json is reported where the model_dir is claimed
        now = numerics.current()
        if first is not None and not first.same_bits_as(now):
            logging.warning("This worker computes with %s; the experiment's first launch "
                            "used %s: its tasks here will not be bit-identical to theirs "
                            "(docs/numerics.md).", now.describe(), first.describe())

    def results(self) -> records.Results:
        """The experiment's results.json (once its results task is done)."""
        return store.read_done(layout.results_file(self.model_dir),
                               records.ExperimentResults, self.model_dir)
