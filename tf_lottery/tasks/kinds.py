"""What an executor needs of an experiment, and what a task may use of its worker.

The executors (``inline``, ``--task``, Ray) run whatever experiment they
are handed: an object with a ``planner`` (config -> its tasks), its task
``kinds`` by name and, optionally, a ``refresh`` called after each task
(``Runnable``). ``tf_lottery.experiments`` holds the experiments; this
layer never imports them, so it cannot know one by its name.

A task kind's code gets the worker that runs it and the task
(``TaskKind.run``); ``TaskWorker`` is what that code may use of the
worker: the config, the strategy and pipeline built on first use, the
graph being run, and ``cached`` for what is expensive to build.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from tf_lottery.config import ExperimentConfig
from tf_lottery.tasks.graph import Graph, Task

# A kind's output: a run directory ``<model_dir>/<id>/`` whose results.json
# says when it is done (RUN), or a record file ``<model_dir>/<id>.json`` (RECORD).
RUN, RECORD = "run", "record"

T = TypeVar("T")


class TaskWorker(Protocol):
    """What a task kind's code may use of the worker running it
    (``tasks.worker.Worker``, or an experiment's view of one)."""

    @property
    def config(self) -> ExperimentConfig: ...

    @property
    def strategy(self) -> Any: ...

    @property
    def pipeline(self) -> Any: ...

    @property
    def graph(self) -> Graph: ...

    def cached(self, key: Any, build: Callable[[], T]) -> T: ...


@dataclasses.dataclass(frozen=True)
class TaskKind:
    """One kind of task of an experiment's graph.

    Attributes:
      run: ``(worker, task) -> None``; builds what it needs from the
        worker's config and the task (never from what an earlier task left
        in memory) and writes its output atomically.
      output: ``RUN`` or ``RECORD`` (see above).
      current: ``(config, record JSON) -> bool``, or None: whether a
        complete record is what this config asks for. A record made before
        an evaluation-only knob asked for more (``Section.measures_only``)
        is not, so the task runs again.
    """

    run: Callable[[TaskWorker, Task], None]
    output: str
    current: Callable[[ExperimentConfig, Mapping[str, Any]], bool] | None = None


class Runnable(Protocol):
    """An experiment as executors see it (``experiments.Experiment``)."""

    @property
    def name(self) -> str: ...

    @property
    def planner(self) -> Callable[[ExperimentConfig], list[Task]]: ...

    @property
    def kinds(self) -> Mapping[str, TaskKind]: ...

    @property
    def refresh(self) -> Callable[[ExperimentConfig, Task], None] | None: ...
