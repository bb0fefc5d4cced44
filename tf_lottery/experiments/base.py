"""``Experiment``: one experiment's code, registered by object.

An experiment is its config's declaration (``config.experiments.ExperimentSpec``:
its name and sections), a pure planner (config -> its tasks), the code of
each task kind, and an optional ``refresh`` the executor calls after each
task. It satisfies ``tasks.kinds.Runnable``, so every executor runs it;
``run`` runs it in this process (``tasks.inline``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from tf_lottery.config import ExperimentConfig
from tf_lottery.config.experiments import ExperimentSpec
from tf_lottery.core import records
from tf_lottery.errors import ConfigError
from tf_lottery.tasks import inline
from tf_lottery.tasks.graph import Task
from tf_lottery.tasks.kinds import RECORD, RUN, TaskKind, TaskWorker

__all__ = ["DENSE", "RECORD", "RUN", "Experiment", "Networks", "TaskKind", "TaskWorker",
           "record_kind", "run_kind"]


def run_kind(run: Callable[[TaskWorker, Task], None]) -> TaskKind:
    """A kind whose output is a run directory (its results.json says when it is done)."""
    return TaskKind(run, RUN)


def record_kind(run: Callable[[TaskWorker, Task], None],
                current: Callable[[ExperimentConfig, Mapping[str, Any]], bool] | None = None
                ) -> TaskKind:
    """A kind whose output is one record file (``current``: see ``TaskKind``)."""
    return TaskKind(run, RECORD, current)


@dataclasses.dataclass(frozen=True)
class Networks:
    """Where an experiment's trained network lives: what ``export`` writes
    out and ``align`` rebuilds.

    Attributes:
      run_dir: ``(config, model_dir, level) -> run directory`` of the network
        (``level`` None: the experiment's default); raises ``ConfigError``
        for a level it does not have.
      rewind_steps: ``config -> the steps k whose W_k the run kept``.
      masked: whether the network is built wrapped, with masks (IMP).
    """

    run_dir: Callable[[ExperimentConfig, str, int | None], str]
    rewind_steps: Callable[[ExperimentConfig], tuple[int, ...]]
    masked: bool = False


def _own_run_dir(config: ExperimentConfig, model_dir: str, level: int | None) -> str:
    if level not in (None, 0):
        raise ConfigError(f"--level={level}: {model_dir} holds a {config.experiment} run, "
                          "which has no IMP levels")
    return model_dir


def _recipe_rewind_steps(config: ExperimentConfig) -> tuple[int, ...]:
    return tuple(config.train.rewind_steps)


# The recipe's own run in the model_dir, dense, keeping --rewind_steps.
DENSE = Networks(_own_run_dir, _recipe_rewind_steps)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment's code.

    Attributes:
      spec: what the config knows of it (name, summary, sections).
      planner: config -> the experiment's tasks, a pure function (the same
        config gives the same ids, dependencies, kinds and costs anywhere).
      kinds: every task kind the planner uses, by name.
      refresh: ``(config, task) -> None`` or None; rebuilds model_dir-level
        views from the finished pieces (IMP's 'running' results.json, the
        report's figures in TensorBoard). Executors call it after each task,
        holding the model_dir's lease; tasks never do (see docs/tasks.md).
      networks: where its network lives, for ``export`` and ``align``.
    """

    spec: ExperimentSpec
    planner: Callable[[ExperimentConfig], list[Task]]
    kinds: Mapping[str, TaskKind]
    refresh: Callable[[ExperimentConfig, Task], None] | None = None
    networks: Networks = DENSE

    @property
    def name(self) -> str:
        return self.spec.name

    def run(self, config: ExperimentConfig, strategy: Any = None,
            pipeline: Any = None) -> records.Results:
        """Runs (or resumes) every task of its graph in this process
        (``tasks.inline``); returns ``results.json``."""
        return inline.run(self, config, strategy, pipeline)
