"""Beyond the line, as stored pieces of the instability analysis: planes and centroids.

- ``--plane``: a ``plane`` task per (replicate, k) evaluates the error
  surface on a ``--plane_grid`` × ``--plane_grid`` grid in the plane
  through three networks (``stability.plane``) and writes
  ``plane_<plane>.json`` beside the children. The three are named by
  ``NETWORKS``: 'parent' = (W_k, child 0, child 1), 'aligned' = (child 0,
  child 1, child 1 aligned to child 0), 'curve' = (child 0, child 1, the
  bend θ of the curve fitted between them, ``--curve``; the plane task
  waits for that curve task and reads its finished fit).
- ``--centroid``: a ``centroid`` task per (replicate, k) evaluates the
  average of all N children, raw and aligned (``stability.centroid``), and
  writes ``centroid.json``; the results task summarizes them per k over
  replicates (``summarize``) into results.json's ``centroid``.

The section (``config.experiments.SurfaceConfig``) is evaluation only and
left out of the recipe, so a finished run relaunched with these knobs
computes the new pieces and then its results again (``results_current``
says a results.json without the centroids asked for is not done). A plane
recorded with another grid or margin is computed again (``plane_current``);
the old record is set aside beside it (``files.set_aside``), never lost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging

from tf_lottery import files
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records, store
from tf_lottery.core.layout import SPLITS
from tf_lottery.experiments import curve_pairs, evaluation, toolkit
from tf_lottery.experiments.toolkit import EVAL_COST, task_id
from tf_lottery.models import permutation
from tf_lottery.stability import aligned_paths, barrier, bn, centroid, curves, plane
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.summaries import paper
from tf_lottery.tasks.graph import Task
from tf_lottery.tasks.kinds import TaskWorker
from tf_lottery.training.trainer import SgdNoise

# The three networks of each --plane, as the plane's labels name them.
NETWORKS = {"parent": ("W_k", "child 0", "child 1"),
            "aligned": ("child 0", "child 1", "child 1 aligned"),
            "curve": ("child 0", "child 1", "bend")}


# -- the graph: pure functions of the config -----------------------------------------------

def point_steps(config: Any) -> float:
    """One network evaluated as a path's point is (with --bn_mode=recompute,
    its statistics re-estimated first)."""
    ic = config.instability
    extra = ic.bn_recompute_batches * EVAL_COST if ic.bn_mode == "recompute" else 0.0
    return toolkit.eval_steps(config) + extra


def plane_steps(config: Any) -> int:
    """A plane's cost: its G² grid points and the three networks themselves."""
    return max(1, math.ceil((config.surface.plane_grid ** 2 + 3) * point_steps(config)))


def centroid_steps(config: Any) -> int:
    """Two centroids (raw, aligned), each with its BatchNorm statistics
    re-estimated (charged whether or not the network has BatchNorm: the
    planner does not build it)."""
    ic = config.instability
    per = toolkit.eval_steps(config) + ic.bn_recompute_batches * EVAL_COST
    return max(1, math.ceil(2 * per))


def tasks(config: Any, point_dir: str, parent: str, k: int, replicate: int) -> list[Task]:
    """The plane and the centroid of replicate ``replicate``'s W_k, as the
    surface section asks: each needs the children (and the plane 'parent'
    the parent's W_k)."""
    sc = config.surface
    children = [task_id(layout.child_dir(point_dir, i))
                for i in range(config.instability.children)]
    args = (("replicate", replicate), ("k", k))
    out = []
    if sc.plane != "none":
        deps = ((parent,) if sc.plane == "parent" else ()) + tuple(children[:2]) + (
            (task_id(layout.curve_file(point_dir, 0, 1)),) if sc.plane == "curve" else ())
        out.append(Task(task_id(layout.plane_file(point_dir, sc.plane)), "plane", deps,
                        plane_steps(config), (*args, ("plane", sc.plane))))
    if sc.centroid:
        out.append(Task(task_id(layout.centroid_file(point_dir)), "centroid",
                        tuple(children), centroid_steps(config), args))
    return out


def plane_current(config: ExperimentConfig, record: Mapping[str, Any]) -> bool:
    """A stored plane is this config's: the same grid and margin."""
    sc = config.surface
    return record.get("grid") == sc.plane_grid and record.get("margin") == sc.plane_margin


def results_current(config: ExperimentConfig, record: Mapping[str, Any]) -> bool:
    """A results.json names the plane ``--plane`` asks for (the report draws
    the planes its settings name) and holds the centroids ``--centroid``
    asks for; a relaunch without them asks for nothing new."""
    sc, settings = config.surface, record.get("settings") or {}
    return ((sc.plane == "none" or settings.get("plane") == sc.plane)
            and (not sc.centroid or record.get("centroid") is not None))


# -- planes ----------------------------------------------------------------------------------

def _final(point_dir: str, child: int) -> str:
    return toolkit.run_record(layout.child_dir(point_dir, child)).final_checkpoint


def _networks(evaluator: PathEvaluator, config: ExperimentConfig, r: int, k: int,
              which: str, fitter: curves.BendFitter | None = None
              ) -> tuple[list[str], list[list[np.ndarray]], dict | None]:
    """The checkpoints, the weights (path variables' order) and, for
    'aligned', the matching of the plane ``which``'s three networks; for
    'curve', ``fitter`` gives the bend of the finished fit of children 0 and
    1 (it resumes that fit at its end, so it trains nothing)."""
    point_dir = layout.rewind_point_dir(config.runtime.model_dir, r, k)
    ends = [_final(point_dir, 0), _final(point_dir, 1)]
    if which == "parent":
        paths = [toolkit.rewind_checkpoint(config, r, k), *ends]
        return paths, [evaluator.endpoint(p) for p in paths], None
    if which == "aligned":
        trainer = evaluator.trainer
        a, b = (aligned_paths.endpoint_weights(trainer, p) for p in ends)
        c, matching = aligned_paths.align_endpoints(
            permutation.permutation_spec(trainer.model), a, b,
            aligned_paths.MATCHING_SEED, aligned_paths.MATCHING_MAX_ITER)
        return ([*ends, ends[1]], [aligned_paths.path_arrays(trainer, w) for w in (a, b, c)],
                matching)
    if which == "curve" and fitter is not None:
        w1, w2 = evaluator.endpoint(ends[0]), evaluator.endpoint(ends[1])
        fit_dir = layout.curve_dir(layout.curve_file(point_dir, 0, 1))
        bend = fitter.fit(w1, w2, fit_dir).bend
        return [*ends, layout.final_checkpoint(fit_dir)], [w1, w2, bend], None
    raise ValueError(f"unknown plane {which!r}")


def evaluate_plane(evaluator: PathEvaluator, config: ExperimentConfig, r: int, k: int,
                   which: str, fitter: curves.BendFitter | None = None) -> records.PlaneRecord:
    """Replicate r's plane ``which`` at k, stored once (``plane_<which>.json``)."""
    model_dir, sc = config.runtime.model_dir, config.surface
    out_path = layout.plane_file(layout.rewind_point_dir(model_dir, r, k), which)
    done = store.read_complete(out_path, records.PlaneRecord, model_dir, model_dir)
    if done is not None and done.grid == sc.plane_grid and done.margin == sc.plane_margin:
        return done
    if done is not None:  # another grid or margin asked for: keep the old one beside it
        logging.info("%s holds a %d-point grid with margin %g; setting it aside as %s",
                     out_path, done.grid, done.margin,
                     files.set_aside(out_path, layout.SUPERSEDED))
    started = time.perf_counter()
    paths, weights, matching = _networks(evaluator, config, r, k, which, fitter)
    found = plane.through(*weights)
    xs, ys = plane.grid(found.coordinates, sc.plane_grid, sc.plane_margin)
    label = f"{evaluation.replicate_prefix(config, r)}k={k} plane {which}"
    surface = plane.evaluate(evaluator, found, xs, ys, label=label)
    record = records.PlaneRecord(
        status=layout.COMPLETE, plane=which, rewind_step=k, replicate=r,
        networks=list(NETWORKS[which]), endpoints=paths,
        coordinates=found.coordinates.tolist(), xs=xs.tolist(), ys=ys.tolist(),
        error={s: surface[f"{s}_error"] for s in SPLITS},
        loss={s: surface[f"{s}_loss"] for s in SPLITS},
        network_error={s: [m[f"{s}_error"] for m in surface["networks"]] for s in SPLITS},
        bn_mode=evaluator.bn_mode, grid=sc.plane_grid, margin=sc.plane_margin,
        matching=records.MatchingRecord.from_json(matching) if matching else None,
        wall_time_s=round(time.perf_counter() - started, 3))
    store.write(out_path, record, model_dir)
    logging.info("%s: %d x %d grid, test error %.4f .. %.4f (%.1f s)", label, len(xs),
                 len(ys), float(np.min(record.error["test"])),
                 float(np.max(record.error["test"])), record.wall_time_s)
    return record


# -- centroids ----------------------------------------------------------------------------

def _recompute(worker: TaskWorker, evaluator: PathEvaluator):
    """BatchNorm re-estimation for a centroid: the evaluator's own when
    --bn_mode=recompute, else one of its own on the recipe's batches; None
    for a network without BatchNorm."""
    if not bn.batchnorm_layers(evaluator.trainer.model):
        return None, False
    if evaluator.prepare is not None:
        return None, True  # the evaluator re-estimates at every point already
    t = worker.config.train
    return worker.cached("centroid_recompute", lambda: bn.BatchNormRecompute(
        evaluator.trainer, worker.config.instability.bn_recompute_batches,
        SgdNoise(t.data_order_seed, t.augment_seed))), True


def evaluate_centroid(worker: TaskWorker, evaluator: PathEvaluator, r: int, k: int
                      ) -> records.CentroidRecord:
    """Replicate r's centroid of the children of W_k, stored once (``centroid.json``)."""
    config = worker.config
    model_dir = config.runtime.model_dir
    point_dir = layout.rewind_point_dir(model_dir, r, k)
    out_path = layout.centroid_file(point_dir)
    done = store.read_complete(out_path, records.CentroidRecord, model_dir, model_dir)
    if done is not None:
        return done
    started = time.perf_counter()
    runs = [toolkit.run_record(layout.child_dir(point_dir, i))
            for i in range(config.instability.children)]
    children_error = {s: float(np.mean([run.metrics.error(s) for run in runs]))
                      for s in SPLITS}
    recompute, recomputed = _recompute(worker, evaluator)
    found = centroid.evaluate(evaluator, [run.final_checkpoint for run in runs],
                              aligned=True, recompute=recompute)

    def metrics(m: dict[str, float]) -> records.CentroidMetrics:
        return records.CentroidMetrics(
            error={s: m[f"{s}_error"] for s in SPLITS}, loss={s: m[f"{s}_loss"] for s in SPLITS},
            gap={s: m[f"{s}_error"] - children_error[s] for s in SPLITS})

    record = records.CentroidRecord(
        status=layout.COMPLETE, rewind_step=k, replicate=r,
        endpoints=[run.final_checkpoint for run in runs], children_error=children_error,
        bn_recomputed=recomputed, raw=metrics(found["raw"]), aligned=metrics(found["aligned"]),
        matching=[records.MatchingRecord.from_json(m) for m in found["matching"]],
        wall_time_s=round(time.perf_counter() - started, 3))
    store.write(out_path, record, model_dir)
    logging.info("%sk=%d centroid of %d children: test error %.4f (gap %+.4f), aligned "
                 "%.4f (gap %+.4f); children %.4f", evaluation.replicate_prefix(config, r),
                 k, len(runs), record.raw.error["test"], record.raw.gap["test"],
                 record.aligned.error["test"], record.aligned.gap["test"],
                 children_error["test"])
    return record


def summarize(config: ExperimentConfig) -> list[records.CentroidSummaryRecord]:
    """Every k's centroids over replicates, from their records."""
    model_dir, out = config.runtime.model_dir, []
    for k in config.train.rewind_steps:
        found = [store.read_done(layout.centroid_file(layout.rewind_point_dir(model_dir, r, k)),
                                 records.CentroidRecord, model_dir, model_dir)
                 for r in range(config.instability.replicates)]

        def stat(values: list[float]) -> records.Stat:
            return records.Stat.from_json(barrier.summarize(values))

        out.append(records.CentroidSummaryRecord(
            rewind_step=k,
            children_error={s: stat([c.children_error[s] for c in found]) for s in SPLITS},
            error={s: stat([c.raw.error[s] for c in found]) for s in SPLITS},
            gap={s: stat([c.raw.gap[s] for c in found]) for s in SPLITS},
            aligned_error={s: stat([c.aligned.error[s] for c in found]) for s in SPLITS},
            aligned_gap={s: stat([c.aligned.gap[s] for c in found]) for s in SPLITS}))
    return out


def write_centroid(model_dir: str, found: list[records.CentroidSummaryRecord]) -> None:
    """The centroids' gaps against k, in percent, into the paper's charts' runs."""
    paper.write_centroid(model_dir, [
        (c.rewind_step, {s: c.gap[s].mean for s in SPLITS},
         {s: c.aligned_gap[s].mean for s in SPLITS}) for c in found])


# -- task kinds ------------------------------------------------------------------------------

def run_plane(worker: TaskWorker, task: Task) -> None:
    evaluator = evaluation.evaluator(worker)
    fitter = (curve_pairs.fitter(worker, evaluator.trainer) if task.arg("plane") == "curve"
              else None)
    evaluate_plane(evaluator, worker.config, task.arg("replicate"), task.arg("k"),
                   task.arg("plane"), fitter)


def run_centroid(worker: TaskWorker, task: Task) -> None:
    evaluate_centroid(worker, evaluation.evaluator(worker), task.arg("replicate"),
                      task.arg("k"))
