"""Pair evaluation, the toolkit's second part: a path's curves and barriers, stored once.

``evaluate_pair`` evaluates the linear path between two checkpoints (and,
with ``--align=weights``, the aligned path) and writes its record and its
TensorBoard curves; ``children_pair`` and ``children_record`` do it for the
children of one starting point W_k; ``rewind_record`` aggregates a rewind
step over replicates; ``evaluator`` is the worker's dense path evaluator.
The instability analysis, IMP's sparse instability and the onset search
share them (``toolkit`` has the plans, seeds and runs; ``levels`` IMP's).
"""

from __future__ import annotations

import time

from absl import logging

from tf_lottery import files
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records, store
from tf_lottery.core.layout import SPLITS
from tf_lottery.experiments import toolkit
from tf_lottery.stability import aligned_paths, barrier
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.summaries.instability import PathWriter
from tf_lottery.tasks.kinds import TaskWorker
from tf_lottery.training.trainer import SgdNoise


def evaluator(worker: TaskWorker) -> PathEvaluator:
    """The worker's path evaluator over the dense Trainer's model."""
    return worker.cached("evaluator",
                         lambda: PathEvaluator.for_config(toolkit.trainer(worker), worker.config))

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

def children_pair(config: ExperimentConfig, evaluator: PathEvaluator, out_dir: str, k: int,
                  pair: tuple[int, int], label: str) -> records.PairRecord:
    """The path between two finished children under ``out_dir`` (``evaluate_pair``)."""
    i, j = pair
    ends = [toolkit.run_record(layout.child_dir(out_dir, c)).final_checkpoint for c in pair]
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
        run = toolkit.run_record(run_dir)
        noise = toolkit.child_noise(parent_noise, i, config.instability.child_noise)
        children.append(records.ChildRecord(
            child=i, run_dir=run_dir, final_checkpoint=run.final_checkpoint,
            metrics=run.metrics, data_order_seed=noise.data_order_seed,
            augment_seed=noise.augment_seed, child_noise=config.instability.child_noise))
    pair_results = [store.read_done(layout.pair_file(out_dir, i, j), records.PairRecord,
                                    model_dir, model_dir)
                    for i, j in toolkit.pairs(len(children))]
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
