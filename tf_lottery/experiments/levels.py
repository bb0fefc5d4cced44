"""Level records, the toolkit's IMP part: where levels and branches live, their masks.

``dense_dir``/``level_dir``/``branch_dir`` locate a level's (or a
baseline's) run, ``level_mask``/``save_masks`` its mask, ``branch_record``,
``level_record`` and ``baseline_record`` its record (``network_fields``:
density, accuracies, wall time); ``rewind_manager`` rewinds survivors to
W_k; ``masked_trainer``/``masked_evaluator`` are the worker's Trainer and
path evaluator over the wrapped model whose masks hold while it trains.
IMP, its rewind-step sweep, the level-to-level paths and the sparse onset
search share them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tf_lottery import chief
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records
from tf_lottery.experiments import toolkit
from tf_lottery.pruning import branches, wrappers
from tf_lottery.pruning import masks as masks_lib
from tf_lottery.pruning.rewind import RewindManager
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.tasks.kinds import TaskWorker
from tf_lottery.training.trainer import Trainer


def make_masked_trainer(config: ExperimentConfig, strategy: Any, pipeline: Any) -> Trainer:
    """A Trainer over the wrapped model whose masks hold during training."""
    return Trainer(config, strategy, pipeline,
                   hooks=wrappers.masked_training(config.pruning.exclude))

def masked_trainer(worker: TaskWorker) -> Trainer:
    """The worker's masked Trainer: every run states its start and mask."""
    return worker.cached("masked_trainer", lambda: make_masked_trainer(
        worker.config, worker.strategy, worker.pipeline))

def masked_evaluator(worker: TaskWorker) -> PathEvaluator:
    """The worker's path evaluator over the masked Trainer's model."""
    return worker.cached("masked_evaluator",
                         lambda: PathEvaluator.for_config(masked_trainer(worker), worker.config))

def dense_dir(config: ExperimentConfig) -> str:
    """Level 0's run: the model_dir's own ``level_00``, or the dense run a
    rewind-step sweep shares among its chains (``pruning.dense_dir``)."""
    return config.pruning.dense_dir or layout.level_dir(config.runtime.model_dir, 0)

def level_dir(config: ExperimentConfig, level: int) -> str:
    """Level ``level``'s run directory (level 0: ``dense_dir``)."""
    return dense_dir(config) if level == 0 else layout.level_dir(config.runtime.model_dir,
                                                                 level)

def branch_dir(config: ExperimentConfig, level: int, name: str) -> str:
    """The level's own directory for branch ``imp``, a subdirectory per baseline."""
    return (level_dir(config, level) if name == branches.IMP
            else layout.baseline_dir(config.runtime.model_dir, level, name))

def rewind_manager(config: ExperimentConfig) -> RewindManager:
    cfg = config.pruning
    return RewindManager(dense_dir(config), cfg.rewind_step,
                         cfg.rewind_optimizer)

def level_mask(config: ExperimentConfig, level: int) -> dict[str, np.ndarray]:
    return masks_lib.load(layout.mask_file(level_dir(config, level)))

def save_masks(run_dir: str, masks: dict[str, np.ndarray]) -> None:
    """Written once, before the run that uses them starts; reloaded on resume."""
    chief.makedirs(run_dir)
    path = layout.mask_file(run_dir)
    if not chief.exists(path):
        masks_lib.save(path, masks)

def network_fields(level: int, masks: dict[str, np.ndarray], results: records.RunRecord,
                   run_dir: str) -> dict[str, Any]:
    """The fields of a level's or baseline's ``records.NetworkRecord``."""
    m = results.metrics
    return {
        "level": level,
        "density": masks_lib.density(masks),
        "remaining_weights": masks_lib.count(masks),
        "prunable_weights": masks_lib.size(masks),
        "layer_density": masks_lib.layer_densities(masks),
        "test_accuracy": m.test_accuracy,
        "test_error": m.test_error,
        "train_accuracy": m.train_accuracy,
        "train_error": m.train_error,
        "wall_time_s": results.wall_time_s_last_session,
        "run_dir": run_dir,
    }

def branch_record(config: ExperimentConfig, level: int, name: str,
                  results: records.RunRecord) -> Any:
    """A finished branch's record: a ``LevelRecord`` for 'imp', else a
    ``BaselineRecord``; its mask is the branch's own if it drew one."""
    run_dir = branch_dir(config, level, name)
    branch = branches.get(name)
    masks = (masks_lib.load(layout.mask_file(run_dir)) if branch.mask is not None
             else level_mask(config, level))
    network = network_fields(level, masks, results, run_dir)
    if name == branches.IMP:
        return records.LevelRecord(**network)
    seed = branch.seed(config.pruning.baseline_seed, level)
    return records.BaselineRecord(**network, seed=seed if branch.draws else None)

def level_record(config: ExperimentConfig, level: int) -> records.LevelRecord:
    run_dir = level_dir(config, level)
    return branch_record(config, level, branches.IMP, toolkit.run_record(run_dir))

def baseline_record(config: ExperimentConfig, level: int, name: str) -> records.BaselineRecord:
    run_dir = branch_dir(config, level, name)
    return branch_record(config, level, name, toolkit.run_record(run_dir))
