"""An experiment as a graph of tasks: what runs, after what, at what cost.

A *task* is one idempotent piece of an experiment: a parent run, a child, a
pair's path, an IMP level, a baseline, a summary. Its ``id`` is the path of
its output relative to the experiment's model_dir (``replicate_0/parent``,
``replicate_0/k_000000100/pair_0_1``, ``level_03/random_prune``), so ids are
stable, readable and sort like the directory tree. ``deps`` are the ids of
the tasks whose outputs it reads. ``cost_steps`` is the estimated cost in
training steps (evaluation counted in equivalent steps), used to order work,
report progress and plan clusters; it never changes a result.

A ``Graph`` is a pure function of the config (built by the experiment's
planner), checked on construction: ids unique, every dependency known, no
cycle. ``order()`` is a topological order that keeps the planner's order
where dependencies allow, so the inline executor runs tasks in the same
sequence as the single-process experiment always has.

Pure Python: no TensorFlow, no I/O.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

# Task states, as reported by --list_tasks and tf_lottery.status.
DONE = "done"
RUNNING = "running"
PENDING = "pending"


class GraphError(ValueError):
    """A planner built an inconsistent graph: a bug, not bad input."""


@dataclasses.dataclass(frozen=True)
class Task:
    """One piece of an experiment.

    Attributes:
      id: the output's path relative to model_dir; unique in its graph.
      kind: what code runs it (``parent``, ``child``, ``pair``, ``level``, ...).
      deps: ids of the tasks whose outputs this one reads.
      cost_steps: estimated cost in training steps (evaluation included).
      args: ``(name, value)`` pairs its code reads (replicate, k, child, level,
        ...); the same information as the id, parsed once by the planner.
    """

    id: str
    kind: str
    deps: tuple[str, ...] = ()
    cost_steps: int = 0
    args: tuple[tuple[str, Any], ...] = ()

    def arg(self, name: str) -> Any:
        """The value of argument ``name``; KeyError if the task has none."""
        for key, value in self.args:
            if key == name:
                return value
        raise KeyError(f"task {self.id!r} has no argument {name!r}")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "deps": list(self.deps),
                "cost_steps": self.cost_steps}


class Graph:
    """Tasks and their dependencies; immutable once built."""

    def __init__(self, tasks: Iterable[Task]):
        self._tasks: dict[str, Task] = {}
        for task in tasks:
            if task.id in self._tasks:
                raise GraphError(f"task id {task.id!r} appears twice")
            self._tasks[task.id] = task
        for task in self._tasks.values():
            unknown = [d for d in task.deps if d not in self._tasks]
            if unknown:
                raise GraphError(f"task {task.id!r} depends on unknown {unknown}")
        self._order = self._topological_order()

    def _topological_order(self) -> list[Task]:
        """Kahn's algorithm; ties broken by the planner's order."""
        position = {tid: i for i, tid in enumerate(self._tasks)}
        waiting = {tid: len(set(t.deps)) for tid, t in self._tasks.items()}
        users: dict[str, list[str]] = {tid: [] for tid in self._tasks}
        for task in self._tasks.values():
            for dep in set(task.deps):
                users[dep].append(task.id)
        ready = [(position[tid], tid) for tid, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, tid = heapq.heappop(ready)
            order.append(self._tasks[tid])
            for user in users[tid]:
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(ready, (position[user], user))
        if len(order) != len(self._tasks):
            stuck = sorted(tid for tid, n in waiting.items() if n > 0)
            raise GraphError(f"dependency cycle among {stuck}")
        return order

    def __iter__(self) -> Iterator[Task]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __getitem__(self, task_id: str) -> Task:
        return self._tasks[task_id]

    def order(self) -> list[Task]:
        """Every task, dependencies first."""
        return list(self._order)

    def ids(self) -> list[str]:
        return [t.id for t in self._order]

    def missing_deps(self, task_id: str, done: set[str]) -> list[str]:
        """The dependencies of ``task_id`` that are not in ``done``."""
        return [d for d in self._tasks[task_id].deps if d not in done]

    def ready(self, done: set[str], started: Iterable[str] = ()) -> list[Task]:
        """Tasks not done nor started whose dependencies are all done, in order."""
        skip = done | set(started)
        return [t for t in self._order
                if t.id not in skip and all(d in done for d in t.deps)]

    def upstream(self, task_id: str) -> set[str]:
        """Every task ``task_id`` needs, directly or not."""
        seen: set[str] = set()
        stack = list(self._tasks[task_id].deps)
        while stack:
            tid = stack.pop()
            if tid not in seen:
                seen.add(tid)
                stack.extend(self._tasks[tid].deps)
        return seen

    def critical_path_steps(self, cost: Mapping[str, float] | None = None) -> float:
        """The longest chain of dependent tasks, by ``cost`` (default cost_steps)."""
        finish: dict[str, float] = {}
        for task in self._order:
            own = cost[task.id] if cost is not None else task.cost_steps
            finish[task.id] = own + max((finish[d] for d in task.deps), default=0.0)
        return max(finish.values(), default=0.0)

    def total_steps(self) -> int:
        return sum(t.cost_steps for t in self._order)
