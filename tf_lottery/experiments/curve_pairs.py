"""Curve connectivity as stored pieces: a fitted curve between two children, and its summaries.

With ``--curve`` every pair of children at every k gets a ``curve`` task
(``toolkit.curve_tasks``): the quadratic Bézier curve between the two
children, its bend fitted on the recipe's training loss
(``stability.curves.BendFitter``, resumable from ``curve_<i>_<j>/``) and
evaluated at ``--interpolation_points`` t's with BatchNorm statistics
re-estimated where the network has BatchNorm; its record
``curve_<i>_<j>.json`` (``records.CurveRecord``) lies beside the pair's
and carries the pair's linear barrier for reference. The rewind point's
record and ``results.json`` carry the curves' barrier (mean ± std over
pairs and replicates) beside the linear one (``point_curves``,
``over_replicates``).

A curve whose record is complete is returned as stored; a fit killed in
the middle resumes from its last checkpoint to the same bend, bit for bit.
"""

from __future__ import annotations

import time

from absl import logging

from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records, store
from tf_lottery.core.layout import SPLITS
from tf_lottery.experiments import evaluation, toolkit
from tf_lottery.stability import barrier, curves
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.tasks.graph import Task
from tf_lottery.tasks.kinds import TaskWorker
from tf_lottery.training.trainer import Trainer

# Stretches of a fit whose mean loss the record keeps (``CurveRecord.fit_loss``).
FIT_LOG_POINTS = 20


def enabled(config: ExperimentConfig) -> bool:
    """Whether ``config`` asks for curves (its experiment has the curve
    section only with ``--curve``)."""
    return any(part.section == "curve" and getattr(part, "enabled", False)
               for part in config.sections)


def fit_settings(config: ExperimentConfig) -> curves.FitSettings:
    """The ``--curve_*`` knobs as a fit's settings; batches and t from the
    recipe's SGD noise, the same for every pair."""
    cc = config.curve
    return curves.FitSettings(
        steps=cc.steps, learning_rate=cc.rate(config.schedule.learning_rate),
        checkpoint_every=cc.checkpoint_every, noise=toolkit.recipe_noise(config),
        steps_per_loop=config.runtime.steps_per_loop,
        log_every=max(1, cc.steps // FIT_LOG_POINTS))


def fitter(worker: TaskWorker, trainer: Trainer, key: str = "dense") -> curves.BendFitter:
    """The worker's bend fitter over ``trainer``'s model, built once."""
    return worker.cached(("curve_fitter", key),
                         lambda: curves.BendFitter(trainer, fit_settings(worker.config)))


def curve_evaluator(worker: TaskWorker, trainer: Trainer, key: str = "dense") -> PathEvaluator:
    """The worker's curve evaluator over ``trainer``'s model, built once."""
    ic = worker.config.instability
    return worker.cached(("curve_evaluator", key), lambda: curves.curve_evaluator(
        trainer, ic.interpolation_points, ic.bn_recompute_batches,
        toolkit.recipe_noise(worker.config)))


def curve_pair(fit: curves.BendFitter, evaluator: PathEvaluator, checkpoint_a: str,
               checkpoint_b: str, out_path: str, *, root: str,
               line: records.PairRecord | None = None, k: int | None = None,
               children: tuple[int, int] | None = None,
               label: str = "curve") -> records.CurveRecord:
    """The fitted curve a -> b, stored at ``out_path`` (its fit in
    ``layout.curve_dir(out_path)``); ``line`` is the pair's linear path."""
    done = store.read_complete(out_path, records.CurveRecord, root, root)
    if done is not None:
        return done
    started = time.perf_counter()
    w1 = evaluator.endpoint(checkpoint_a)
    w2 = evaluator.endpoint(checkpoint_b)
    fit_dir = layout.curve_dir(out_path)
    found = fit.fit(w1, w2, fit_dir, label=label)
    path = curves.evaluate(evaluator, w1, found.bend, w2, label=label)
    record = records.CurveRecord(
        status=layout.COMPLETE, endpoints=[checkpoint_a, checkpoint_b],
        bend=layout.final_checkpoint(fit_dir) if found.steps else None,
        bn_mode=evaluator.bn_mode, alphas=path["alphas"],
        error={s: path[f"{s}_error"] for s in SPLITS},
        loss={s: path[f"{s}_loss"] for s in SPLITS},
        barrier=dict(path["barrier"]), loss_barrier=dict(path["loss_barrier"]),
        line_barrier=dict(line.barrier) if line is not None else None,
        steps=found.steps, learning_rate=fit.settings.learning_rate,
        fit_loss=[[float(s), v] for s, v in found.losses], rewind_step=k,
        children=list(children) if children else None,
        wall_time_s=round(time.perf_counter() - started, 3))
    store.write(out_path, record, root)
    logging.info("%s: curve test barrier %.4f, train barrier %.4f (line: %s) (%.1f s)",
                 label, record.barrier["test"], record.barrier["train"],
                 "n/a" if line is None else
                 f"test {line.barrier['test']:.4f}, train {line.barrier['train']:.4f}",
                 record.wall_time_s)
    return record


def run_curve(worker: TaskWorker, task: Task, point_dir: str, prefix: str,
              trainer: Trainer, key: str = "dense") -> None:
    """``curve_<i>_<j>.json``: the curve between two children of W_k under
    ``point_dir``, fitted and evaluated in ``trainer``'s model (the
    experiment passes the one its networks need)."""
    config = worker.config
    model_dir = config.runtime.model_dir
    k, (i, j) = task.arg("k"), task.arg("pair")
    ends = [toolkit.run_record(layout.child_dir(point_dir, c)).final_checkpoint
            for c in (i, j)]
    line = store.read_done(layout.pair_file(point_dir, i, j), records.PairRecord,
                           model_dir, model_dir)
    curve_pair(fitter(worker, trainer, key), curve_evaluator(worker, trainer, key),
               ends[0], ends[1], layout.curve_file(point_dir, i, j), root=model_dir,
               line=line, k=k, children=(i, j),
               label=evaluation.pair_label(k, (i, j), prefix) + " curve")


def point_curves(config: ExperimentConfig, point_dir: str
                 ) -> tuple[list[records.CurveRecord], dict[str, records.Stat]]:
    """The curves of every pair of children under ``point_dir`` and their
    barrier, mean ± std over pairs."""
    model_dir = config.runtime.model_dir
    found = [store.read_done(layout.curve_file(point_dir, i, j), records.CurveRecord,
                             model_dir, model_dir)
             for i, j in toolkit.pairs(config.instability.children)]
    return found, {s: records.Stat.from_json(barrier.summarize([c.barrier[s] for c in found]))
                   for s in SPLITS}


def over_replicates(replicates: list[list[records.CurveRecord]]
                    ) -> dict[str, records.Aggregate]:
    """The curves' barrier over replicates and their pairs, as the line's
    (``barrier.aggregate``)."""
    return {s: records.Aggregate.from_json(barrier.aggregate(
        [[c.barrier[s] for c in rep] for rep in replicates])) for s in SPLITS}
