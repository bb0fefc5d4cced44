"""Instability analysis: children from each W_k, their linear paths, error barriers.

For every replicate r (an independent parent) and every rewind step k:

1. the parent is trained once to T, saving W_k (``Trainer.train`` with the
   recipe's rewind steps);
2. ``--children`` children start from W_k, each with its own SGD noise, and
   train to T; the LR schedule continues from k and the optimizer state at k
   is restored or reset (``--child_optimizer_state``);
3. every pair of children is evaluated at ``--interpolation_points`` points
   of W(α) = (1−α)·W₁ + α·W₂ on the test set and the train subset (with
   ``--curve``, also along a fitted curve between them: ``curve_pairs``);
4. the error barrier of each pair, then mean ± std over pairs and replicates.

Seeds (``toolkit.replicate_noise``, ``toolkit.child_noise``): replicate r's
parent uses the recipe's seeds + r; child i's SGD noise is drawn from its
parent's seeds and i, the same at every k. ``--child_noise`` holds one source (or both) at
child 0's seed for every child, to ask which source drives instability.
With two or more replicates, the final parents of every pair of replicates
are interpolated too: two independently initialized and trained networks,
the contrast that shows what an unstable pair looks like.

Layout under ``model_dir`` (``core.layout``; ``layout.tree("instability")``
draws it): every piece is written atomically as a record (``core.records``),
so a killed analysis resumes where it stopped and never redoes a finished
piece. Parents, children, pairs, rewind points (``k_<k>.json``) and finally
``results.json``, which holds everything.

Each piece is a task (``plan`` plans them; the ``run_<kind>`` functions
below run them, with the pieces of ``experiments.toolkit``): a parent, a child, a pair, a
rewind point's record, the results. A task reads only its dependencies'
records and checkpoints, so tasks run in one process (``instability``,
``tasks.inline``), one per launch (``--task``) or on a Ray cluster, with
the same results.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from absl import logging

from tf_lottery.config import ExperimentConfig, experiments
from tf_lottery.core import layout, records, store
from tf_lottery.errors import FieldError
from tf_lottery.experiments import base, curve_pairs, evaluation, instruments, surface, toolkit
from tf_lottery.experiments.base import Experiment, record_kind, run_kind
from tf_lottery.experiments.toolkit import RESULTS, R, task_id
from tf_lottery.reporting import console, tensorboard_figures
from tf_lottery.stability import aligned_paths, barrier
from tf_lottery.summaries import dashboards
from tf_lottery.summaries import instability as summaries
from tf_lottery.tasks import plan as plan_lib
from tf_lottery.tasks.graph import Task
from tf_lottery.tasks.kinds import TaskWorker

# -- the graph ---------------------------------------------------------------------------------

def plan(config: ExperimentConfig) -> list[Task]:
    """Parents, the independent pairs, then each rewind step k: every
    replicate's children and pairs, then k's record; the results last."""
    if not config.train.rewind_steps:
        raise FieldError("train.rewind_steps", "is empty: the instability analysis needs "
                         "at least one rewind step k")
    replicates = config.instability.replicates
    parents = [task_id(layout.parent_dir(R, r)) for r in range(replicates)]
    tasks = [Task(parents[r], "parent", (), toolkit.run_steps(config, 0), (("replicate", r),))
             for r in range(replicates)]
    tasks += [Task(task_id(layout.independent_pair_file(R, a, b)), "independent_pair",
                   (parents[a], parents[b]), toolkit.pair_steps(config), (("replicates", (a, b)),))
              for a, b in toolkit.pairs(replicates)]
    points = []
    for k in config.train.rewind_steps:
        pieces: list[Task] = []
        for r in range(replicates):
            pieces += toolkit.children_tasks(config, layout.rewind_point_dir(R, r, k),
                                             (parents[r],), k, "child", "pair", replicate=r)
            if curve_pairs.enabled(config):
                pieces += toolkit.curve_tasks(config, layout.rewind_point_dir(R, r, k), k,
                                              replicate=r)
        points.append(task_id(layout.rewind_point_file(R, k)))
        tasks += pieces
        for r in range(replicates) if config.instability.layerwise_barriers else ():
            tasks += toolkit.layerwise_tasks(config, layout.rewind_point_dir(R, r, k), k,
                                             replicate=r)
        for r in range(replicates):
            tasks += surface.tasks(config, layout.rewind_point_dir(R, r, k), parents[r], k, r)
        tasks.append(Task(points[-1], "rewind_point", tuple(t.id for t in pieces), 0,
                          (("k", k),)))
    independent = [t.id for t in tasks if t.kind == "independent_pair"]
    layerwise = [t.id for t in tasks if t.kind in ("layerwise_pair", "plane", "centroid")]
    tasks.append(Task(RESULTS, "instability_results",
                      (*parents, *independent, *points, *layerwise), 0))
    return tasks


# -- task kinds -------------------------------------------------------------------------------

def _table(points: list[records.RewindPointRecord], threshold: float) -> str:
    rows = [(r.rewind_step, r.barrier["test"].to_json(), r.barrier["train"].to_json(),
             r.stable) for r in points]
    return barrier.format_table(rows, threshold)


def run_parent(worker: TaskWorker, task: Task) -> None:
    """Trains replicate r's parent 0 -> T, keeping every W_k."""
    config, r = worker.config, task.arg("replicate")
    if r == 0:  # the experiment's charts and hparams columns, once
        summaries.write_run_metadata(config.runtime.model_dir, config,
                                     config.instability.replicates >= 2)
    toolkit.trainer(worker).train(toolkit.parent_run(config, r))
    for k in config.train.rewind_steps:
        toolkit.rewind_checkpoint(config, r, k)


def run_independent_pair(worker: TaskWorker, task: Task) -> None:
    """The path between the final parents of two replicates."""
    model_dir = worker.config.runtime.model_dir
    a, b = task.arg("replicates")
    ends = [toolkit.run_record(layout.parent_dir(model_dir, r)).final_checkpoint for r in (a, b)]
    evaluation.evaluate_pair(evaluation.evaluator(worker), ends[0], ends[1],
                  layout.independent_pair_file(model_dir, a, b), None,
                  label=f"independent parents ({a},{b})", root=model_dir, replicates=(a, b))


def run_child(worker: TaskWorker, task: Task) -> None:
    """Child i of replicate r's W_k, trained to T with its own SGD noise."""
    config = worker.config
    r, k, i = task.arg("replicate"), task.arg("k"), task.arg("child")
    spec = toolkit.child_run(config, toolkit.rewind_checkpoint(config, r, k),
                             toolkit.replicate_noise(config, r),
                             layout.rewind_point_dir(config.runtime.model_dir, r, k), i)
    toolkit.trainer(worker).train(spec)


def run_pair(worker: TaskWorker, task: Task) -> None:
    """The path between two children of replicate r's W_k."""
    config = worker.config
    r, k, pair = task.arg("replicate"), task.arg("k"), task.arg("pair")
    evaluation.children_pair(config, evaluation.evaluator(worker),
                  layout.rewind_point_dir(config.runtime.model_dir, r, k), k, pair,
                  evaluation.pair_label(k, pair, evaluation.replicate_prefix(config, r)))


def run_rewind_point(worker: TaskWorker, task: Task) -> None:
    """Rewind step k over every replicate: ``k_<k>.json`` and its TensorBoard."""
    config, k = worker.config, task.arg("k")
    model_dir = config.runtime.model_dir
    replicates = []
    for r in range(config.instability.replicates):
        point_dir = layout.rewind_point_dir(model_dir, r, k)
        point = evaluation.children_record(config, point_dir, toolkit.replicate_noise(config, r))
        found, curve_barrier = (curve_pairs.point_curves(config, point_dir)
                                if curve_pairs.enabled(config) else (None, None))
        replicates.append(records.ReplicateRecord(
            replicate=r, children=point.children, pairs=point.pairs, barrier=point.barrier,
            aligned_barrier=point.aligned_barrier, loss_barrier=point.loss_barrier,
            curves=found, curve_barrier=curve_barrier))
    record = evaluation.rewind_record(config, k, replicates)
    if curve_pairs.enabled(config):
        record = dataclasses.replace(record, curve_barrier=curve_pairs.over_replicates(
            [rep.curves or [] for rep in replicates]))
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
    if record.curve_barrier is not None:
        logging.info("Rewind step k=%d: curve test barrier %s, train barrier %s", k,
                     console.cell(record.curve_barrier["test"].stat),
                     console.cell(record.curve_barrier["train"].stat))


def run_instability_results(worker: TaskWorker, task: Task) -> None:
    """``results.json``: parents, every rewind point, the independent pairs."""
    config = worker.config
    model_dir, ic = config.runtime.model_dir, config.instability
    parents = []
    for r in range(ic.replicates):
        spec = toolkit.parent_run(config, r)
        run = toolkit.run_record(spec.run_dir)
        parents.append(records.ParentRecord(
            replicate=r, run_dir=spec.run_dir, final_checkpoint=run.final_checkpoint,
            metrics=run.metrics, init_seed=toolkit.replicate_init_seed(config, r),
            data_order_seed=spec.noise.data_order_seed,
            augment_seed=spec.noise.augment_seed))
    independent = None
    if ic.replicates >= 2:
        found = [store.read_done(layout.independent_pair_file(model_dir, a, b),
                                 records.PairRecord, model_dir, model_dir)
                 for a, b in toolkit.pairs(ic.replicates)]
        independent = records.IndependentRecord(pairs=found, barrier=evaluation.over_pairs(found),
                                                aligned_barrier=aligned_paths.over_pairs(found),
                                                loss_barrier=evaluation.loss_over_pairs(found))
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
        layerwise = instruments.layerwise_summaries(config)
    results = records.InstabilityResults(
        status=layout.COMPLETE,
        settings=records.InstabilitySettings(
            children=ic.children, interpolation_points=ic.interpolation_points,
            stability_threshold=ic.stability_threshold, bn_mode=ic.bn_mode,
            replicates=ic.replicates, child_optimizer_state=ic.child_optimizer_state,
            train_eval_examples=config.data.train_eval_examples, align=ic.align,
            child_noise=ic.child_noise, plane=config.surface.plane,
            centroid=config.surface.centroid),
        parents=parents,
        rewind_steps=points,
        independent=independent,
        table=table,
        wall_time_s_last_session=plan_lib.recorded_seconds(EXPERIMENT, config, worker.graph),
        layerwise=layerwise,
        centroid=surface.summarize(config) if config.surface.centroid else None,
    )
    if results.centroid:
        surface.write_centroid(model_dir, results.centroid)
    summaries.write_add_on_layout(model_dir, config, ic.replicates >= 2)
    store.write(layout.results_file(model_dir), results, model_dir)
    tensorboard_figures.refresh_figures(model_dir)


def refresh_views(config: ExperimentConfig, task: Task) -> None:
    """After a rewind point's record: the report's figures in TensorBoard
    (``reporting.tensorboard_figures``), redrawn by the executor that holds the
    model_dir's lease (the results task redraws them last itself)."""
    if task.kind == "rewind_point":
        tensorboard_figures.refresh_figures(config.runtime.model_dir)


def run_curve(worker: TaskWorker, task: Task) -> None:
    """The fitted curve between two children of replicate r's W_k
    (``curve_pairs.run_curve``), in the dense model."""
    config = worker.config
    r, k = task.arg("replicate"), task.arg("k")
    curve_pairs.run_curve(worker, task, layout.rewind_point_dir(config.runtime.model_dir, r, k),
                          evaluation.replicate_prefix(config, r), toolkit.trainer(worker))


def run_layerwise_pair(worker: TaskWorker, task: Task) -> None:
    """A pair's layer-wise barriers (``instruments.run_layerwise_pair``), in
    the dense model."""
    instruments.run_layerwise_pair(worker, task, evaluation.evaluator(worker))


def instability(config: ExperimentConfig, strategy: Any = None,
                pipeline: Any = None) -> records.InstabilityResults:
    """Runs (or resumes) the instability analysis in this process (every task
    of its graph, ``tasks.inline``); returns ``results.json``."""
    results = EXPERIMENT.run(config, strategy, pipeline)
    assert isinstance(results, records.InstabilityResults)
    return results


def _parent_dir(config: ExperimentConfig, model_dir: str, level: int | None) -> str:
    """Replicate 0's parent: the recipe's network."""
    base.DENSE.run_dir(config, model_dir, level)  # no levels
    return layout.parent_dir(model_dir, 0)


NETWORKS = base.Networks(_parent_dir, base.DENSE.rewind_steps)

EXPERIMENT = Experiment(
    experiments.get("instability"), plan,
    {"parent": run_kind(run_parent), "independent_pair": record_kind(run_independent_pair),
     "child": run_kind(run_child), "pair": record_kind(run_pair),
     "rewind_point": record_kind(run_rewind_point),
     "instability_results": record_kind(run_instability_results, surface.results_current),
     "layerwise_pair": record_kind(run_layerwise_pair), "curve": record_kind(run_curve),
     "plane": record_kind(surface.run_plane, surface.plane_current),
     "centroid": record_kind(surface.run_centroid)},
    refresh=refresh_views, networks=NETWORKS)
