"""The task graph of a config: ``plan(config) -> Graph``, and where tasks write.

An experiment (``tasks.kinds.Runnable``, from ``tf_lottery.experiments``)
brings its planner and task kinds; this module turns a config into its ``Graph`` and
answers, without running anything, where a task's output lives and whether
it is done. The graph is a pure function of the config: the same config
gives the same ids, dependencies, kinds and costs, on every machine, so any
process (the inline executor, a ``--task`` launch, a Ray worker, the status
command) agrees on what the experiment is.
"""

from __future__ import annotations

from tf_lottery import files
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout
from tf_lottery.errors import ConfigError, CorruptFileError
from tf_lottery.tasks.graph import Graph, Task
from tf_lottery.tasks.kinds import RECORD, RUN, Runnable, TaskKind


def plan(experiment: Runnable, config: ExperimentConfig) -> Graph:
    """The experiment's task graph."""
    tasks = experiment.planner(config)
    unknown = sorted({t.kind for t in tasks} - set(experiment.kinds))
    if unknown:
        raise ValueError(f"experiment {experiment.name!r} plans tasks of unregistered kinds "
                         f"{unknown}")
    return Graph(tasks)


def kind_of(experiment: Runnable, task: Task) -> TaskKind:
    return experiment.kinds[task.kind]


def output_file(experiment: Runnable, config: ExperimentConfig, task: Task) -> str:
    """The file whose record says the task is done."""
    model_dir = config.runtime.model_dir
    if kind_of(experiment, task).output == RUN:
        return layout.results_file(layout.task_run_dir(model_dir, task.id))
    return layout.task_record_file(model_dir, task.id)


def is_done(experiment: Runnable, config: ExperimentConfig, task: Task) -> bool:
    """Whether the task's output record is complete. Read only: a damaged
    record counts as not done (the task sets it aside when it runs)."""
    try:
        record = files.read_json(output_file(experiment, config, task))
    except CorruptFileError:
        return False
    if not (isinstance(record, dict) and record.get("status") == layout.COMPLETE):
        return False
    current = kind_of(experiment, task).current
    return current is None or current(config, record)


def reopen(experiment: Runnable, config: ExperimentConfig) -> list[str]:
    """Sets aside (``files.set_aside``, never deletes) the finished aggregates
    of the graph: its record tasks that cost nothing, which only read their
    dependencies' records (a rewind point's record, results.json). A
    relaunch that adds pieces (an add-on section such as ``--curve``) calls
    it, so that they are recomputed with the new pieces. Returns what was
    set aside."""
    moved = []
    for task in plan(experiment, config):
        if (task.cost_steps == 0 and kind_of(experiment, task).output == RECORD
                and is_done(experiment, config, task)):
            moved.append(files.set_aside(output_file(experiment, config, task),
                                         layout.SUPERSEDED))
    return moved


class UnknownTaskError(ConfigError):
    """--task / --task_index names no task of the experiment."""


def resolve(graph: Graph, task: str | None = None, index: int | None = None) -> Task:
    """The task named by ``--task=ID`` or ``--task_index=N`` (topological order)."""
    if index is not None:
        if not 0 <= index < len(graph):
            raise UnknownTaskError(f"--task_index={index} is outside 0..{len(graph) - 1} "
                                   f"(the experiment has {len(graph)} tasks; see "
                                   "--list_tasks)")
        return graph.order()[index]
    if task is None or task not in graph:
        raise UnknownTaskError(f"--task={task} is not a task of this experiment (see "
                               "--list_tasks)")
    return graph[task]


def recorded_seconds_of(experiment: Runnable, config: ExperimentConfig,
                        task: Task) -> float | None:
    """The wall time a finished task's record gives (a run's last session, a
    pair's evaluation); None when it records none."""
    try:
        record = files.read_json(output_file(experiment, config, task))
    except CorruptFileError:
        return None
    if not isinstance(record, dict) or record.get("status") != layout.COMPLETE:
        return None
    value = record.get("wall_time_s_last_session", record.get("wall_time_s"))
    return float(value) if isinstance(value, int | float) else None


def recorded_seconds(experiment: Runnable, config: ExperimentConfig, graph: Graph) -> float:
    """The wall times every finished task that trains or evaluates recorded,
    summed: the training and evaluation an experiment took, whichever
    processes ran its tasks (aggregates, which cost nothing, are left out)."""
    return round(sum(recorded_seconds_of(experiment, config, t) or 0.0 for t in graph
                     if t.cost_steps > 0), 3)
