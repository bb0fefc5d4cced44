"""The inline executor: an experiment's whole graph in this process, in order.

What ``--executor=inline`` (the default) runs: one ``Worker``, every task of
the graph in its topological order (the planner's order wherever the
dependencies allow, which is the order the single-process experiment has
always had), finished tasks skipped, an experiment-level progress line
(``progress.Progress``) after each task, then the experiment's ``refresh``
(IMP's 'running' results.json), if it has one. A planner whose graph grows
with what was measured (the onset search: the next probe depends on the
barriers so far) is planned again once every task is done, until the graph
stops growing; every other graph is the same when planned again, so it runs
once. Relaunching resumes: a task whose record is complete is not run again,
and a killed task resumes from its own last checkpoint.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tf_lottery.config import ExperimentConfig
from tf_lottery.core import records
from tf_lottery.tasks import plan
from tf_lottery.tasks.kinds import Runnable
from tf_lottery.tasks.progress import Progress
from tf_lottery.tasks.worker import Worker


def run(experiment: Runnable, config: ExperimentConfig,
        strategy: tf.distribute.Strategy | None = None, pipeline: Any = None
        ) -> records.Results:
    """Runs (or resumes) every task of ``config``'s graph; returns results.json."""
    worker = Worker(experiment, config, strategy, pipeline)
    refresh = experiment.refresh
    while True:
        progress = Progress(worker.graph, worker.done_ids(), workers=1)
        for task in worker.graph:
            if task.id in progress.done:
                continue
            worker.run(task.id)
            progress.finished(task.id, worker.last_seconds)
            if refresh is not None:
                refresh(config, task)
        graph = plan.plan(experiment, config)
        if [t.id for t in graph] == [t.id for t in worker.graph]:
            return worker.results()
        worker.graph = graph  # a search's next probe, planned from what it measured
