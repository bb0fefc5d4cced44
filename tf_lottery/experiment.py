"""Experiments by name: thin orchestration over the training engine.

An experiment gets the resolved config, the strategy and the input pipeline
and returns the summary it wrote to ``model_dir/results.json``.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from tf_lottery.config import ExperimentConfig
from tf_lottery.data.pipeline import InMemoryPipeline
from tf_lottery.training.trainer import RunSpec, SgdNoise, Trainer

Experiment = Callable[[ExperimentConfig, tf.distribute.Strategy, InMemoryPipeline], dict]
_EXPERIMENTS: dict[str, Experiment] = {}


def register(name: str) -> Callable[[Experiment], Experiment]:
    def wrap(fn: Experiment) -> Experiment:
        _EXPERIMENTS[name] = fn
        return fn

    return wrap


def names() -> list[str]:
    return sorted(_EXPERIMENTS)


def get(name: str) -> Experiment:
    return _EXPERIMENTS[name]


def parent_run(config: ExperimentConfig, run_dir: str | None = None) -> RunSpec:
    """The recipe's own run: W_0 from init_seed, trained 0 -> T."""
    t = config.train
    return RunSpec(
        run_dir=run_dir or config.runtime.model_dir,
        end_step=t.train_steps,
        noise=SgdNoise(t.data_order_seed, t.augment_seed),
        rewind_steps=t.rewind_steps,
        evaluate_every=config.runtime.eval_every,
    )


@register("train")
def train(config: ExperimentConfig, strategy: tf.distribute.Strategy,
          pipeline: InMemoryPipeline) -> dict:
    """Trains the recipe once, keeping rewind checkpoints W_k."""
    trainer = Trainer(config, strategy, pipeline)
    return trainer.train(parent_run(config))
