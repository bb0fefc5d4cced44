"""The onset experiment (``--experiment=onset``): the search of ``stability.onset``
as a task graph built from the instability analysis' own pieces.

Dense (``--onset_level=0``): every replicate's parent is the instability
analysis' parent (same seeds, same directory) but keeps W_k at every k of
the grid (``--onset_grid``, or the geometric one). A probe at k is the
instability analysis' rewind point k: children of every replicate, their
pairs (and, with ``--layerwise_barriers``, their layer-wise barriers) and
``k_<k>.json``, so a probe writes exactly what a sweep writes at k, and an
instability run and an onset run of one recipe measure identical barriers
at a k both visit.

Sparse (``--onset_level=L``): IMP levels 0..L are trained first by the IMP
experiment itself (one task, ``imp/results``, running IMP's own graph under
``<model_dir>/imp``; its level 0 keeps W_k at every grid point); a probe at k
trains children from level 0's W_k with level L's mask (kept during
training) and stores the same rewind-point record, with one replicate.

The graph (``plan``) is a pure function of the config and of the barriers
measured so far (the complete ``k_<k>.json`` records of grid points): the
probes the search has used, the one it needs next, and the results task.
Probes after the next are not decided yet, so ``--list_tasks`` does not show
them; each appears once the barrier before it is measured. The results task
depends on every planned probe; run with the search unfinished it writes a
``running`` results.json naming ``next_probe``, and the inline executor plans
again (``tasks.inline``: a graph that grows is run until it stops growing).
A killed search resumes with exactly the probes it would have made, and no
finished piece is redone. After each probe the executor's ``refresh_views``
rewrites the running results.json and the TensorBoard figures; tasks file
their own scalars in the summary run ``summary/`` (``barrier/<split>``
against k from each probe, ``onset/*`` and the layer-wise barriers from the
results task).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from absl import logging

from tf_lottery.config import ExperimentConfig, experiments
from tf_lottery.core import layout, records, store
from tf_lottery.core.layout import SPLITS
from tf_lottery.errors import CorruptFileError
from tf_lottery.experiments import evaluation, imp, instruments, levels, toolkit
from tf_lottery.experiments.base import Experiment, record_kind, run_kind
from tf_lottery.experiments.toolkit import RESULTS, R, task_id
from tf_lottery.pruning import masks as masks_lib
from tf_lottery.pruning.rewind import RewindManager
from tf_lottery.reporting import console, tensorboard_figures
from tf_lottery.stability import onset as search_lib
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.summaries import dashboards, tensorboard
from tf_lottery.summaries import instability as summaries
from tf_lottery.tasks import inline
from tf_lottery.tasks import plan as plan_lib
from tf_lottery.tasks.graph import Task
from tf_lottery.tasks.kinds import TaskWorker
from tf_lottery.training import checkpoints
from tf_lottery.training.trainer import SgdNoise

IMP_TASK = task_id(layout.results_file(layout.onset_imp_dir(R)))


def grid(config: Any) -> tuple[int, ...]:
    return config.onset.steps(config.train.train_steps)


def replicates(config: Any) -> int:
    """Replicates of the dense search; the sparse one has IMP's single parent."""
    return 1 if config.onset.level else config.instability.replicates


def search(config: Any) -> search_lib.Search:
    return search_lib.Search(grid(config), config.instability.stability_threshold,
                             config.onset.checks)


def measurement(record: records.RewindPointRecord) -> search_lib.Measurement:
    """A rewind point's barriers as the search reads them (mean over replicates)."""
    return search_lib.Measurement(record.barrier["test"].stat, record.barrier["train"].stat)


def measured(config: Any) -> dict[int, records.RewindPointRecord]:
    """The complete rewind points of grid steps (read only: a damaged one
    counts as not measured; its task sets it aside when it runs again)."""
    model_dir = config.runtime.model_dir
    found = {}
    for k in grid(config):
        try:
            record = store.read(layout.rewind_point_file(model_dir, k),
                                records.RewindPointRecord, model_dir, model_dir)
        except CorruptFileError:
            continue
        if layout.is_complete(record):
            assert record is not None
            found[k] = record
    return found


def decide(config: Any) -> tuple[search_lib.Decision, dict[int, records.RewindPointRecord]]:
    done = measured(config)
    return search(config).decide({k: measurement(r) for k, r in done.items()}), done


# -- the graph --------------------------------------------------------------------------------

def plan(config: Any) -> list[Task]:
    """Parents (or IMP's levels), every probe decided so far and the next one,
    then the results."""
    decision, _ = decide(config)
    probes = [*decision.probes, *([decision.next] if decision.next is not None else [])]
    sparse = bool(config.onset.level)
    if sparse:
        c = config.pruning
        starts = [IMP_TASK]
        tasks = [Task(IMP_TASK, "onset_imp", (),
                      toolkit.run_steps(config, 0) + config.onset.level
                      * toolkit.run_steps(config, c.rewind_step))]
    else:
        starts = [task_id(layout.parent_dir(R, r)) for r in range(replicates(config))]
        tasks = [Task(starts[r], "onset_parent", (), toolkit.run_steps(config, 0),
                      (("replicate", r),)) for r in range(replicates(config))]
    points = []
    for k in probes:
        pieces: list[Task] = []
        for r in range(replicates(config)):
            point_dir = layout.rewind_point_dir(R, r, k)
            pieces += toolkit.children_tasks(config, point_dir, (starts[r],), k,
                                              "onset_child", "onset_pair", replicate=r)
            if config.instability.layerwise_barriers:
                pieces += toolkit.layerwise_tasks(config, point_dir, k, replicate=r)
        tasks += pieces
        points.append(task_id(layout.rewind_point_file(R, k)))
        tasks.append(Task(points[-1], "onset_rewind_point", tuple(t.id for t in pieces), 0,
                          (("k", k),)))
    tasks.append(Task(RESULTS, "onset_results", (*starts, *points), 0))
    return tasks


# -- task kinds ---------------------------------------------------------------------------------

def _imp_config(config: ExperimentConfig) -> ExperimentConfig:
    """The IMP recipe up to level L alone, under ``<model_dir>/imp``, with
    level 0 keeping W_k at every grid point."""
    t, p = config.train, config.pruning
    return dataclasses.replace(
        config, experiment="imp",
        train=dataclasses.replace(t, rewind_steps=tuple(sorted({*t.rewind_steps,
                                                                 *grid(config)}))),
        runtime=dataclasses.replace(config.runtime, model_dir=layout.onset_imp_dir(
            config.runtime.model_dir)),
        sections=(dataclasses.replace(p, levels=config.onset.level, instability=False,
                                      instability_levels=(), baselines=(),
                                      baseline_levels=(), level_barriers=()),
                  config.instability))


def _level0(config: ExperimentConfig) -> str:
    return layout.level_dir(layout.onset_imp_dir(config.runtime.model_dir), 0)


def run_onset_parent(worker: TaskWorker, task: Task) -> None:
    """Replicate r's parent, trained 0 -> T, keeping W_k at every grid point."""
    config, r = worker.config, task.arg("replicate")
    if r == 0:
        _write_metadata(config)
    spec = toolkit.parent_run(config, r)
    spec = dataclasses.replace(spec, rewind_steps=tuple(sorted({*spec.rewind_steps,
                                                                  *grid(config)})))
    toolkit.trainer(worker).train(spec)


def run_onset_imp(worker: TaskWorker, task: Task) -> None:
    """IMP levels 0..L (the IMP experiment's own graph, under ``imp/``)."""
    _write_metadata(worker.config)
    inline.run(imp.EXPERIMENT, _imp_config(worker.config), worker.strategy, worker.pipeline)


def _noise(config: ExperimentConfig, replicate: int) -> SgdNoise:
    if config.onset.level:
        return toolkit.recipe_noise(config)
    return toolkit.replicate_noise(config, replicate)


def _evaluator(worker: TaskWorker) -> PathEvaluator:
    """The path evaluator over the model the probes' children have: IMP
    level L's masked networks (``--onset_level=L``), else dense ones."""
    if worker.config.onset.level:
        return levels.masked_evaluator(worker)
    return evaluation.evaluator(worker)


def run_onset_child(worker: TaskWorker, task: Task) -> None:
    """Child i of W_k (dense: replicate r's parent's; sparse: level 0's W_k
    with level L's mask, kept while it trains)."""
    config = worker.config
    r, k, i = task.arg("replicate"), task.arg("k"), task.arg("child")
    out_dir = layout.rewind_point_dir(config.runtime.model_dir, r, k)
    if config.onset.level:
        level0 = _level0(config)
        mask = masks_lib.load(layout.mask_file(layout.level_dir(
            layout.onset_imp_dir(config.runtime.model_dir), config.onset.level)))
        rewind = RewindManager(level0, k, config.pruning.rewind_optimizer)
        spec = toolkit.child_run(config, checkpoints.rewind_prefix(level0, k),
                                  _noise(config, r), out_dir, i,
                                  then=rewind.after_restore(mask))
        levels.masked_trainer(worker).train(spec)
    else:
        spec = toolkit.child_run(config, toolkit.rewind_checkpoint(config, r, k),
                                  _noise(config, r), out_dir, i)
        toolkit.trainer(worker).train(spec)


def run_onset_pair(worker: TaskWorker, task: Task) -> None:
    config = worker.config
    r, k, pair = task.arg("replicate"), task.arg("k"), task.arg("pair")
    prefix = f"IMP level {config.onset.level} " if config.onset.level else (
        evaluation.replicate_prefix(config, r))
    evaluation.children_pair(config, _evaluator(worker),
                           layout.rewind_point_dir(config.runtime.model_dir, r, k), k, pair,
                           evaluation.pair_label(k, pair, prefix))


def run_onset_rewind_point(worker: TaskWorker, task: Task) -> None:
    """``k_<k>.json``: a probe's barrier over its replicates."""
    config, k = worker.config, task.arg("k")
    model_dir = config.runtime.model_dir
    reps = []
    for r in range(replicates(config)):
        point = evaluation.children_record(config, layout.rewind_point_dir(model_dir, r, k),
                                         _noise(config, r))
        reps.append(records.ReplicateRecord(replicate=r, children=point.children,
                                            pairs=point.pairs, barrier=point.barrier))
    record = evaluation.rewind_record(config, k, reps)
    summaries.write_barriers(model_dir, record)
    store.write(layout.rewind_point_file(model_dir, k), record, model_dir)
    logging.info("Onset probe k=%d: test barrier %s -> %s", k,
                 console.cell(record.barrier["test"].stat),
                 "stable" if record.stable else "unstable")


def run_layerwise_pair(worker: TaskWorker, task: Task) -> None:
    """A probe's pair's layer-wise barriers, in the model its children have."""
    instruments.run_layerwise_pair(worker, task, _evaluator(worker))


def results(config: ExperimentConfig, wall_time_s: float | None = None
            ) -> records.OnsetResults:
    """What the measurements so far say (``running`` until the search ends)."""
    ic, oc = config.instability, config.onset
    decision, done = decide(config)
    n = replicates(config)
    layerwise = None
    if ic.layerwise_barriers:
        model_dir = config.runtime.model_dir
        layerwise = [instruments.point_layerwise(
            config, k, [layout.rewind_point_dir(model_dir, r, k) for r in range(n)])
            for k in sorted(decision.probes)]
    return records.OnsetResults(
        status=layout.COMPLETE if decision.done else layout.RUNNING,
        level=oc.level, grid=list(grid(config)), threshold=ic.stability_threshold,
        checks=oc.checks, children=ic.children, replicates=n,
        probes=[records.OnsetProbeRecord(rewind_step=k, barrier=done[k].barrier,
                                         stable=done[k].stable) for k in decision.probes],
        next_probe=decision.next, bracket=list(decision.bracket),
        inconsistencies=[list(p) for p in decision.inconsistencies],
        outcome=decision.outcome,
        child_runs=search_lib.child_runs(decision.probes, ic.children, n),
        full_grid_child_runs=search_lib.child_runs(grid(config), ic.children, n),
        table=search_lib.format_table(decision, {k: measurement(r) for k, r in done.items()},
                                      ic.stability_threshold),
        wall_time_s_last_session=wall_time_s, layerwise=layerwise)


def _write_tensorboard(model_dir: str, result: records.OnsetResults) -> None:
    """``onset/<split>_barrier`` (and ``_std``) at every probed k, the
    bracket's ends and the layer-wise barriers of each probe, into the
    summary run (``layout.summary_dir``; the chief's alone)."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for split in SPLITS:
        scalars[layout.onset_tag(split)] = [(p.rewind_step, p.barrier[split].mean)
                                            for p in result.probes]
        scalars[layout.onset_tag(split, std=True)] = [
            (p.rewind_step, p.barrier[split].std or 0.0) for p in result.probes]
    lo, hi = result.bracket
    if lo is not None:
        scalars[layout.ONSET_BRACKET_LOW] = [(0, lo)]
    if hi is not None:
        scalars[layout.ONSET_BRACKET_HIGH] = [(0, hi)]
    tensorboard.write_scalars(layout.summary_dir(model_dir), scalars)
    for summary in result.layerwise or ():
        instruments.write_layerwise(model_dir, summary)


def layout_charts(config: ExperimentConfig) -> tensorboard.Layout:
    """Custom-scalars charts of an onset search: the probes' barrier against
    k (also ``barrier/<split>``, as the instability analysis draws it), the
    bracket and, with --layerwise_barriers, every group's barrier."""
    charts = [
        ("onset search: error barrier at each probed k (x: k)",
         [layout.tag_pattern(layout.onset_tag("{split}"))]),
        ("onset search: barrier std (pairs, replicates) at each probed k",
         [layout.tag_pattern(layout.onset_tag("{split}", std=True))]),
        ("onset bracket: last unstable k, first stable k",
         [layout.tag_pattern(layout.ONSET_BRACKET_LOW),
          layout.tag_pattern(layout.ONSET_BRACKET_HIGH)]),
    ]
    if config.instability.layerwise_barriers:
        charts.append(("layer-wise error barrier per group vs k",
                       [layout.tag_pattern(layout.layerwise_tag("{split}", ""),
                                           prefix_only=True)]))
    return {"onset": charts}


def _write_metadata(config: ExperimentConfig) -> None:
    """The summary run's charts and hparams columns, once, by the first task."""
    dashboards.write_metadata(config.runtime.model_dir, config, layout_charts(config))


def run_onset_results(worker: TaskWorker, task: Task) -> None:
    """``results.json``: complete once the search has ended (TensorBoard then),
    else ``running`` with the next probe named."""
    config = worker.config
    model_dir = config.runtime.model_dir
    result = results(config, plan_lib.recorded_seconds(EXPERIMENT, config, worker.graph))
    if layout.is_complete(result):
        _write_tensorboard(model_dir, result)
        logging.info("Onset search of %s (%d child runs; the full grid: %d):\n%s", model_dir,
                     result.child_runs, result.full_grid_child_runs, result.table)
    store.write(layout.results_file(model_dir), result, model_dir)
    if layout.is_complete(result):
        tensorboard_figures.refresh_figures(model_dir)  # last, as the other experiments' results do


def refresh_views(config: ExperimentConfig, task: Task) -> None:
    """After a probe's record: the running ``results.json`` (the bracket so
    far, the next probe) and the report's figures in TensorBoard, rebuilt
    by the executor that holds the model_dir's lease (``Experiment.refresh``;
    never by a task, so they cannot race the results task)."""
    if task.kind != "onset_rewind_point":
        return
    model_dir = config.runtime.model_dir
    path = layout.results_file(model_dir)
    if layout.is_complete(store.read_summary(path, records.OnsetResults, model_dir)):
        return
    store.write(path, dataclasses.replace(results(config), status=layout.RUNNING), model_dir)
    tensorboard_figures.refresh_figures(model_dir)


def onset(config: ExperimentConfig, strategy: Any = None,
          pipeline: Any = None) -> records.OnsetResults:
    """Runs (or resumes) the search in this process (``tasks.inline``, which
    plans the graph again each time the results task says another probe is
    needed); returns ``results.json``."""
    logging.info("Onset search over k in %s (%d points; a sweep would train %d children)",
                 list(grid(config)), len(grid(config)),
                 len(grid(config)) * config.instability.children * replicates(config))
    result = EXPERIMENT.run(config, strategy, pipeline)
    assert isinstance(result, records.OnsetResults)
    return result


EXPERIMENT = Experiment(
    experiments.get("onset"), plan,
    {"onset_parent": run_kind(run_onset_parent), "onset_imp": record_kind(run_onset_imp),
     "onset_child": run_kind(run_onset_child), "onset_pair": record_kind(run_onset_pair),
     "onset_rewind_point": record_kind(run_onset_rewind_point),
     "onset_results": record_kind(run_onset_results),
     "layerwise_pair": record_kind(run_layerwise_pair)},
    refresh=refresh_views)
