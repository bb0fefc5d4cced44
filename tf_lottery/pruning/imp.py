"""Iterative magnitude pruning with rewinding (experiment 'imp').

Level 0 trains the dense network from W_0 to T and keeps W_k. Level L >= 1
prunes the previous level's trained weights W_T by magnitude to density
``(1 - p)**L`` (``masks.level_densities``), rewinds the survivors to W_k and
retrains from k to T. One-shot pruning is the same with one level.

Every level, including level 0, trains the *wrapped* model (Dense/Conv
kernels in TFMOT ``PruneLowMagnitude`` wrappers); level 0's masks are all
ones, so it trains bit for bit like the unwrapped network and its W_k
checkpoint has the wrapped layout that every later level restores.

Each network trained at a pruned level is a *branch* (``branches``: a mask
function and an init function, registered by name). The level's own run is
branch ``imp``; baselines (``--imp_baselines``, at ``--imp_baseline_levels``)
are the other registered branches, which never feed later levels:

- random_prune: the level's per-layer densities, random positions, rewound
  to W_k (``masks.random_like``);
- random_reinit: the level's mask, weights freshly initialized from another
  seed (``rewind.reinitialize``).

Sparse instability (``--instability``, last): two or more children start
from each analyzed level's masked W_k, keep the mask, train to T with their
own SGD noise, and the error barrier of their linear path is measured by the
instability experiment's own machinery (``stability.analysis``).

Layout under ``--model_dir``: ``core.layout`` (``layout.tree("imp")`` draws
it). ``results.json`` holds a record per level (``core.records.LevelRecord``,
status 'running' until everything is done); TensorBoard's summary runs
(``summaries.dashboards.write_level``) hold each branch's accuracy against
the level and against the parts per million pruned.

Runs are ``Trainer.train`` runs, so a finished level is never redone and a
killed one resumes from its last checkpoint; masks are written atomically
before their run starts and reloaded, never recomputed, on resume.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from tf_lottery import chief, experiment
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records, store
from tf_lottery.data.pipeline import Pipeline
from tf_lottery.pruning import branches, wrappers
from tf_lottery.pruning import masks as masks_lib
from tf_lottery.pruning.rewind import RewindManager
from tf_lottery.stability import analysis, barrier
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.summaries import dashboards, figures
from tf_lottery.training.trainer import RunSpec, SgdNoise, Trainer


def branch_dir(model_dir: str, level: int, name: str) -> str:
    """The level's own directory for branch ``imp``, a subdirectory per baseline."""
    return (layout.level_dir(model_dir, level) if name == branches.IMP
            else layout.baseline_dir(model_dir, level, name))


def make_trainer(config: ExperimentConfig, strategy: tf.distribute.Strategy,
                 pipeline: Pipeline) -> Trainer:
    """A Trainer over the wrapped model whose masks hold during training."""
    return Trainer(config, strategy, pipeline,
                   hooks=wrappers.masked_training(config.pruning.exclude))


class Imp:
    """Runs (or resumes) the levels and baselines an IMP config describes."""

    def __init__(self, config: ExperimentConfig, strategy: tf.distribute.Strategy,
                 pipeline: Pipeline):
        self.config = config
        self.cfg = config.pruning
        self.model_dir = config.runtime.model_dir
        self.trainer = make_trainer(config, strategy, pipeline)
        self.rule = masks_lib.PruningRule(self.cfg.scope, self.cfg.rates())
        self.rewind = RewindManager(layout.level_dir(self.model_dir, 0), self.cfg.rewind_step,
                                    self.cfg.rewind_optimizer)
        t = config.train
        # Every level and baseline sees the recipe's SGD noise, as in the
        # lottery ticket experiments: only the mask (or init) differs.
        self.noise = SgdNoise(t.data_order_seed, t.augment_seed)
        self.results_path = layout.results_file(self.model_dir)
        # Damaged: set aside; it is rebuilt from the levels' own results.
        previous = store.read_summary(self.results_path, records.ImpResults, self.model_dir,
                                      self.model_dir)
        # (level, branch) pairs already in TensorBoard: a resumed run does not
        # write them twice.
        self.summarized: set[tuple[int, str]] = set()
        for r in previous.levels if previous else []:
            self.summarized.add((r.level, branches.IMP))
            self.summarized.update((r.level, name) for name in r.baselines)
            if r.instability is not None:
                self.summarized.add((r.level, "instability"))
        dashboards.write_imp_metadata(config)
        self.records: dict[int, records.LevelRecord] = {}

    # -- levels ---------------------------------------------------------------

    def run(self) -> records.ImpResults:
        """IMP levels 0..N first (the main result), then the baselines."""
        masks = self._train_dense()
        started = time.perf_counter()
        for level in range(1, self.cfg.levels + 1):
            masks = self._level_masks(level, masks)
            record = self._train_branch(level, masks, branches.get(branches.IMP))
            self._finish(level, branches.IMP, record)
            logging.info(
                "IMP level %d/%d: density %.4f, test accuracy %.4f (%.1f s) | ETA of "
                "the levels %.0f s", level, self.cfg.levels, record.density,
                record.test_accuracy, record.wall_time_s,
                (time.perf_counter() - started) / level * (self.cfg.levels - level))
        for level in self.cfg.baseline_levels or range(1, self.cfg.levels + 1):
            level_masks = masks_lib.load(
                layout.mask_file(layout.level_dir(self.model_dir, level)))
            for name in self.cfg.baselines:
                baseline = self._train_branch(level, level_masks, branches.get(name))
                self._finish(level, name, baseline)
                logging.info("IMP level %d %s: test accuracy %.4f (%.1f s)", level, name,
                             baseline.test_accuracy, baseline.wall_time_s)
        if self.cfg.instability:
            self._instability()
        return self._write(layout.COMPLETE)

    def _train_dense(self) -> dict[str, np.ndarray]:
        t = self.config.train
        run_dir = layout.level_dir(self.model_dir, 0)
        ones = masks_lib.ones_like(wrappers.weight_values(self.trainer.model))
        self._save_masks(run_dir, ones)
        spec = dataclasses.replace(
            experiment.parent_run(self.config, run_dir),
            rewind_steps=tuple(sorted({*t.rewind_steps, self.cfg.rewind_step})))
        results = self.trainer.train(spec)
        self._finish(0, branches.IMP,
                     records.LevelRecord(**self._network(0, ones, results, run_dir)))
        return ones

    def _level_masks(self, level: int, previous: dict[str, np.ndarray]
                     ) -> dict[str, np.ndarray]:
        """Level ``level``'s mask: saved, or pruned from level-1's W_T."""
        run_dir = layout.level_dir(self.model_dir, level)
        path = layout.mask_file(run_dir)
        if chief.exists(path):
            return masks_lib.load(path)
        before_dir = layout.level_dir(self.model_dir, level - 1)
        before = store.read(layout.results_file(before_dir), records.RunRecord, before_dir)
        if not layout.is_complete(before):
            raise RuntimeError(f"level {level - 1} has no {layout.RESULTS_FILE}: it is "
                               "pruned only once it has finished")
        assert before is not None
        self.trainer.restore_from(before.final_checkpoint, reset_optimizer=True)
        held = wrappers.get_masks(self.trainer.model)
        if any(not np.array_equal(held[n], previous[n]) for n in previous):
            raise RuntimeError(f"level {level - 1}'s final checkpoint does not hold "
                               f"the mask saved in its {layout.MASK_FILE}")
        weights = wrappers.weight_values(self.trainer.model)
        targets = masks_lib.level_densities(
            list(previous), self.cfg.prune_fraction, level, self.rule)
        new = masks_lib.prune(weights, previous, targets, self.rule)
        self._save_masks(run_dir, new)
        return new

    def _train_branch(self, level: int, level_masks: dict[str, np.ndarray],
                      branch: branches.Branch) -> Any:
        """Trains ``branch`` at ``level`` from W_k: its mask (drawn once and
        saved, if its own), its init, the level's mask otherwise."""
        run_dir = branch_dir(self.model_dir, level, branch.name)
        seed = branch.seed(self.cfg.baseline_seed, level)
        masks, init = level_masks, None
        if branch.mask is not None:
            path = layout.mask_file(run_dir)
            if chief.exists(path):
                masks = masks_lib.load(path)
            else:
                masks = branch.mask(level_masks, seed)
                self._save_masks(run_dir, masks)
        if branch.init is not None:
            init = branch.init(seed)
        results = self.trainer.train(self._spec(run_dir, masks, init))
        network = self._network(level, masks, results, run_dir)
        if branch.name == branches.IMP:
            return records.LevelRecord(**network)
        return records.BaselineRecord(**network, seed=seed if branch.draws else None)

    def _instability(self) -> None:
        """Sparse instability: children of each level's masked W_k, their barrier.

        The children start from level 0's W_k with the level's mask (the
        level's own starting point) and keep it, so every point of their path
        has the level's zeros; the analysis itself is the instability
        experiment's (``stability.analysis``), with its --children,
        --interpolation_points, --bn_mode and --child_optimizer_state.
        """
        evaluator = PathEvaluator.for_config(self.trainer, self.config)
        for level in self.cfg.instability_levels or range(self.cfg.levels + 1):
            record = self._sparse_instability(evaluator, level)
            self._finish(level, "instability", record)
            logging.info("IMP level %d: test barrier %.4f at k=%d (%s)", level,
                         record.barrier["test"].mean, record.rewind_step,
                         "stable" if record.stable else "unstable")

    def _sparse_instability(self, evaluator: PathEvaluator,
                            level: int) -> records.SparseInstabilityRecord:
        """The level's instability.json: found complete, or computed and written."""
        marker = layout.sparse_instability_file(self.model_dir, level)
        found = store.read_complete(marker, records.SparseInstabilityRecord, self.model_dir,
                                    self.model_dir)
        if found is not None:
            return found
        k = self.cfg.rewind_step
        point = analysis.analyze_rewind_point(
            self.trainer, evaluator, self.config, k=k,
            start_from=self.rewind.checkpoint, parent_noise=self.noise,
            out_dir=layout.sparse_instability_dir(self.model_dir, level),
            then=self.rewind.after_restore(
                masks_lib.load(layout.mask_file(layout.level_dir(self.model_dir, level)))),
            label=f"IMP level {level} ")
        found = records.SparseInstabilityRecord(
            status=layout.COMPLETE, rewind_step=k, children=point.children,
            pairs=point.pairs, barrier=point.barrier, aligned_barrier=point.aligned_barrier,
            stable=barrier.is_stable(point.barrier["test"].mean,
                                     self.config.instability.stability_threshold))
        store.write(marker, found, self.model_dir)
        return found

    def _spec(self, run_dir: str, masks: dict[str, np.ndarray],
              init: Callable[[Trainer], None] | None = None) -> RunSpec:
        return self.rewind.run_spec(run_dir, self.config.train.train_steps, self.noise,
                                    masks, init, self.config.runtime.eval_every)

    # -- bookkeeping ----------------------------------------------------------

    @staticmethod
    def _save_masks(run_dir: str, masks: dict[str, np.ndarray]) -> None:
        chief.makedirs(run_dir)
        path = layout.mask_file(run_dir)
        if not chief.exists(path):
            masks_lib.save(path, masks)

    @staticmethod
    def _network(level: int, masks: dict[str, np.ndarray], results: records.RunRecord,
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

    def _finish(self, level: int, branch: str, record: Any) -> None:
        """Files a finished run under its level, in TensorBoard and results.json."""
        if branch == branches.IMP:
            self.records[level] = record
        elif branch == "instability":
            self.records[level] = dataclasses.replace(self.records[level],
                                                      instability=record)
        else:
            held = self.records[level]
            self.records[level] = dataclasses.replace(
                held, baselines={**held.baselines, branch: record})
        new = (level, branch) not in self.summarized
        if new:
            dashboards.write_level(self.config, self.records[level], branch)
            self.summarized.add((level, branch))
        self._write(layout.RUNNING)
        if new:
            figures.refresh_figures(self.model_dir)

    def _write(self, status: str) -> records.ImpResults:
        c = self.cfg
        summary = records.ImpResults(
            status=status, rewind_step=c.rewind_step, prune_fraction=c.prune_fraction,
            pruning_scope=c.scope, levels=[self.records[k] for k in sorted(self.records)])
        store.write(self.results_path, summary, self.model_dir)
        return summary


def imp(config: ExperimentConfig, strategy: tf.distribute.Strategy,
        pipeline: Pipeline) -> records.ImpResults:
    """IMP with rewinding, its baselines and (--instability) sparse instability."""
    return Imp(config, strategy, pipeline).run()
