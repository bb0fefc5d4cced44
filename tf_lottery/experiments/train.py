"""The 'train' experiment: the recipe's run, once, keeping rewind checkpoints W_k.

Its graph is one task, the recipe's run in the model_dir itself
(``toolkit.recipe_run``); its output is the model_dir's results.json, hence
its id ``results``. Every other experiment's parents start the same way.
"""

from __future__ import annotations

from typing import Any

from tf_lottery.config import ExperimentConfig, experiments
from tf_lottery.core import records
from tf_lottery.experiments import toolkit
from tf_lottery.experiments.base import Experiment, record_kind
from tf_lottery.tasks.graph import Task
from tf_lottery.tasks.kinds import TaskWorker


def plan(config: ExperimentConfig) -> list[Task]:
    """One task: the recipe's run, whose output is the model_dir's results.json."""
    return [Task(toolkit.RESULTS, "train", (), toolkit.run_steps(config, 0))]


def run_train(worker: TaskWorker, task: Task) -> None:
    """The 'train' experiment's one task: the recipe's run in the model_dir."""
    toolkit.trainer(worker).train(toolkit.recipe_run(worker.config))


def train(config: ExperimentConfig, strategy: Any = None,
          pipeline: Any = None) -> records.RunRecord:
    """Trains the recipe once, keeping rewind checkpoints W_k (its one task,
    ``tasks.inline``)."""
    results = EXPERIMENT.run(config, strategy, pipeline)
    assert isinstance(results, records.RunRecord)
    return results


EXPERIMENT = Experiment(experiments.get("train"), plan, {"train": record_kind(run_train)})
