"""Which task an idle worker gets next: list scheduling, live.

An executor that runs a graph on several workers keeps one ``Dispatcher``.
A worker that becomes free takes the ready task (every dependency done, not
started) with the highest *bottom level* — its own cost plus the longest
chain of work after it (``schedule.bottom_levels``) — so the long chains
(a parent, then its children) start first and the short leaves (pairs,
summaries) fill the gaps: Graham's list scheduling, the rule
``schedule.list_schedule`` uses to plan and estimate, here applied as tasks
actually finish. Costs are the planner's ``cost_steps``; they order work and
never change a result.

A task can be *deferred* until a time (its directory is leased by another
launch, which may finish it): it is not handed out before then.

Pure Python: no Ray, no TensorFlow, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection

from tf_lottery.tasks.graph import Graph
from tf_lottery.tasks.schedule import bottom_levels


class Dispatcher:
    """The state of one graph's execution: done, started, deferred, ready."""

    def __init__(self, graph: Graph, done: Collection[str] = ()):
        self.graph = graph
        self.done = {tid for tid in done if tid in graph}
        self.started: set[str] = set()
        self._deferred: dict[str, float] = {}
        self._position = {tid: i for i, tid in enumerate(graph.ids())}
        self._priority = bottom_levels(
            graph, {t.id: float(t.cost_steps) for t in graph}, self.done)

    def pending(self) -> list[str]:
        """Tasks not done yet (started or not), dependencies first."""
        return [tid for tid in self.graph.ids() if tid not in self.done]

    def finished(self) -> bool:
        return len(self.done) == len(self.graph)

    def priority(self, task_id: str) -> float:
        return self._priority.get(task_id, 0.0)

    def next(self, now: float) -> str | None:
        """The ready task to start now, highest bottom level first; None if none."""
        ready = [t.id for t in self.graph.ready(self.done, self.started)
                 if self._deferred.get(t.id, 0.0) <= now]
        if not ready:
            return None
        return min(ready, key=lambda tid: (-self._priority[tid], self._position[tid]))

    def start(self, task_id: str) -> None:
        self.started.add(task_id)
        self._deferred.pop(task_id, None)

    def complete(self, task_id: str) -> None:
        self.started.discard(task_id)
        self.done.add(task_id)

    def defer(self, task_id: str, until: float) -> None:
        """Puts a started task back, not to be handed out before ``until``."""
        self.started.discard(task_id)
        self._deferred[task_id] = until

    def wake_time(self) -> float | None:
        """When the earliest deferred task becomes available again."""
        waiting = [t for tid, t in self._deferred.items()
                   if tid not in self.done and tid not in self.started]
        return min(waiting, default=None)
