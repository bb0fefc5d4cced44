"""Instability analysis: children from each W_k, their linear paths, error barriers.

For every replicate r (an independent parent) and every rewind step k:

1. the parent is trained once to T, saving W_k (``Trainer.train`` with the
   recipe's rewind steps);
2. ``--children`` children start from W_k, each with its own SGD noise, and
   train to T; the LR schedule continues from k and the optimizer state at k
   is restored or reset (``--child_optimizer_state``);
3. every pair of children is evaluated at ``--interpolation_points`` points
   of W(α) = (1−α)·W₁ + α·W₂ on the test set and the train subset;
4. the error barrier of each pair, then mean ± std over pairs and replicates.

Seeds. Replicate r's parent uses ``init_seed + r``, ``data_order_seed + r``
and ``augment_seed + r`` (replicate 0 is the recipe itself). Child i of a
parent gets SGD-noise seeds drawn by ``numpy.random.SeedSequence`` from the
parent's seed and i (``child_noise``), so children differ from each other
and from their parent, and child i gets the same noise at every k, which
isolates the effect of k. ``--child_noise`` holds one source (or both) at
child 0's seed for every child, to ask which source drives instability.
With two or more replicates, the final parents of every pair of replicates
are interpolated too: two independently initialized and trained networks,
the contrast that shows what an unstable pair looks like.

Layout under ``model_dir`` (``core.layout``; ``layout.tree("instability")``
draws it): every piece is written atomically as a record (``core.records``),
so a killed analysis resumes where it stopped and never redoes a finished
piece. Parents, children, pairs, rewind points (``k_<k>.json``) and finally
``results.json``, which holds everything.

Each piece is a task (``tasks.planners.instability`` plans them; the
``run_<kind>`` functions below run them): a parent, a child, a pair, a
rewind point's record, the results. A task reads only its dependencies'
records and checkpoints, so tasks run in one process (``instability``,
``tasks.inline``), one per launch (``--task``) or on a Ray cluster, with
the same results.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from tf_lottery import files
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records, store
from tf_lottery.core.layout import SPLITS
from tf_lottery.data.pipeline import Pipeline
from tf_lottery.errors import FieldError
from tf_lottery.reporting import console
from tf_lottery.stability import aligned_paths, barrier, summaries
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.summaries import dashboards, figures
from tf_lottery.tasks.graph import Task
from tf_lottery.training import checkpoints
from tf_lottery.training.trainer import (
    FromCheckpoint,
    FromSeed,
    RunSpec,
    SgdNoise,
    Then,
    Trainer,
)

_DATA_ORDER, _AUGMENT = 1, 2  # SeedSequence streams of a child's two seeds.


# -- seeds and run specs: pure functions of the config ---------------------------

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


def pairs(children: int) -> list[tuple[int, int]]:
    """Every unordered pair of children, (0, 1), (0, 2), ..., (n−2, n−1)."""
    return list(itertools.combinations(range(children), 2))


# -- evaluation of paths ----------------------------------------------------------

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
    writer = summaries.PathWriter(events_dir, k)
    try:
        curves = evaluator.between(checkpoint_a, checkpoint_b, label=label, on_point=writer)
    finally:
        writer.close()
    aligned = aligned_paths.aligned_pair(evaluator, checkpoint_a, checkpoint_b, label=label,
                                         events_dir=events_dir, k=k)  # None: --align=none
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


def _over_pairs(pair_records: list[records.PairRecord]) -> dict[str, records.Stat]:
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


# -- pieces shared with sparse instability (IMP): children, pairs, their record -----------

def pair_label(k: int, pair: tuple[int, int], prefix: str = "") -> str:
    """How a pair's progress lines name it: ``[prefix]k=<k> pair (i,j)``."""
    return f"{prefix}k={k} pair ({pair[0]},{pair[1]})"


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
                                  barrier=_over_pairs(pair_results),
                                  aligned_barrier=aligned_paths.over_pairs(pair_results),
                                  loss_barrier=loss_over_pairs(pair_results))


# -- the experiment's tasks (tasks.planners.instability) ----------------------------------

def _rewind_record(config: ExperimentConfig, k: int,
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


def _table(points: list[records.RewindPointRecord], threshold: float) -> str:
    rows = [(r.rewind_step, r.barrier["test"].to_json(), r.barrier["train"].to_json(),
             r.stable) for r in points]
    return barrier.format_table(rows, threshold)


def _trainer(worker: Any) -> Trainer:
    """The worker's Trainer for parents and children: every run states its start."""
    return worker.cached("trainer", lambda: Trainer(worker.config, worker.strategy,
                                                    worker.pipeline))


def _evaluator(worker: Any) -> PathEvaluator:
    return worker.cached("evaluator",
                         lambda: PathEvaluator.for_config(_trainer(worker), worker.config))


def _rewind_checkpoint(config: ExperimentConfig, replicate: int, k: int) -> str:
    """W_k of the replicate's parent, which must have kept it."""
    run_dir = layout.parent_dir(config.runtime.model_dir, replicate)
    if not checkpoints.has_rewind(run_dir, k):
        raise FieldError("train.rewind_steps", f"has k={[k]}, for which parent {run_dir} "
                         "has no rewind checkpoint; use a new {runtime.model_dir}")
    return checkpoints.rewind_prefix(run_dir, k)


def _replicate_prefix(config: ExperimentConfig, replicate: int) -> str:
    return f"replicate {replicate} " if config.instability.replicates > 1 else ""


def run_parent(worker: Any, task: Task) -> None:
    """Trains replicate r's parent 0 -> T, keeping every W_k."""
    config, r = worker.config, task.arg("replicate")
    if r == 0:  # the experiment's charts and hparams columns, once
        summaries.write_run_metadata(config.runtime.model_dir, config,
                                     config.instability.replicates >= 2)
    _trainer(worker).train(parent_run(config, r))
    for k in config.train.rewind_steps:
        _rewind_checkpoint(config, r, k)


def run_independent_pair(worker: Any, task: Task) -> None:
    """The path between the final parents of two replicates."""
    model_dir = worker.config.runtime.model_dir
    a, b = task.arg("replicates")
    ends = [run_record(layout.parent_dir(model_dir, r)).final_checkpoint for r in (a, b)]
    evaluate_pair(_evaluator(worker), ends[0], ends[1],
                  layout.independent_pair_file(model_dir, a, b), None,
                  label=f"independent parents ({a},{b})", root=model_dir, replicates=(a, b))


def run_child(worker: Any, task: Task) -> None:
    """Child i of replicate r's W_k, trained to T with its own SGD noise."""
    config = worker.config
    r, k, i = task.arg("replicate"), task.arg("k"), task.arg("child")
    spec = child_run(config, _rewind_checkpoint(config, r, k), replicate_noise(config, r),
                     layout.rewind_point_dir(config.runtime.model_dir, r, k), i)
    _trainer(worker).train(spec)


def run_pair(worker: Any, task: Task) -> None:
    """The path between two children of replicate r's W_k."""
    config = worker.config
    r, k, pair = task.arg("replicate"), task.arg("k"), task.arg("pair")
    children_pair(config, _evaluator(worker),
                  layout.rewind_point_dir(config.runtime.model_dir, r, k), k, pair,
                  pair_label(k, pair, _replicate_prefix(config, r)))


def run_rewind_point(worker: Any, task: Task) -> None:
    """Rewind step k over every replicate: ``k_<k>.json`` and its TensorBoard."""
    config, k = worker.config, task.arg("k")
    model_dir = config.runtime.model_dir
    replicates = []
    for r in range(config.instability.replicates):
        point = children_record(config, layout.rewind_point_dir(model_dir, r, k),
                                replicate_noise(config, r))
        replicates.append(records.ReplicateRecord(
            replicate=r, children=point.children, pairs=point.pairs, barrier=point.barrier,
            aligned_barrier=point.aligned_barrier, loss_barrier=point.loss_barrier))
    record = _rewind_record(config, k, replicates)
    summaries.write_barriers(model_dir, record)
    for rep in replicates:
        dashboards.write_rewind_point_session(
            layout.rewind_point_dir(model_dir, rep.replicate, k), config, k, rep)
    store.write(layout.rewind_point_file(model_dir, k), record, model_dir)
    logging.info("Rewind step k=%d: test barrier %s, train barrier %s -> %s", k,
                 console.cell(record.barrier["test"].stat),
                 console.cell(record.barrier["train"].stat),
                 "stable" if record.stable else "unstable")
    if record.loss_barrier is not None:
        logging.info("Rewind step k=%d: test loss barrier %.4f, train loss barrier %.4f", k,
                     record.loss_barrier["test"].mean, record.loss_barrier["train"].mean)


def run_instability_results(worker: Any, task: Task) -> None:
    """``results.json``: parents, every rewind point, the independent pairs."""
    from tf_lottery.tasks import plan

    config = worker.config
    model_dir, ic = config.runtime.model_dir, config.instability
    parents = []
    for r in range(ic.replicates):
        spec = parent_run(config, r)
        run = run_record(spec.run_dir)
        parents.append(records.ParentRecord(
            replicate=r, run_dir=spec.run_dir, final_checkpoint=run.final_checkpoint,
            metrics=run.metrics, init_seed=replicate_init_seed(config, r),
            data_order_seed=spec.noise.data_order_seed,
            augment_seed=spec.noise.augment_seed))
    independent = None
    if ic.replicates >= 2:
        found = [store.read_done(layout.independent_pair_file(model_dir, a, b),
                                 records.PairRecord, model_dir, model_dir)
                 for a, b in pairs(ic.replicates)]
        independent = records.IndependentRecord(pairs=found, barrier=_over_pairs(found),
                                                aligned_barrier=aligned_paths.over_pairs(found),
                                                loss_barrier=loss_over_pairs(found))
        summaries.write_independent(model_dir, independent, config.train.rewind_steps)
        logging.info("Independent parents: test barrier %s, train barrier %s",
                     console.cell(independent.barrier["test"]),
                     console.cell(independent.barrier["train"]))
    points = [store.read_done(layout.rewind_point_file(model_dir, k),
                              records.RewindPointRecord, model_dir, model_dir)
              for k in config.train.rewind_steps]
    # Kept in results.json; the run prints its one final table at its end
    # (``reporting.console.summary``), so the log does not repeat it here.
    table = _table(points, ic.stability_threshold)
    layerwise = None
    if ic.layerwise_barriers:
        from tf_lottery.stability import instruments

        layerwise = instruments.layerwise_summaries(config)
    results = records.InstabilityResults(
        status=layout.COMPLETE,
        settings=records.InstabilitySettings(
            children=ic.children, interpolation_points=ic.interpolation_points,
            stability_threshold=ic.stability_threshold, bn_mode=ic.bn_mode,
            replicates=ic.replicates, child_optimizer_state=ic.child_optimizer_state,
            train_eval_examples=config.data.train_eval_examples, align=ic.align,
            child_noise=ic.child_noise),
        parents=parents,
        rewind_steps=points,
        independent=independent,
        table=table,
        wall_time_s_last_session=plan.recorded_seconds(config, worker.graph),
        layerwise=layerwise,
    )
    store.write(layout.results_file(model_dir), results, model_dir)
    figures.refresh_figures(model_dir)


def refresh_views(config: ExperimentConfig, task: Task) -> None:
    """After a rewind point's record: the report's figures in TensorBoard
    (``summaries.figures``), redrawn by the executor that holds the
    model_dir's lease (the results task redraws them last itself)."""
    if task.kind == "rewind_point":
        figures.refresh_figures(config.runtime.model_dir)


def instability(config: ExperimentConfig, strategy: tf.distribute.Strategy,
                pipeline: Pipeline) -> records.InstabilityResults:
    """Runs (or resumes) the instability analysis in this process (every task
    of its graph, ``tasks.inline``); returns ``results.json``."""
    from tf_lottery.tasks import inline

    results = inline.run(config, strategy, pipeline)
    assert isinstance(results, records.InstabilityResults)
    return results
