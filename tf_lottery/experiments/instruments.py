"""The evaluation-only instruments beside the instability analysis, as stored pieces.

- Layer-wise barriers of a pair (``--layerwise_barriers``): ``layerwise_pair``
  evaluates every group's path (``stability.layerwise``) and writes
  ``layerwise_<i>_<j>.json`` beside the pair; ``point_layerwise`` gives a
  rewind step's barrier per group over every pair and replicate, written by
  the results task to the summary run ``summary/`` as
  ``layerwise/<split>_barrier/<group>`` against k. In IMP (``--instability``)
  the pairs are a level's sparse-instability children: the level's
  ``instability.json`` holds their summary, which its task files in IMP's
  summary run beside the level's sparse barrier
  (``dashboards.write_level``).
- IMP level-to-level paths (``--imp_level_barriers``): ``level_path``
  evaluates the raw linear path between the trained networks of levels a < b
  (Paul et al. 2022) and writes ``level_paths/level_<a>_level_<b>.json``; its
  task files the barrier in IMP's summary run ``summary/imp/`` as
  ``imp/<split>_level_barrier_<j>`` (against a) and
  ``imp_vs_pruned/<split>_level_barrier_<j>`` (against a's ppm pruned).
  Both networks are wrapped models with their own masks; the path is the
  plain interpolation of their weights (pruned weights are exactly 0 in
  each checkpoint, so a weight pruned at b only goes linearly to 0). The
  wrappers apply no mask in the forward pass (``pruning.wrappers``), so the
  interpolated mask variables change nothing.

Every piece is found complete and returned as stored, or computed and
written atomically (``core.store``): resuming never redoes a finished one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from absl import logging

from tf_lottery.core import layout, records, store
from tf_lottery.core.layout import SPLITS
from tf_lottery.experiments import evaluation, levels, toolkit
from tf_lottery.pruning import branches
from tf_lottery.stability import barrier, layerwise
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.summaries import tensorboard
from tf_lottery.tasks.graph import Task
from tf_lottery.tasks.kinds import TaskWorker


def layerwise_pair(evaluator: PathEvaluator, checkpoint_a: str, checkpoint_b: str,
                   out_path: str, points: int, *, root: str, k: int | None = None,
                   children: tuple[int, int] | None = None,
                   label: str = "layer-wise") -> records.LayerwiseRecord:
    """Layer-wise barriers of the pair a -> b, stored at ``out_path``."""
    done = store.read_complete(out_path, records.LayerwiseRecord, root, root)
    if done is not None:
        return done
    started = time.perf_counter()
    w1 = evaluator.endpoint(checkpoint_a)
    w2 = evaluator.endpoint(checkpoint_b)
    found = layerwise.evaluate(evaluator, w1, w2, points, label=label)
    groups = []
    for group, curves in found:
        groups.append(records.LayerGroupPathRecord(
            name=group.name, layers=list(group.layers),
            parameters=layerwise.parameters(evaluator.trainer.model, group),
            error={s: curves[f"{s}_error"] for s in SPLITS},
            loss={s: curves[f"{s}_loss"] for s in SPLITS},
            barrier=dict(curves["barrier"])))
    record = records.LayerwiseRecord(
        status=layout.COMPLETE, endpoints=[checkpoint_a, checkpoint_b],
        bn_mode=evaluator.bn_mode, alphas=found[0][1]["alphas"] if found else [],
        groups=groups, rewind_step=k, children=list(children) if children else None,
        wall_time_s=round(time.perf_counter() - started, 3))
    store.write(out_path, record, root)
    return record


def point_layerwise(config: Any, k: int, point_dirs: Sequence[str]
                    ) -> records.LayerwiseSummaryRecord:
    """Rewind step k's layer-wise summary over every pair of children under
    each of ``point_dirs`` (a rewind point's replicates, or an IMP level's
    sparse instability), from the records the ``layerwise_pair`` tasks wrote."""
    model_dir = config.runtime.model_dir
    return summarize_layerwise(k, [
        store.read_done(layout.layerwise_file(point_dir, i, j), records.LayerwiseRecord,
                        model_dir, model_dir)
        for point_dir in point_dirs for i, j in toolkit.pairs(config.instability.children)])


def layerwise_summaries(config: Any) -> list[records.LayerwiseSummaryRecord]:
    """Every rewind step's layer-wise summary, from the pairs' records (which
    the ``layerwise_pair`` tasks wrote); each written to TensorBoard."""
    model_dir = config.runtime.model_dir
    out = []
    for k in config.train.rewind_steps:
        out.append(point_layerwise(config, k, [
            layout.rewind_point_dir(model_dir, r, k)
            for r in range(config.instability.replicates)]))
        write_layerwise(model_dir, out[-1])
    return out


def summarize_layerwise(k: int, found: Sequence[records.LayerwiseRecord]
                        ) -> records.LayerwiseSummaryRecord:
    """Mean ± std over pairs of each group's barrier (groups in graph order)."""
    if not found:
        raise ValueError(f"no layer-wise pairs at k={k}")
    names = [g.name for g in found[0].groups]
    return records.LayerwiseSummaryRecord(
        rewind_step=k, groups=names,
        barrier={name: {s: records.Stat.from_json(barrier.summarize(
            [next(g for g in r.groups if g.name == name).barrier[s] for r in found]))
            for s in SPLITS} for name in names})


def write_layerwise(model_dir: str, summary: records.LayerwiseSummaryRecord) -> None:
    """``layerwise/<split>_barrier/<group>`` at step k, into the experiment's
    summary run (``layout.summary_dir``; ``chief.summary_writer`` inside)."""
    k = summary.rewind_step
    tensorboard.write_scalars(layout.summary_dir(model_dir), {
        layout.layerwise_tag(split, name): [(k, summary.barrier[name][split].mean)]
        for name in summary.groups for split in SPLITS})


# -- IMP level-to-level paths ------------------------------------------------------------

def level_path(evaluator: PathEvaluator, model_dir: str, a: records.LevelRecord,
               b: records.LevelRecord) -> records.LevelPathRecord:
    """The raw path between two IMP levels' final networks, stored once."""
    out_path = layout.level_path_file(model_dir, a.level, b.level)
    done = store.read_complete(out_path, records.LevelPathRecord, model_dir, model_dir)
    if done is not None:
        return done
    pair = evaluation.evaluate_pair(
        evaluator, layout.final_checkpoint(a.run_dir), layout.final_checkpoint(b.run_dir),
        out_path.removesuffix(".json") + "_pair.json", None,
        label=f"IMP levels {a.level} -> {b.level}", root=model_dir)
    record = records.LevelPathRecord(status=layout.COMPLETE, levels=[a.level, b.level],
                                     densities=[a.density, b.density], pair=pair)
    store.write(out_path, record, model_dir)
    logging.info("IMP levels %d -> %d (density %.4f -> %.4f): test barrier %.4f, "
                 "train barrier %.4f", a.level, b.level, a.density, b.density,
                 pair.barrier["test"], pair.barrier["train"])
    return record


def write_level_path(model_dir: str, record: records.LevelPathRecord) -> None:
    """The barrier between levels a and a + j in IMP's summary run, beside its
    accuracy (``summary/imp/``): against a and against a's ppm of weights
    pruned (``layout.level_barrier_tag``)."""
    a, pruned = record.levels[0], layout.ppm_pruned(record.densities[0])
    tensorboard.write_scalars(layout.summary_run(model_dir, branches.IMP), {
        tag: [(step, record.pair.barrier[split])] for split in SPLITS
        for tag, step in ((layout.level_barrier_tag(split, record.gap), a),
                          (layout.level_barrier_tag(split, record.gap, vs_pruned=True),
                           pruned))})


# -- task kinds (each experiment registers them with the evaluator its networks need) ------

def _children_of(config: Any, task: Task) -> tuple[str, str]:
    """Where a ``layerwise_pair`` task's children live, and the prefix of its
    progress lines: replicate r's rewind point k (instability, onset; arg
    ``replicate``) or the sparse instability of IMP level L (arg ``level``)
    or of one of its baselines (and arg ``branch``)."""
    model_dir = config.runtime.model_dir
    args = dict(task.args)
    if "level" in args:
        level, baseline = args["level"], args.get("branch")
        return (layout.sparse_instability_dir(model_dir, level, baseline),
                f"IMP level {level} " + (f"{baseline} " if baseline else ""))
    r = args["replicate"]
    return layout.rewind_point_dir(model_dir, r, args["k"]), f"replicate {r} "


def run_layerwise_pair(worker: TaskWorker, task: Task, evaluator: PathEvaluator) -> None:
    """``layerwise_<i>_<j>.json``: the layer-wise barriers of two children of
    W_k, beside their pair, evaluated with ``evaluator``: the experiment
    passes the one its networks need. An IMP level's children are masked
    networks: they are evaluated in the masked trainer's model
    (``levels.masked_evaluator``), and a pruned weight, 0 at both ends, is 0
    at every point of every group's path."""
    config = worker.config
    k, (i, j) = task.arg("k"), task.arg("pair")
    point_dir, prefix = _children_of(config, task)
    ends = [toolkit.run_record(layout.child_dir(point_dir, c)).final_checkpoint
            for c in (i, j)]
    layerwise_pair(evaluator, ends[0], ends[1], layout.layerwise_file(point_dir, i, j),
                   config.instability.layerwise_points, root=config.runtime.model_dir, k=k,
                   children=(i, j),
                   label=evaluation.pair_label(k, (i, j), prefix) + " layer-wise")


def run_level_path(worker: TaskWorker, task: Task) -> None:
    """The raw path between IMP levels a and b's trained networks, and its
    scalars in IMP's summary run (filed once, by this task, as IMP's levels
    file theirs)."""
    config = worker.config
    a, b = task.arg("levels")
    record = level_path(levels.masked_evaluator(worker), config.runtime.model_dir,
                        levels.level_record(config, a), levels.level_record(config, b))
    write_level_path(config.runtime.model_dir, record)

