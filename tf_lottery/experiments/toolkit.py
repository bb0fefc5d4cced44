"""The public toolkit experiments are built on: task ids, costs, seeds, runs, pairs, levels.

Every experiment module (``tf_lottery.experiments.<name>``) plans its graph
and runs its task kinds with these pieces; none of them is private to one
experiment, so a new experiment reuses them as they are:

- **task ids and costs** (pure, no TensorFlow): ``task_id`` turns a layout
  path under ``R`` (the planned model_dir) into a task id; ``run_steps``,
  ``pair_steps``, ``layerwise_steps`` estimate a task's cost in training
  steps (see below); ``children_tasks`` and ``layerwise_tasks`` plan the
  children of one starting point W_k, their pairs and their layer-wise
  barriers;
- **noise seeds**: ``replicate_init_seed``, ``replicate_noise`` (replicate
  r's seeds: the recipe's + r), ``child_noise`` (child i's SGD noise drawn
  from its parent's), ``recipe_noise`` (the recipe's own, which every IMP
  level and baseline sees);
- **rewind points and child runs**: ``recipe_run`` (the recipe's run 0 -> T),
  ``parent_run`` (replicate r's parent, keeping every W_k),
  ``rewind_checkpoint`` (its W_k), ``child_run`` (a child of a W_k);
- **what a task builds on its worker**: ``trainer``/``evaluator`` (dense)
  and ``masked_trainer``/``masked_evaluator`` (the wrapped model whose masks
  hold while it trains), built once per worker (``TaskWorker.cached``);
- **pair evaluation**: ``evaluate_pair`` (a path's curves and barriers,
  stored once), ``children_pair``, ``children_record``, ``rewind_record``,
  ``over_pairs``, ``loss_over_pairs``, ``loss_over_replicates``;
- **level records** (IMP): ``dense_dir``, ``level_dir``, ``branch_dir``,
  ``level_mask``, ``save_masks``, ``network_fields``, ``branch_record``,
  ``level_record``, ``baseline_record``, ``rewind_manager``.

Cost estimates (``cost_steps``), in training steps of the recipe's batch:

- a run from step a to T costs T − a steps, plus its evaluations: one at
  every multiple of ``--eval_every`` in (a, T) and one at T;
- an evaluation of a network visits the test set and the train subset
  (``--train_eval_examples``); an evaluated example costs a third of a
  trained one (a forward pass against forward + backward, about twice a
  forward), so E examples cost E / (3 · batch) steps;
- a pair evaluates ``--interpolation_points`` networks; with
  ``--bn_mode=recompute`` each point also runs ``--bn_recompute_batches``
  forward passes on training batches (a third of a step each);
- an aggregate (a rewind point's record, a level's sparse instability, the
  results) only reads records: cost 0.

The estimate orders work and sizes ETAs and cluster plans; measured step
rates (``tasks.progress``) calibrate it. It never changes a result.

Seeds. Replicate r's parent uses ``init_seed + r``, ``data_order_seed + r``
and ``augment_seed + r`` (replicate 0 is the recipe itself). Child i of a
parent gets SGD-noise seeds drawn by ``numpy.random.SeedSequence`` from the
parent's seed and i (``child_noise``), so children differ from each other
and from their parent, and child i gets the same noise at every k, which
isolates the effect of k.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import numpy as np
from absl import logging

from tf_lottery import chief, files
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records, store
from tf_lottery.core.layout import SPLITS
from tf_lottery.errors import FieldError
from tf_lottery.pruning import branches, wrappers
from tf_lottery.pruning import masks as masks_lib
from tf_lottery.pruning.rewind import RewindManager
from tf_lottery.stability import aligned_paths, barrier
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.summaries.instability import PathWriter
from tf_lottery.tasks.graph import Task
from tf_lottery.tasks.kinds import TaskWorker
from tf_lottery.training import checkpoints
from tf_lottery.training.trainer import (
    FromCheckpoint,
    FromSeed,
    RunSpec,
    SgdNoise,
    Then,
    Trainer,
)

EVAL_COST = 1.0 / 3.0  # an evaluated example, in trained examples (see above)

R = "<model_dir>"  # the model_dir of planned paths; ids are relative to it

_DATA_ORDER, _AUGMENT = 1, 2  # SeedSequence streams of a child's two seeds.


# -- task ids and costs: pure functions of the config -----------------------------------------

def task_id(path: str) -> str:
    """The id of the task whose output is ``path`` (a layout path under ``R``)."""
    return layout.task_id(path, R)


RESULTS = task_id(layout.results_file(R))  # every experiment's last task: results.json


def eval_steps(config: Any) -> float:
    """Step-equivalents of evaluating one network on test + train subset."""
    examples = config.data.spec().test_examples + config.data.train_eval_examples
    return examples * EVAL_COST / config.train.batch_size


def run_steps(config: Any, start: int) -> int:
    """Estimated cost of a run from ``start`` to T, its evaluations included."""
    end, every = config.train.train_steps, config.runtime.eval_every
    evaluations = 1 + (len(range(every * (start // every + 1), end, every)) if every else 0)
    return max(1, math.ceil(end - start + evaluations * eval_steps(config)))


def pair_steps(config: Any) -> int:
    """Estimated cost of evaluating one interpolation path."""
    ic = config.instability
    per_point = eval_steps(config)
    if ic.bn_mode == "recompute":
        per_point += ic.bn_recompute_batches * EVAL_COST
    return max(1, math.ceil(ic.interpolation_points * per_point))


def pairs(children: int) -> list[tuple[int, int]]:
    """Every unordered pair of children, (0, 1), (0, 2), ..., (n−2, n−1)."""
    return list(itertools.combinations(range(children), 2))


def children_tasks(config: Any, point_dir: str, start: tuple[str, ...], k: int,
                   child_kind: str, pair_kind: str, **args: Any) -> list[Task]:
    """Children of one starting point W_k and their pairs, under ``point_dir``."""
    n = config.instability.children
    children = [task_id(layout.child_dir(point_dir, i)) for i in range(n)]
    tasks = [Task(children[i], child_kind, start, run_steps(config, k),
                  tuple({**args, "k": k, "child": i}.items())) for i in range(n)]
    tasks += [Task(task_id(layout.pair_file(point_dir, i, j)), pair_kind,
                   (children[i], children[j]), pair_steps(config),
                   tuple({**args, "k": k, "pair": (i, j)}.items()))
              for i, j in pairs(n)]
    return tasks


def layerwise_steps(config: Any, groups: int = 4) -> int:
    """Estimated cost of one pair's layer-wise paths (``groups`` is a guess:
    the graph is planned without building the model)."""
    points = config.instability.layerwise_points
    return max(1, math.ceil((1 + groups * (points - 1)) * eval_steps(config)))


def layerwise_tasks(config: Any, point_dir: str, k: int, **args: Any) -> list[Task]:
    """The layer-wise barriers of every pair of children under ``point_dir``
    (``--layerwise_barriers``): each needs its two children."""
    n = config.instability.children
    return [Task(task_id(layout.layerwise_file(point_dir, i, j)), "layerwise_pair",
                 (task_id(layout.child_dir(point_dir, i)), task_id(layout.child_dir(point_dir, j))),
                 layerwise_steps(config), tuple({**args, "k": k, "pair": (i, j)}.items()))
            for i, j in pairs(n)]


# -- noise seeds ----------------------------------------------------------------------------

def replicate_init_seed(config: ExperimentConfig, replicate: int) -> int:
    return config.train.init_seed + replicate


def replicate_noise(config: ExperimentConfig, replicate: int) -> SgdNoise:
    t = config.train
    return SgdNoise(t.data_order_seed + replicate, t.augment_seed + replicate)


def _derive_seed(seed: int, stream: int, child: int) -> int:
    state = np.random.SeedSequence([seed % 2**63, stream, child]).generate_state(1)
    return int(state[0]) & 0x7FFFFFFF


def child_noise(parent: SgdNoise, child: int, sources: str = "both") -> SgdNoise:
    """SGD noise of child ``child``: new seeds derived from the parent's.

    ``sources`` (``--child_noise``) says which seed is the child's own:
    'both' (the paper: data order and augmentation), 'data_order',
    'augmentation', or 'none'. A seed that is not the child's own is child
    0's, so every child shares it and child 0 is the same in every mode
    (one knob changes one thing). With 'none' all children train with
    identical noise: their barrier is 0 when the ops are deterministic.
    """
    own_order = sources in ("both", "data_order")
    own_augment = sources in ("both", "augmentation")
    if not own_order and not own_augment and sources != "none":
        raise ValueError(f"unknown child noise sources {sources!r}")
    return SgdNoise(
        _derive_seed(parent.data_order_seed, _DATA_ORDER, child if own_order else 0),
        _derive_seed(parent.augment_seed, _AUGMENT, child if own_augment else 0))


def recipe_noise(config: ExperimentConfig) -> SgdNoise:
    """Every level and baseline sees the recipe's SGD noise, as in the lottery
    ticket experiments: only the mask (or init) differs."""
    t = config.train
    return SgdNoise(t.data_order_seed, t.augment_seed)


# -- rewind points and child runs ------------------------------------------------------------

def recipe_run(config: ExperimentConfig, run_dir: str | None = None) -> RunSpec:
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


def parent_run(config: ExperimentConfig, replicate: int) -> RunSpec:
    """Replicate ``replicate``'s parent: trained 0 -> T, keeping every W_k."""
    return RunSpec(
        run_dir=layout.parent_dir(config.runtime.model_dir, replicate),
        end_step=config.train.train_steps,
        noise=replicate_noise(config, replicate),
        start=FromSeed(replicate_init_seed(config, replicate)),
        rewind_steps=config.train.rewind_steps,
        evaluate_every=config.runtime.eval_every,
    )


def rewind_checkpoint(config: ExperimentConfig, replicate: int, k: int) -> str:
    """W_k of the replicate's parent, which must have kept it."""
    run_dir = layout.parent_dir(config.runtime.model_dir, replicate)
    if not checkpoints.has_rewind(run_dir, k):
        raise FieldError("train.rewind_steps", f"has k={[k]}, for which parent {run_dir} "
                         "has no rewind checkpoint; use a new {runtime.model_dir}")
    return checkpoints.rewind_prefix(run_dir, k)


def child_run(config: ExperimentConfig, start_from: str, parent_noise: SgdNoise,
              out_dir: str, child: int, then: Then | None = None) -> RunSpec:
    """Child ``child`` of the point ``start_from`` (a W_k checkpoint), trained to T;
    ``then`` runs once W_k is loaded (e.g. to apply a pruning mask)."""
    return RunSpec(
        run_dir=layout.child_dir(out_dir, child),
        end_step=config.train.train_steps,
        noise=child_noise(parent_noise, child, config.instability.child_noise),
        start=FromCheckpoint(
            start_from, then=then,
            reset_optimizer=config.instability.child_optimizer_state == "reset"),
        evaluate_every=config.runtime.eval_every,
    )


# -- what a task builds on its worker (once per worker) ---------------------------------------

def trainer(worker: TaskWorker) -> Trainer:
    """The worker's Trainer for parents and children: every run states its start."""
    return worker.cached("trainer", lambda: Trainer(worker.config, worker.strategy,
                                                    worker.pipeline))


def evaluator(worker: TaskWorker) -> PathEvaluator:
    """The worker's path evaluator over the dense Trainer's model."""
    return worker.cached("evaluator",
                         lambda: PathEvaluator.for_config(trainer(worker), worker.config))


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


# -- pair evaluation ---------------------------------------------------------------------------

def evaluate_pair(evaluator: PathEvaluator, checkpoint_a: str, checkpoint_b: str,
                  out_path: str, k: int | None, label: str, *, root: str,
                  children: tuple[int, int] | None = None,
                  replicates: tuple[int, int] | None = None,
                  child_noise: str | None = None) -> records.PairRecord:
    """E(α) curves and barriers of the path a -> b, stored at ``out_path``.

    A pair whose ``out_path`` is complete is returned as stored. Path curves
    go to TensorBoard in ``layout.pair_events_dir(out_path)``. The endpoints
    are the weights each run's results report: with --ema_decay their moving
    averages, otherwise the trained weights. ``children`` (of rewind step
    ``k``, trained with ``child_noise``) or ``replicates`` say whose path it
    is; the record's paths are relative to ``root`` (the model_dir). Error
    and loss barriers come from the same evaluation of the path.
    """
    done = store.read_complete(out_path, records.PairRecord, root, root)
    if done is not None:
        return done
    started = time.perf_counter()
    events_dir = layout.pair_events_dir(out_path)
    # Curves of an attempt that was killed: redrawn from scratch.
    files.remove_tree(events_dir)
    writer = PathWriter(events_dir, k)
    try:
        curves = evaluator.between(checkpoint_a, checkpoint_b, label=label, on_point=writer)
    finally:
        writer.close()
    aligned = None  # --align=none
    if evaluator.align != "none":
        aligned_writer = PathWriter(events_dir, k, aligned=True)
        try:
            aligned = aligned_paths.aligned_pair(evaluator, checkpoint_a, checkpoint_b,
                                                 label=label, on_point=aligned_writer)
        finally:
            aligned_writer.close()
    result = records.PairRecord(
        status=layout.COMPLETE,
        endpoints=[checkpoint_a, checkpoint_b],
        bn_mode=evaluator.bn_mode,
        alphas=curves["alphas"],
        error={split: curves[f"{split}_error"] for split in SPLITS},
        loss={split: curves[f"{split}_loss"] for split in SPLITS},
        barrier=dict(curves["barrier"]),
        wall_time_s=round(time.perf_counter() - started, 3),
        rewind_step=k,
        children=list(children) if children else None,
        replicates=list(replicates) if replicates else None,
        aligned=aligned,
        loss_barrier=dict(curves["loss_barrier"]),
        child_noise=child_noise,
    )
    store.write(out_path, result, root)
    logging.info("%s: test barrier %.4f, train barrier %.4f; test loss barrier %.4f, "
                 "train loss barrier %.4f (%.1f s)", label, result.barrier["test"],
                 result.barrier["train"], curves["loss_barrier"]["test"],
                 curves["loss_barrier"]["train"], result.wall_time_s)
    return result


def over_pairs(pair_records: list[records.PairRecord]) -> dict[str, records.Stat]:
    return {split: records.Stat.from_json(barrier.summarize(
        [p.barrier[split] for p in pair_records])) for split in SPLITS}


def loss_over_pairs(pair_records: list[records.PairRecord]
                    ) -> dict[str, records.Stat] | None:
    """The pairs' loss barriers, mean ± std as ``_over_pairs``; None unless
    every pair has one (a pair recorded before loss barriers has not)."""
    if not pair_records or any(p.loss_barrier is None for p in pair_records):
        return None
    return {split: records.Stat.from_json(barrier.summarize(
        [p.loss_barrier[split] for p in pair_records if p.loss_barrier]))
        for split in SPLITS}


def loss_over_replicates(replicates: list[records.ReplicateRecord]
                         ) -> dict[str, records.Aggregate] | None:
    """The loss barrier over replicates and their pairs, as the error one
    (``barrier.aggregate``); None unless every pair has one."""
    if not replicates or any(loss_over_pairs(r.pairs) is None for r in replicates):
        return None
    return {split: records.Aggregate.from_json(barrier.aggregate(
        [[p.loss_barrier[split] for p in rep.pairs if p.loss_barrier] for rep in replicates]))
        for split in SPLITS}


def pair_label(k: int, pair: tuple[int, int], prefix: str = "") -> str:
    """How a pair's progress lines name it: ``[prefix]k=<k> pair (i,j)``."""
    return f"{prefix}k={k} pair ({pair[0]},{pair[1]})"


def replicate_prefix(config: ExperimentConfig, replicate: int) -> str:
    return f"replicate {replicate} " if config.instability.replicates > 1 else ""


def run_record(run_dir: str) -> records.RunRecord:
    """The finished run in ``run_dir`` that a task depends on."""
    return store.read_done(layout.results_file(run_dir), records.RunRecord, run_dir)


def children_pair(config: ExperimentConfig, evaluator: PathEvaluator, out_dir: str, k: int,
                  pair: tuple[int, int], label: str) -> records.PairRecord:
    """The path between two finished children under ``out_dir`` (``evaluate_pair``)."""
    i, j = pair
    ends = [run_record(layout.child_dir(out_dir, c)).final_checkpoint for c in pair]
    return evaluate_pair(evaluator, ends[0], ends[1], layout.pair_file(out_dir, i, j), k,
                         label=label, root=config.runtime.model_dir, children=(i, j),
                         child_noise=config.instability.child_noise)


def children_record(config: ExperimentConfig, out_dir: str,
                    parent_noise: SgdNoise) -> records.ChildrenRecord:
    """The finished children of one starting point and their pairs' barriers
    (mean ± std over pairs), read back from their records under ``out_dir``."""
    model_dir = config.runtime.model_dir
    children = []
    for i in range(config.instability.children):
        run_dir = layout.child_dir(out_dir, i)
        run = run_record(run_dir)
        noise = child_noise(parent_noise, i, config.instability.child_noise)
        children.append(records.ChildRecord(
            child=i, run_dir=run_dir, final_checkpoint=run.final_checkpoint,
            metrics=run.metrics, data_order_seed=noise.data_order_seed,
            augment_seed=noise.augment_seed, child_noise=config.instability.child_noise))
    pair_results = [store.read_done(layout.pair_file(out_dir, i, j), records.PairRecord,
                                    model_dir, model_dir)
                    for i, j in pairs(len(children))]
    return records.ChildrenRecord(children=children, pairs=pair_results,
                                  barrier=over_pairs(pair_results),
                                  aligned_barrier=aligned_paths.over_pairs(pair_results),
                                  loss_barrier=loss_over_pairs(pair_results))


def rewind_record(config: ExperimentConfig, k: int,
                   replicates: list[records.ReplicateRecord]) -> records.RewindPointRecord:
    aggregate = {split: records.Aggregate.from_json(barrier.aggregate(
        [[p.barrier[split] for p in rep.pairs] for rep in replicates])) for split in SPLITS}
    return records.RewindPointRecord(
        status=layout.COMPLETE, rewind_step=k, replicates=replicates, barrier=aggregate,
        children_error={split: records.Stat.from_json(barrier.summarize(
            [c.metrics.error(split) for rep in replicates for c in rep.children]))
            for split in SPLITS},
        stable=barrier.is_stable(aggregate["test"].mean,
                                 config.instability.stability_threshold),
        aligned_barrier=aligned_paths.over_replicates(replicates),
        loss_barrier=loss_over_replicates(replicates))


# -- level records (IMP) ----------------------------------------------------------------------

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
    return branch_record(config, level, branches.IMP, run_record(run_dir))


def baseline_record(config: ExperimentConfig, level: int, name: str) -> records.BaselineRecord:
    run_dir = branch_dir(config, level, name)
    return branch_record(config, level, name, run_record(run_dir))
