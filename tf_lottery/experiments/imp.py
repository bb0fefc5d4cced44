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
instability experiment's own machinery (``experiments.instability``); with
``--layerwise_barriers`` also each pair's layer-wise barriers
(``experiments.instruments``), summarized in the level's ``instability.json``.
Every baseline run at an analyzed level is analyzed the same way, its
children starting from its own start (its mask and init on W_k), so the
paper's comparison (IMP subnetworks stable, random ones not) is one run.

Layout under ``--model_dir``: ``core.layout`` (``layout.tree("imp")`` draws
it). ``results.json`` holds a record per level (``core.records.LevelRecord``,
status 'running' until everything is done); TensorBoard's summary runs
(``summaries.dashboards.write_level``) hold each branch's accuracy against
the level and against the parts per million pruned.

Runs are ``Trainer.train`` runs, so a finished level is never redone and a
killed one resumes from its last checkpoint; masks are written atomically
before their run starts and reloaded, never recomputed, on resume.

Each network is a task (``plan`` plans them; the
``run_<kind>`` functions below run them): level 0 (dense), each pruned
level, each baseline, each sparse-instability child and pair and the
level's instability record, then the results, assembled from the levels'
own records (``assemble``). While tasks remain, an executor holding the
model_dir's lease rebuilds a 'running' results.json after each task
(``refresh_results``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from absl import logging

from tf_lottery import chief
from tf_lottery.config import ExperimentConfig, experiments
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import curve_pairs, evaluation, instruments, levels, toolkit
from tf_lottery.experiments.base import Experiment, Networks, record_kind, run_kind
from tf_lottery.experiments.toolkit import RESULTS, R, task_id
from tf_lottery.pruning import branches, wrappers
from tf_lottery.pruning import masks as masks_lib
from tf_lottery.reporting import tensorboard_figures
from tf_lottery.stability import barrier
from tf_lottery.summaries import dashboards
from tf_lottery.tasks.graph import Task
from tf_lottery.tasks.kinds import TaskWorker
from tf_lottery.training import checkpoints

# A Trainer over the wrapped model whose masks hold during training.
make_trainer = levels.make_masked_trainer


# -- the graph ---------------------------------------------------------------------------------

def level_pairs(levels: int, gaps: Any) -> list[tuple[int, int]]:
    """(L, L + j) for every gap j of --imp_level_barriers and every L with
    both levels in 0..levels, ordered by the later level (each is ready as
    soon as it can be)."""
    return sorted(((a, a + j) for j in gaps for a in range(levels + 1 - j)),
                  key=lambda p: (p[1], p[0]))


def imp_instability_levels(config: Any) -> list[int]:
    c = config.pruning
    return (list(c.instability_levels or range(c.levels + 1)) if c.instability else [])


def imp_baseline_levels(config: Any) -> list[int]:
    c = config.pruning
    return list(c.baseline_levels or range(1, c.levels + 1)) if c.baselines else []


def plan(config: ExperimentConfig) -> list[Task]:
    """Levels 0..N (each prunes the one before), then the baselines, then the
    sparse instability of each analysed level and of its baselines (with
    --layerwise_barriers each pair's layer-wise barriers, which the
    network's record summarizes); the results last."""
    c = config.pruning
    level = [task_id(layout.level_dir(R, n)) for n in range(c.levels + 1)]
    tasks = [Task(level[0], "dense", (), toolkit.run_steps(config, 0), (("level", 0),))]
    tasks += [Task(level[n], "level", (level[n - 1],), toolkit.run_steps(config, c.rewind_step),
                   (("level", n),)) for n in range(1, c.levels + 1)]
    for a, b in level_pairs(c.levels, c.level_barriers):
        tasks.append(Task(task_id(layout.level_path_file(R, a, b)), "level_path",
                          (level[a], level[b]), toolkit.pair_steps(config), (("levels", (a, b)),)))
    for n in imp_baseline_levels(config):
        tasks += [Task(task_id(layout.baseline_dir(R, n, name)), "baseline",
                       (level[n], level[0]), toolkit.run_steps(config, c.rewind_step),
                       (("level", n), ("branch", name))) for name in c.baselines]
    baseline_levels = set(imp_baseline_levels(config))
    for n in imp_instability_levels(config):
        tasks += sparse_instability_tasks(config, n, level[n], level[0])
        for name in c.baselines if n in baseline_levels else ():
            tasks += sparse_instability_tasks(
                config, n, task_id(layout.baseline_dir(R, n, name)), level[0], name)
    tasks.append(Task(RESULTS, "imp_results", tuple(t.id for t in tasks), 0))
    return tasks


def sparse_instability_tasks(config: Any, n: int, network: str, dense: str,
                             baseline: str | None = None) -> list[Task]:
    """Sparse instability of level ``n``'s subnetwork (``baseline`` None) or
    of one of its baselines: children from the network's own start (its
    mask, and init, on level 0's W_k), their pairs, then its record. A
    baseline's tasks carry its name (arg ``branch``); the network's task
    (``network``) provides its mask, level 0's (``dense``) W_k."""
    k = config.pruning.rewind_step
    point_dir = layout.sparse_instability_dir(R, n, baseline)
    args: dict[str, Any] = {"level": n, **({"branch": baseline} if baseline else {})}
    start = (network,) if network == dense else (network, dense)
    pieces = toolkit.children_tasks(config, point_dir, start, k, "sparse_child", "sparse_pair",
                                    **args)
    if config.instability.layerwise_barriers:
        pieces += toolkit.layerwise_tasks(config, point_dir, k, **args)
    if curve_pairs.enabled(config):
        pieces += toolkit.curve_tasks(config, point_dir, k, **args)
    return [*pieces, Task(task_id(layout.sparse_instability_file(R, n, baseline)),
                          "sparse_instability", (network, *(t.id for t in pieces)), 0,
                          tuple(args.items()))]


# -- task kinds -------------------------------------------------------------------------------

def _branch_start(config: ExperimentConfig, level: int, level_masks: dict[str, np.ndarray],
                  branch: branches.Branch) -> tuple[dict[str, np.ndarray], Any]:
    """The mask and init ``branch`` starts from at ``level``: its own mask
    (drawn once and saved, reloaded after), its init, else the level's mask
    and W_k. Its run and its sparse-instability children share them."""
    run_dir = levels.branch_dir(config, level, branch.name)
    seed = branch.seed(config.pruning.baseline_seed, level)
    masks, init = level_masks, None
    if branch.mask is not None:
        path = layout.mask_file(run_dir)
        if chief.exists(path):
            masks = masks_lib.load(path)
        else:
            masks = branch.mask(level_masks, seed)
            levels.save_masks(run_dir, masks)
    if branch.init is not None:
        init = branch.init(seed)
    return masks, init


def _train_branch(worker: TaskWorker, level: int, level_masks: dict[str, np.ndarray],
                  branch: branches.Branch) -> Any:
    """Trains ``branch`` at ``level`` from W_k with its mask and init."""
    config = worker.config
    run_dir = levels.branch_dir(config, level, branch.name)
    masks, init = _branch_start(config, level, level_masks, branch)
    spec = levels.rewind_manager(config).run_spec(
        run_dir, config.train.train_steps, toolkit.recipe_noise(config), masks, init,
        config.runtime.eval_every)
    return levels.branch_record(config, level, branch.name,
                                 levels.masked_trainer(worker).train(spec))


def _summarize(config: ExperimentConfig, level: records.LevelRecord, branch: str,
               record: Any, instability: bool = False) -> None:
    """Files a finished network (``record``) or, with ``instability``, the
    branch's sparse instability (``record`` a ``SparseInstabilityRecord``) in
    TensorBoard (``dashboards.write_level``), once, by the task that produced it."""
    if branch == branches.IMP:
        filed = dataclasses.replace(level, instability=record) if instability else level
    else:
        network = (dataclasses.replace(levels.baseline_record(config, level.level, branch),
                                       instability=record) if instability else record)
        filed = dataclasses.replace(level, baselines={branch: network})
    dashboards.write_level(config, filed, branch, instability=instability)


def run_dense(worker: TaskWorker, task: Task) -> None:
    """Level 0: the dense network, trained 0 -> T, keeping W_k."""
    config = worker.config
    cfg, t = config.pruning, config.train
    dashboards.write_imp_metadata(config)
    run_dir = levels.dense_dir(config)
    trainer = levels.masked_trainer(worker)
    ones = masks_lib.ones_like(wrappers.weight_values(trainer.model))
    levels.save_masks(run_dir, ones)
    spec = dataclasses.replace(
        toolkit.recipe_run(config, run_dir),
        rewind_steps=tuple(sorted({*t.rewind_steps, cfg.rewind_step})))
    record = records.LevelRecord(**levels.network_fields(0, ones, trainer.train(spec), run_dir))
    _summarize(config, record, branches.IMP, record)
    logging.info("IMP level 0 (dense): test accuracy %.4f (%.1f s)", record.test_accuracy,
                 record.wall_time_s or 0.0)


def _prune(worker: TaskWorker, level: int) -> dict[str, np.ndarray]:
    """Level ``level``'s mask: saved, or pruned from level-1's W_T."""
    config = worker.config
    cfg = config.pruning
    path = layout.mask_file(levels.level_dir(config, level))
    if chief.exists(path):
        return masks_lib.load(path)
    previous = levels.level_mask(config, level - 1)
    before = toolkit.run_record(levels.level_dir(config, level - 1))
    trainer = levels.masked_trainer(worker)
    trainer.restore_from(before.final_checkpoint, reset_optimizer=True)
    held = wrappers.get_masks(trainer.model)
    if any(not np.array_equal(held[n], previous[n]) for n in previous):
        raise RuntimeError(f"level {level - 1}'s final checkpoint does not hold "
                           f"the mask saved in its {layout.MASK_FILE}")
    rule = masks_lib.PruningRule(cfg.scope, cfg.rates())
    targets = masks_lib.level_densities(list(previous), cfg.prune_fraction, level, rule)
    new = masks_lib.prune(wrappers.weight_values(trainer.model), previous, targets, rule)
    levels.save_masks(levels.level_dir(config, level), new)
    return new


def run_level(worker: TaskWorker, task: Task) -> None:
    """Pruned level L: prunes level L-1's W_T, rewinds to W_k, trains to T."""
    config, level = worker.config, task.arg("level")
    record = _train_branch(worker, level, _prune(worker, level), branches.get(branches.IMP))
    _summarize(config, record, branches.IMP, record)
    logging.info("IMP level %d/%d: density %.4f, test accuracy %.4f (%.1f s)", level,
                 worker.config.pruning.levels, record.density, record.test_accuracy,
                 record.wall_time_s or 0.0)


def run_baseline(worker: TaskWorker, task: Task) -> None:
    """A baseline of level L (random pruning, random reinitialization, ...)."""
    config, level, name = worker.config, task.arg("level"), task.arg("branch")
    record = _train_branch(worker, level, levels.level_mask(config, level), branches.get(name))
    _summarize(config, levels.level_record(config, level), name, record)
    logging.info("IMP level %d %s: test accuracy %.4f (%.1f s)", level, name,
                 record.test_accuracy, record.wall_time_s or 0.0)


def _sparse_branch(task: Task) -> str:
    """The branch whose sparse instability a task measures: a baseline's
    tasks name it (arg ``branch``), the level's own do not."""
    return dict(task.args).get("branch", branches.IMP)


def _sparse_dir(config: ExperimentConfig, level: int, branch: str) -> str:
    return layout.sparse_instability_dir(config.runtime.model_dir, level,
                                         None if branch == branches.IMP else branch)


def _sparse_file(model_dir: str, level: int, branch: str) -> str:
    return layout.sparse_instability_file(model_dir, level,
                                          None if branch == branches.IMP else branch)


def _sparse_prefix(level: int, branch: str) -> str:
    return f"IMP level {level} " + ("" if branch == branches.IMP else f"{branch} ")


def run_sparse_child(worker: TaskWorker, task: Task) -> None:
    """Sparse instability: child i of a level's (or a baseline's) masked W_k,
    keeping the mask.

    The children start from level 0's W_k with the network's own start (the
    level's mask; a baseline's mask and init, as its run), and keep the mask,
    so every point of their path has the network's zeros; the analysis
    itself is the instability experiment's (``experiments.instability``), with
    its --children, --interpolation_points, --bn_mode and
    --child_optimizer_state.
    """
    config, level, i = worker.config, task.arg("level"), task.arg("child")
    branch = _sparse_branch(task)
    masks, init = _branch_start(config, level, levels.level_mask(config, level),
                                branches.get(branch))
    rewind = levels.rewind_manager(config)
    spec = toolkit.child_run(
        config, rewind.checkpoint, toolkit.recipe_noise(config),
        _sparse_dir(config, level, branch), i, then=rewind.after_restore(masks, init))
    levels.masked_trainer(worker).train(spec)


def run_sparse_pair(worker: TaskWorker, task: Task) -> None:
    """The path between two sparse-instability children of level L (or of a baseline)."""
    config, level, pair = worker.config, task.arg("level"), task.arg("pair")
    k, branch = config.pruning.rewind_step, _sparse_branch(task)
    evaluation.children_pair(config, levels.masked_evaluator(worker),
                          _sparse_dir(config, level, branch), k, pair,
                          evaluation.pair_label(k, pair, _sparse_prefix(level, branch)))


def run_sparse_instability(worker: TaskWorker, task: Task) -> None:
    """The ``instability.json`` of level L's subnetwork (or of a baseline):
    its children's barrier at k (and, with --layerwise_barriers, their
    pairs' layer-wise barriers)."""
    config, level, branch = worker.config, task.arg("level"), _sparse_branch(task)
    model_dir, k = config.runtime.model_dir, config.pruning.rewind_step
    point_dir = _sparse_dir(config, level, branch)
    point = evaluation.children_record(config, point_dir, toolkit.recipe_noise(config))
    found, curve_barrier = (curve_pairs.point_curves(config, point_dir)
                            if curve_pairs.enabled(config) else (None, None))
    record = records.SparseInstabilityRecord(
        status=layout.COMPLETE, rewind_step=k, children=point.children,
        pairs=point.pairs, barrier=point.barrier, aligned_barrier=point.aligned_barrier,
        loss_barrier=point.loss_barrier, stable=barrier.is_stable(point.barrier["test"].mean,
                                 config.instability.stability_threshold),
        layerwise=(instruments.point_layerwise(config, k, [point_dir])
                   if config.instability.layerwise_barriers else None),
        curves=found, curve_barrier=curve_barrier)
    store.write(_sparse_file(model_dir, level, branch), record, model_dir)
    _summarize(config, levels.level_record(config, level), branch, record, instability=True)
    logging.info("%stest barrier %.4f at k=%d (%s)", _sparse_prefix(level, branch),
                 record.barrier["test"].mean, record.rewind_step,
                 "stable" if record.stable else "unstable")


def run_sparse_curve(worker: TaskWorker, task: Task) -> None:
    """The fitted curve between two sparse-instability children of level L
    (or of a baseline), in the masked model: the bend's gradient is masked,
    so every point of the curve keeps the network's zeros."""
    config, level, branch = worker.config, task.arg("level"), _sparse_branch(task)
    curve_pairs.run_curve(worker, task, _sparse_dir(config, level, branch),
                          _sparse_prefix(level, branch), levels.masked_trainer(worker),
                          key="masked")


def run_layerwise_pair(worker: TaskWorker, task: Task) -> None:
    """A sparse-instability pair's layer-wise barriers, in the masked model."""
    instruments.run_layerwise_pair(worker, task, levels.masked_evaluator(worker))


# -- results.json: assembled from the levels' own records ------------------------------------

def _sparse_record(model_dir: str, level: int, branch: str
                   ) -> records.SparseInstabilityRecord | None:
    """A branch's sparse instability at ``level`` once complete, else None."""
    found = store.read(_sparse_file(model_dir, level, branch),
                       records.SparseInstabilityRecord, model_dir, model_dir)
    return found if layout.is_complete(found) else None


def assemble(config: ExperimentConfig, status: str) -> records.ImpResults:
    """IMP's results.json from what is on disk: every finished level with its
    finished baselines and sparse instabilities (all of them once complete)."""
    c, model_dir = config.pruning, config.runtime.model_dir
    baseline_levels = set(imp_baseline_levels(config))
    finished = []
    for level in range(c.levels + 1):
        run_dir = levels.level_dir(config, level)
        run = store.read(layout.results_file(run_dir), records.RunRecord, run_dir)
        if not layout.is_complete(run):
            continue
        assert run is not None
        record = levels.branch_record(config, level, branches.IMP, run)
        found = {}
        for name in c.baselines if level in baseline_levels else ():
            b_dir = levels.branch_dir(config, level, name)
            b_run = store.read(layout.results_file(b_dir), records.RunRecord, b_dir)
            if layout.is_complete(b_run):
                assert b_run is not None
                found[name] = dataclasses.replace(
                    levels.branch_record(config, level, name, b_run),
                    instability=_sparse_record(model_dir, level, name))
        finished.append(dataclasses.replace(
            record, baselines=found,
            instability=_sparse_record(model_dir, level, branches.IMP)))
    paths = [store.read(layout.level_path_file(model_dir, a, b), records.LevelPathRecord,
                        model_dir, model_dir)
             for a, b in level_pairs(c.levels, c.level_barriers)]
    return records.ImpResults(status=status, rewind_step=c.rewind_step,
                              prune_fraction=c.prune_fraction, pruning_scope=c.scope,
                              levels=finished,
                              level_paths=[p for p in paths if p and layout.is_complete(p)])


_PIECES = ("dense", "level", "baseline", "sparse_instability")  # what the report draws


def refresh_results(config: ExperimentConfig, task: Task) -> None:
    """The running results.json, rebuilt from the pieces, and the report's
    figures in TensorBoard once a piece they draw is new: called by an
    executor that holds the model_dir's lease after each task (never by a
    task, so it cannot race the results task, which runs after every other
    and redraws the figures last itself)."""
    model_dir = config.runtime.model_dir
    path = layout.results_file(model_dir)
    if layout.is_complete(store.read_summary(path, records.ImpResults, model_dir)):
        return
    store.write(path, assemble(config, layout.RUNNING), model_dir)
    if task.kind in _PIECES:
        tensorboard_figures.refresh_figures(model_dir)


def run_imp_results(worker: TaskWorker, task: Task) -> None:
    """The complete results.json, once every level, baseline and analysis is done."""
    config = worker.config
    store.write(layout.results_file(config.runtime.model_dir),
                assemble(config, layout.COMPLETE), config.runtime.model_dir)
    tensorboard_figures.refresh_figures(config.runtime.model_dir)


def imp(config: ExperimentConfig, strategy: Any = None,
        pipeline: Any = None) -> records.ImpResults:
    """IMP with rewinding, its baselines and (--instability) sparse instability,
    in this process (every task of its graph, ``tasks.inline``)."""
    results = EXPERIMENT.run(config, strategy, pipeline)
    assert isinstance(results, records.ImpResults)
    return results


KINDS = {
    "dense": run_kind(run_dense), "level": run_kind(run_level),
    "baseline": run_kind(run_baseline), "sparse_child": run_kind(run_sparse_child),
    "sparse_pair": record_kind(run_sparse_pair),
    "sparse_instability": record_kind(run_sparse_instability),
    "imp_results": record_kind(run_imp_results),
    "level_path": record_kind(instruments.run_level_path),
    "layerwise_pair": record_kind(run_layerwise_pair), "curve": record_kind(run_sparse_curve)}

def _sparsest_level(model_dir: str) -> int:
    level = 0
    while checkpoints.is_committed(layout.final_dir(layout.level_dir(model_dir, level + 1))):
        level += 1
    return level


def _level_dir(config: ExperimentConfig, model_dir: str, level: int | None) -> str:
    """Level ``level``'s run (None: the sparsest level finished)."""
    level = _sparsest_level(model_dir) if level is None else level
    if not 0 <= level <= config.pruning.levels:
        raise ConfigError(f"--level={level} is outside the run's levels "
                          f"0..{config.pruning.levels}")
    return layout.level_dir(model_dir, level)


def _rewind_step(config: ExperimentConfig) -> tuple[int, ...]:
    return (config.pruning.rewind_step,)


NETWORKS = Networks(_level_dir, _rewind_step, masked=True)

EXPERIMENT = Experiment(experiments.get("imp"), plan, KINDS, refresh=refresh_results,
                        networks=NETWORKS)
