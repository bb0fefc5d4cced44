"""Experiment-level progress: tasks and steps done, measured step rate, ETA.

One line after each task, whatever the executor, across every piece of an
experiment (replicates, rewind steps, children, pairs, levels, baselines,
sparse instability)::

    experiment 7/15 tasks, 1,240/3,100 steps (40%) | 52.1 steps/s | ETA 0m36s
    on 1 worker | done: child 1 of replicate 0 at k=10 (12.3 s)

Steps are the planner's estimates (``cost_steps``, evaluation included), so
the rate is estimated steps per second of the tasks measured so far (this
session's, or finished runs' records for ``tf_lottery.status``), and the
ETA is the list-scheduled makespan (``schedule.list_schedule``) of the
remaining tasks on the workers in use at that rate. The Ray executor uses
the same class with its number of workers.

Pure Python: no TensorFlow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from absl import logging

from tf_lottery.tasks.graph import Graph, Task
from tf_lottery.tasks.schedule import list_schedule


def describe(task: Task) -> str:
    """The task in words, naming its replicate and k (or level)."""
    args = dict(task.args)
    where = []
    if "replicate" in args:
        where.append(f"replicate {args['replicate']}")
    if "level" in args and task.kind not in ("dense", "level"):
        where.append(f"level {args['level']}")
    if "k" in args:
        where.append(f"k={args['k']}")
    if "branch" in args and task.kind != "baseline":  # a baseline's sparse instability
        where.insert(0, args["branch"])
    at = f" of {', '.join(where)}" if where else ""
    if "child" in args:
        return f"child {args['child']}{at}"
    if "pair" in args:
        i, j = args["pair"]
        what = {"layerwise_pair": "layer-wise barriers of pair",
                "curve": "fitted curve of pair"}.get(task.kind, "pair")
        return f"{what} ({i},{j}){at}"
    if "replicates" in args:
        a, b = args["replicates"]
        return f"independent parents ({a},{b})"
    if task.kind == "baseline":
        return f"{args['branch']}{at}"
    if task.kind in ("dense", "level"):
        return f"IMP level {args['level']}"
    if task.kind == "parent":
        return f"parent{at}"
    if task.kind == "rewind_point":
        return f"rewind step k={args['k']} (all replicates)"
    if task.kind == "sparse_instability":
        return f"sparse instability{at}"
    return f"{task.kind} ({task.id})"


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Counts finished tasks and their time; reports the experiment's ETA.

    Attributes:
      graph: the experiment's tasks.
      done: ids of finished tasks.
      workers: how many tasks run at once (for the ETA).
    """

    def __init__(self, graph: Graph, done: Iterable[str] = (), workers: int = 1,
                 log: Callable[[str], None] | None = None):
        self.graph = graph
        self.done = set(done)
        self.workers = workers
        self.log = log or (lambda line: logging.info("%s", line))
        self._steps = 0.0  # estimated steps of the tasks timed so far
        self._seconds = 0.0

    def measure(self, task_id: str, seconds: float) -> None:
        """Adds a timing of ``task_id`` (this session's, or a record's)."""
        cost = self.graph[task_id].cost_steps
        if cost > 0 and seconds > 0:
            self._steps += cost
            self._seconds += seconds

    @property
    def rate(self) -> float | None:
        """Estimated steps per second, from the tasks timed so far."""
        return self._steps / self._seconds if self._seconds > 0 else None

    def steps(self) -> tuple[int, int]:
        """(estimated steps of the finished tasks, of all tasks)."""
        done = sum(self.graph[t].cost_steps for t in self.done if t in self.graph)
        return done, self.graph.total_steps()

    def eta_s(self) -> float | None:
        """Seconds until every task is done on ``workers`` workers."""
        rate = self.rate
        if rate is None:
            return None
        durations = {t.id: t.cost_steps / rate for t in self.graph}
        return list_schedule(self.graph, durations, self.workers, self.done).makespan

    def finished(self, task_id: str, seconds: float | None = None) -> str:
        """Counts ``task_id`` as done (timed ``seconds`` if it ran) and logs the line."""
        self.done.add(task_id)
        if seconds is not None:
            self.measure(task_id, seconds)
        line = self.line(self.graph[task_id], seconds)
        self.log(line)
        return line

    def line(self, last: Task | None = None, seconds: float | None = None) -> str:
        steps_done, steps_total = self.steps()
        done = len(self.done & set(self.graph.ids()))
        parts = [f"experiment {done}/{len(self.graph)} tasks, {steps_done:,}/"
                 f"{steps_total:,} steps ({100.0 * steps_done / max(steps_total, 1):.0f}%)"]
        rate, eta = self.rate, self.eta_s()
        if rate is not None and eta is not None:
            worker_s = "worker" if self.workers == 1 else "workers"
            parts.append(f"{rate:.1f} steps/s")
            parts.append(f"ETA {format_duration(eta)} on {self.workers} {worker_s}")
        if last is not None:
            took = f" ({seconds:.1f} s)" if seconds is not None else ""
            parts.append(f"done: {describe(last)}{took}")
        return " | ".join(parts)


def timed() -> Callable[[], float]:
    """A stopwatch: call the returned function for the seconds since."""
    started = time.perf_counter()
    return lambda: time.perf_counter() - started
