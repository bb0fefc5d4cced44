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

Layout under ``--model_dir``::

  results.json                 per-level summary (status 'running' until done)
  events.out.tfevents.*        imp/* against the level, imp_vs_density/* against
                               density in parts per million
  level_00/                    dense run: rewind/step_k, final/, results.json
  level_LL/mask.npz            the level's mask (uint8, one array per kernel)
  level_LL/                    the level's run (its own rewind/step_k holds the
                               masked W_k)
  level_LL/<baseline>/         baseline runs; one that draws its own mask
                               (random_prune) keeps it in its mask.npz
  level_LL/instability/        children and pair_i_j.json path curves
  level_LL/instability.json    the level's barriers (written when complete)

Runs are ``Trainer.train`` runs, so a finished level is never redone and a
killed one resumes from its last checkpoint; masks are written atomically
before their run starts and reloaded, never recomputed, on resume.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from tf_lottery import experiment, files
from tf_lottery.config import ExperimentConfig
from tf_lottery.data.pipeline import Pipeline
from tf_lottery.pruning import branches, wrappers
from tf_lottery.pruning import masks as masks_lib
from tf_lottery.pruning.rewind import RewindManager
from tf_lottery.stability import analysis, barrier
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.summaries import dashboards
from tf_lottery.training.trainer import RunSpec, SgdNoise, Trainer

RESULTS_FILE = "results.json"
RESULTS_SCHEMA = 1
MASK_FILE = "mask.npz"
INSTABILITY_DIR = "instability"
INSTABILITY_FILE = "instability.json"


def level_dir(model_dir: str, level: int) -> str:
    return os.path.join(model_dir, f"level_{level:02d}")


def branch_dir(model_dir: str, level: int, name: str) -> str:
    """The level's own directory for branch ``imp``, a subdirectory per baseline."""
    run_dir = level_dir(model_dir, level)
    return run_dir if name == branches.IMP else os.path.join(run_dir, name)


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
        self.rewind = RewindManager(level_dir(self.model_dir, 0), self.cfg.rewind_step,
                                    self.cfg.rewind_optimizer)
        t = config.train
        # Every level and baseline sees the recipe's SGD noise, as in the
        # lottery ticket experiments: only the mask (or init) differs.
        self.noise = SgdNoise(t.data_order_seed, t.augment_seed)
        self.results_path = os.path.join(self.model_dir, RESULTS_FILE)
        # Damaged: set aside; it is rebuilt from the levels' own results.
        previous = files.read_summary(self.results_path) or {}
        # (level, branch) pairs already in TensorBoard: a resumed run does not
        # write them twice.
        self.summarized = set()
        for r in previous.get("levels", []):
            self.summarized.add((r["level"], branches.IMP))
            self.summarized.update((r["level"], name) for name in r["baselines"])
            if "instability" in r:
                self.summarized.add((r["level"], "instability"))
        self.writer = tf.summary.create_file_writer(self.model_dir)
        dashboards.write_experiment(self.writer, config, dashboards.imp_layout(config))
        self.records: dict[int, dict] = {}

    # -- levels ---------------------------------------------------------------

    def run(self) -> dict:
        """IMP levels 0..N first (the main result), then the baselines."""
        masks = self._train_dense()
        started = time.perf_counter()
        for level in range(1, self.cfg.levels + 1):
            masks = self._level_masks(level, masks)
            record = self._train_branch(level, masks, branches.get(branches.IMP))
            self._finish(level, branches.IMP, record)
            logging.info(
                "IMP level %d/%d: density %.4f, test accuracy %.4f (%.1f s) | ETA of "
                "the levels %.0f s", level, self.cfg.levels, record["density"],
                record["test_accuracy"], record["wall_time_s"],
                (time.perf_counter() - started) / level * (self.cfg.levels - level))
        for level in self.cfg.baseline_levels or range(1, self.cfg.levels + 1):
            level_masks = masks_lib.load(
                os.path.join(level_dir(self.model_dir, level), MASK_FILE))
            for name in self.cfg.baselines:
                record = self._train_branch(level, level_masks, branches.get(name))
                self._finish(level, name, record)
                logging.info("IMP level %d %s: test accuracy %.4f (%.1f s)", level, name,
                             record["test_accuracy"], record["wall_time_s"])
        if self.cfg.instability:
            self._instability()
        return self._write("complete")

    def _train_dense(self) -> dict[str, np.ndarray]:
        t = self.config.train
        run_dir = level_dir(self.model_dir, 0)
        ones = masks_lib.ones_like(wrappers.weight_values(self.trainer.model))
        self._save_masks(run_dir, ones)
        spec = dataclasses.replace(
            experiment.parent_run(self.config, run_dir),
            rewind_steps=tuple(sorted({*t.rewind_steps, self.cfg.rewind_step})))
        results = self.trainer.train(spec)
        self._finish(0, branches.IMP, self._record(0, ones, results, run_dir))
        return ones

    def _level_masks(self, level: int, previous: dict[str, np.ndarray]
                     ) -> dict[str, np.ndarray]:
        """Level ``level``'s mask: saved, or pruned from level-1's W_T."""
        run_dir = level_dir(self.model_dir, level)
        path = os.path.join(run_dir, MASK_FILE)
        if tf.io.gfile.exists(path):
            return masks_lib.load(path)
        before = files.read_json(
            os.path.join(level_dir(self.model_dir, level - 1), RESULTS_FILE))
        if not before:
            raise RuntimeError(f"level {level - 1} has no {RESULTS_FILE}: it is pruned "
                               "only once it has finished")
        self.trainer.restore_from(before["final_checkpoint"], reset_optimizer=True)
        held = wrappers.get_masks(self.trainer.model)
        if any(not np.array_equal(held[n], previous[n]) for n in previous):
            raise RuntimeError(f"level {level - 1}'s final checkpoint does not hold "
                               f"the mask saved in its {MASK_FILE}")
        weights = wrappers.weight_values(self.trainer.model)
        targets = masks_lib.level_densities(
            list(previous), self.cfg.prune_fraction, level, self.rule)
        new = masks_lib.prune(weights, previous, targets, self.rule)
        self._save_masks(run_dir, new)
        return new

    def _train_branch(self, level: int, level_masks: dict[str, np.ndarray],
                      branch: branches.Branch) -> dict:
        """Trains ``branch`` at ``level`` from W_k: its mask (drawn once and
        saved, if its own), its init, the level's mask otherwise."""
        run_dir = branch_dir(self.model_dir, level, branch.name)
        seed = branch.seed(self.cfg.baseline_seed, level)
        masks, init = level_masks, None
        if branch.mask is not None:
            path = os.path.join(run_dir, MASK_FILE)
            if tf.io.gfile.exists(path):
                masks = masks_lib.load(path)
            else:
                masks = branch.mask(level_masks, seed)
                self._save_masks(run_dir, masks)
        if branch.init is not None:
            init = branch.init(seed)
        results = self.trainer.train(self._spec(run_dir, masks, init))
        record = self._record(level, masks, results, run_dir)
        return {**record, "seed": seed} if branch.draws else record

    def _instability(self) -> None:
        """Sparse instability: children of each level's masked W_k, their barrier.

        The children start from level 0's W_k with the level's mask (the
        level's own starting point) and keep it, so every point of their path
        has the level's zeros; the analysis itself is the instability
        experiment's (``stability.analysis``), with its --children,
        --interpolation_points, --bn_mode and --child_optimizer_state.
        """
        evaluator = PathEvaluator.for_config(self.trainer, self.config)
        k = self.cfg.rewind_step
        threshold = self.config.instability.stability_threshold
        for level in self.cfg.instability_levels or range(self.cfg.levels + 1):
            run_dir = level_dir(self.model_dir, level)
            marker = os.path.join(run_dir, INSTABILITY_FILE)
            found = files.read_summary(marker)
            if not (found and found.get("status") == "complete"):
                out_dir = os.path.join(run_dir, INSTABILITY_DIR)
                point = analysis.analyze_rewind_point(
                    self.trainer, evaluator, self.config, k=k,
                    start_from=self.rewind.checkpoint, parent_noise=self.noise,
                    out_dir=out_dir,
                    then=self.rewind.after_restore(
                        masks_lib.load(os.path.join(run_dir, MASK_FILE))),
                    label=f"IMP level {level} ")
                found = {
                    "status": "complete",
                    "rewind_step": k,
                    "barrier": point["barrier"],
                    "stable": barrier.is_stable(point["barrier"]["test"]["mean"], threshold),
                    "children": [{"child": c["child"], "run_dir": c["run_dir"],
                                  "test_error": c["metrics"]["test_error"],
                                  "train_error": c["metrics"]["train_error"]}
                                 for c in point["children"]],
                    "pairs": [os.path.join(out_dir, f"pair_{i}_{j}.json")
                              for i, j in analysis.pairs(len(point["children"]))],
                }
                files.write_json_atomic(marker, found)
            record = {key: v for key, v in found.items() if key != "status"}
            self._finish(level, "instability", record)
            logging.info("IMP level %d: test barrier %.4f at k=%d (%s)", level,
                         record["barrier"]["test"]["mean"], k,
                         "stable" if record["stable"] else "unstable")

    def _spec(self, run_dir: str, masks: dict[str, np.ndarray],
              init: Callable[[Trainer], None] | None = None) -> RunSpec:
        return self.rewind.run_spec(run_dir, self.config.train.train_steps, self.noise,
                                    masks, init, self.config.runtime.eval_every)

    # -- bookkeeping ----------------------------------------------------------

    @staticmethod
    def _save_masks(run_dir: str, masks: dict[str, np.ndarray]) -> None:
        tf.io.gfile.makedirs(run_dir)
        path = os.path.join(run_dir, MASK_FILE)
        if not tf.io.gfile.exists(path):
            masks_lib.save(path, masks)

    @staticmethod
    def _record(level: int, masks: dict[str, np.ndarray], results: dict,
                run_dir: str) -> dict:
        m = results["metrics"]
        return {
            "level": level,
            "density": masks_lib.density(masks),
            "remaining_weights": masks_lib.count(masks),
            "prunable_weights": masks_lib.size(masks),
            "layer_density": masks_lib.layer_densities(masks),
            "test_accuracy": m["test_accuracy"],
            "test_error": m["test_error"],
            "train_accuracy": m["train_accuracy"],
            "train_error": m["train_error"],
            "wall_time_s": results.get("wall_time_s_last_session"),
            "run_dir": run_dir,
        }

    def _finish(self, level: int, branch: str, record: dict) -> None:
        """Files a finished run under its level, in TensorBoard and results.json."""
        if branch == branches.IMP:
            self.records[level] = {**record, "baselines": {}}
        elif branch == "instability":
            self.records[level]["instability"] = record
        else:
            self.records[level]["baselines"][branch] = record
        if (level, branch) not in self.summarized:
            self._summarize(level, branch, record)
            self.summarized.add((level, branch))
        self._write("running")

    def _summarize(self, level: int, branch: str, record: dict) -> None:
        ppm = int(round(1e6 * self.records[level]["density"]))
        if branch == "instability":
            scalars = {f"{split}_barrier": record["barrier"][split]["mean"]
                       for split in ("test", "train")}
        else:
            prefix = "" if branch == branches.IMP else f"{branch}/"
            scalars = {f"{prefix}{key}": record[key]
                       for key in ("test_accuracy", "train_accuracy")}
        with self.writer.as_default():
            if branch == branches.IMP:
                tf.summary.scalar("imp/density", record["density"], step=level)
                for name, value in record["layer_density"].items():
                    tf.summary.scalar(f"imp/layer_density/{name}", value, step=level)
            for tag, value in scalars.items():
                tf.summary.scalar(f"imp/{tag}", value, step=level)
                tf.summary.scalar(f"imp_vs_density/{tag}", value, step=ppm)
        self.writer.flush()
        dashboards.write_level_session(self.config, self.records[level], branch)

    def _write(self, status: str) -> dict:
        c = self.cfg
        summary = {
            "schema": RESULTS_SCHEMA,
            "status": status,
            "experiment": "imp",
            "rewind_step": c.rewind_step,
            "prune_fraction": c.prune_fraction,
            "pruning_scope": c.scope,
            "levels": [self.records[k] for k in sorted(self.records)],
        }
        files.write_json_atomic(self.results_path, summary)
        return summary


def imp(config: ExperimentConfig, strategy: tf.distribute.Strategy,
        pipeline: Pipeline) -> dict:
    """IMP with rewinding, its baselines and (--instability) sparse instability."""
    return Imp(config, strategy, pipeline).run()
