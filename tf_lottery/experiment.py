"""The 'train' experiment, and the parent run every experiment starts from.

An experiment gets the resolved config, the strategy and the input pipeline
and returns the record it wrote to ``model_dir/results.json``
(``core.records``); experiments are named, with their config sections, in
``config/experiments.py``.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tf_lottery.config import ExperimentConfig
from tf_lottery.core import records
from tf_lottery.data.pipeline import Pipeline
from tf_lottery.tasks.graph import Task
from tf_lottery.training.trainer import FromSeed, RunSpec, SgdNoise, Trainer


def parent_run(config: ExperimentConfig, run_dir: str | None = None) -> RunSpec:
    """The recipe's own run: W_0 from init_seed, trained 0 -> T."""
    t = config.train
    return RunSpec(
        run_dir=run_dir or config.runtime.model_dir,
        end_step=t.train_steps,
        noise=SgdNoise(t.data_order_seed, t.augment_seed),
        start=FromSeed(t.init_seed),
        rewind_steps=t.rewind_steps,
        evaluate_every=config.runtime.eval_every,
    )


def run_train(worker: Any, task: Task) -> None:
    """The 'train' experiment's one task: the recipe's run in the model_dir."""
    trainer = worker.cached("trainer", lambda: Trainer(worker.config, worker.strategy,
                                                       worker.pipeline))
    trainer.train(parent_run(worker.config))


def train(config: ExperimentConfig, strategy: tf.distribute.Strategy,
          pipeline: Pipeline) -> records.RunRecord:
    """Trains the recipe once, keeping rewind checkpoints W_k (its one task,
    ``tasks.inline``)."""
    from tf_lottery.tasks import inline

    results = inline.run(config, strategy, pipeline)
    assert isinstance(results, records.RunRecord)
    return results
