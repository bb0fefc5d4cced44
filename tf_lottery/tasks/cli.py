"""What ``tf_lottery.main`` does with the task graph: ``--list_tasks``, ``--task``.

``--list_tasks`` writes nothing: it plans the graph and reads each task's
record (and lease) to say whether it is done, running or pending.
``--task=ID`` / ``--task_index=N`` runs one task in this launch: it checks
the task's dependencies first (one line naming those not complete), then
the environment (strategy, data), claims the model_dir for the recipe
(``rundir.claim``: config.json is created exclusively, so launches racing
on a new model_dir agree on one recipe) and runs the task under its own
lease. It never takes the model_dir's lease, so many ``--task`` launches
(an array job) run side by side; one executor (inline or Ray) holding the
model_dir's lease and ``--task`` launches may also share it, since each
task is leased on its own.
"""

from __future__ import annotations

import _thread
from typing import Any

from tf_lottery import chief, compose, files, lease, rundir
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout
from tf_lottery.tasks import plan as plan_lib
from tf_lottery.tasks.graph import DONE, PENDING, RUNNING
from tf_lottery.tasks.kinds import Runnable
from tf_lottery.tasks.worker import MissingDependenciesError, Worker, running_holder


def list_tasks(experiment: Runnable, config: ExperimentConfig) -> list[dict[str, Any]]:
    """One JSON object per task, in topological order, with its status."""
    model_dir = config.runtime.model_dir
    rundir.check(config)
    graph = plan_lib.plan(experiment, config)
    lines = []
    for task in graph:
        line = task.to_json()
        holder = None
        if plan_lib.is_done(experiment, config, task):
            line["status"] = DONE
        else:
            holder = running_holder(model_dir, task.id)
            line["status"] = RUNNING if holder else PENDING
        if holder:
            line["running"] = {key: holder.get(key) for key in ("host", "pid", "started")}
        lines.append(line)
    return lines


def total_line(lines: list[dict[str, Any]]) -> str:
    """What ``--list_tasks`` adds for a person (on stderr, so stdout stays one
    task per line): the task count, the estimated steps of them all (each
    task's ``cost_steps``, in training steps of the recipe's batch) and what
    is done already -- the experiment's cost before anyone commits to it."""
    total = sum(line["cost_steps"] for line in lines)
    done = [line for line in lines if line["status"] == DONE]
    done_steps = sum(line["cost_steps"] for line in done)
    return (f"total: {_tasks(len(lines))}, {total:,} estimated steps; "
            f"done: {_tasks(len(done))}, {done_steps:,} steps")


def _tasks(n: int) -> str:
    return f"{n} task{'' if n == 1 else 's'}"


def run_task(experiment: Runnable, config: ExperimentConfig, task_id: str | None,
             index: int | None, *, force_unlock: bool = False) -> str:
    """Runs one task (``--task`` or ``--task_index``); returns its id."""
    from tf_lottery.training import strategy as strategy_lib

    graph = plan_lib.plan(experiment, config)
    task = plan_lib.resolve(graph, task_id, index)
    rundir.check(config)
    if not plan_lib.is_done(experiment, config, task):
        missing = [d for d in task.deps
                   if not plan_lib.is_done(experiment, config, graph[d])]
        if missing:
            raise MissingDependenciesError(
                f"task {task.id} needs {len(missing)} unfinished task(s) first: "
                f"{', '.join(missing)} (see --list_tasks)")
    model_dir = config.runtime.model_dir
    strategy = strategy_lib.make_strategy(config.runtime)
    pipeline = compose.make_pipeline(config)
    with chief.writing_as(strategy, model_dir):
        files.ensure_writable_dir(model_dir)
        rundir.claim(config, reopen=lambda _: plan_lib.reopen(experiment, config))
        chief.check_shared(strategy, layout.config_file(model_dir))
        worker = Worker(experiment, config, strategy, pipeline, force_unlock=force_unlock,
                        on_lost=_thread.interrupt_main)
        try:
            worker.run(task.id)
        except KeyboardInterrupt:
            if worker.lost:
                raise lease.LeaseHeldError(
                    f"task {task.id} of --model_dir={model_dir}: another launch took over "
                    "its lease while this one ran (--force_unlock?), so this one stopped"
                ) from None
            raise
    return task.id
