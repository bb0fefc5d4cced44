"""List scheduling of a task graph on N identical workers: ETAs and cluster plans.

Used for the ETA of an experiment's remaining tasks (``tf_lottery.status``,
the executors' progress line) and for planning a cluster
(``benchmarks/plan_cluster.py``). Greedy list scheduling, highest
*bottom level* first (the longest chain from a task to the end of the
graph), is Graham's classic heuristic: its makespan is within a factor
2 − 1/N of the optimum, and exact for independent tasks on one worker.

Pure Python: no TensorFlow, no I/O.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Collection, Mapping

from tf_lottery.tasks.graph import Graph


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When each remaining task starts and ends, in the units of the durations.

    Attributes:
      makespan: time until the last task ends.
      busy: sum of all durations (worker-time, e.g. accelerator-seconds).
      critical_path: the longest chain of dependent remaining tasks; no
        number of workers finishes sooner.
      start, finish: per task id.
      workers: the number of workers scheduled on.
    """

    makespan: float
    busy: float
    critical_path: float
    start: dict[str, float]
    finish: dict[str, float]
    workers: int


def bottom_levels(graph: Graph, durations: Mapping[str, float],
                  done: Collection[str] = ()) -> dict[str, float]:
    """For each task not done: its duration plus the longest chain after it."""
    users: dict[str, list[str]] = {t.id: [] for t in graph}
    for task in graph:
        for dep in task.deps:
            users[dep].append(task.id)
    level: dict[str, float] = {}
    for task in reversed(graph.order()):
        if task.id in done:
            continue
        level[task.id] = durations[task.id] + max(
            (level[u] for u in users[task.id] if u in level), default=0.0)
    return level


def list_schedule(graph: Graph, durations: Mapping[str, float], workers: int,
                  done: Collection[str] = ()) -> Schedule:
    """Schedules the tasks not in ``done`` on ``workers`` identical workers."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    done = set(done)
    priority = bottom_levels(graph, durations, done)
    remaining = {t.id: sum(1 for d in t.deps if d not in done)
                 for t in graph if t.id not in done}
    users: dict[str, list[str]] = {tid: [] for tid in remaining}
    for tid in remaining:
        for dep in graph[tid].deps:
            if dep not in done:
                users[dep].append(tid)
    order = {t.id: i for i, t in enumerate(graph)}
    ready = [(-priority[tid], order[tid], tid) for tid, n in remaining.items() if n == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []  # (finish time, id)
    free, now = workers, 0.0
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    while ready or running:
        while ready and free:
            _, _, tid = heapq.heappop(ready)
            start[tid] = now
            heapq.heappush(running, (now + durations[tid], tid))
            free -= 1
        now, tid = heapq.heappop(running)
        finish[tid] = now
        free += 1
        for user in users[tid]:
            remaining[user] -= 1
            if remaining[user] == 0:
                heapq.heappush(ready, (-priority[user], order[user], user))
    return Schedule(makespan=max(finish.values(), default=0.0),
                    busy=sum(durations[t] for t in finish),
                    critical_path=max(priority.values(), default=0.0),
                    start=start, finish=finish, workers=workers)
