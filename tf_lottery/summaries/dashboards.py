"""The paper's TensorBoard dashboards, shared by every experiment.

``tensorboard --logdir=<model_dir>`` (or a folder of several model_dirs):

- **Images** (``summary/``): the report's own figures (``figures/<name>``),
  redrawn each time a piece of the experiment finishes (``figures.py``).
- **Custom scalars** group the paper's charts, read from a few runs under
  ``summary/`` (``core.layout.summary_dir``): error barrier against the
  rewind step k with the independent networks' barrier, the mean error
  along the paths of every k on one chart (instability analysis,
  ``summaries/instability.py``), IMP test accuracy against the level and
  against the ppm of weights pruned, one run (one colour) per branch (IMP
  and each baseline), density per level and layer, and the sparse error
  barrier (one run per branch, written here). TensorBoard merges the layouts of all runs
  under the logdir. Per-run training curves stay in their run directories
  (the Scalars tab).
- **HParams**: every measurement is one *session* (one row): a rewind point
  of the instability analysis (one per replicate and k, in
  ``replicate_<r>/k_<k>/``), and every IMP level and baseline (in its run
  directory). A row holds ``session.experiment``, ``session.rewind_step``,
  ``session.level``, ``session.density`` and ``session.branch`` (``dense``,
  or an IMP branch of ``pruning.branches``: ``imp`` or a baseline), shown
  first, the metrics in percent ``session/{test,train}_barrier_pct`` and
  ``session/{test,train}_accuracy_pct`` (accuracy first in IMP's), and the
  whole recipe (``model.name``, ``optimizer.learning_rate``, …), hidden
  until asked for. Replicates of
  one measurement share a session group, named by what was measured
  (``k=6 (recipe …)``, ``level 2 imp (recipe …)``), so the dashboard can
  average them. Every experiment declares the same columns, so runs of
  different experiments under one logdir compare in one table.
"""

from __future__ import annotations

from tf_lottery import chief
from tf_lottery.config import ExperimentConfig, recipe_fields
from tf_lottery.core import layout, records
from tf_lottery.core.layout import SPLITS
from tf_lottery.summaries import paper, tensorboard
from tf_lottery.summaries.paper import PCT

SESSION_FIELDS = tuple(layout.session_hparam(name) for name in (
    "experiment", "rewind_step", "level", "density", "branch"))
# Metrics in percent, as the report gives them; IMP's columns put accuracy
# first (its question), the instability analysis' the barrier.
BARRIER_METRICS = {layout.session_metric(split, "barrier_pct"): f"{split} error barrier (%)"
                   for split in SPLITS}
ACCURACY_METRICS = {layout.session_metric(split, "accuracy_pct"): f"{split} accuracy (%)"
                    for split in SPLITS}
METRICS = {**BARRIER_METRICS, **ACCURACY_METRICS}
IMP_CATEGORY = paper.IMP_CATEGORY
IMP_MORE_CATEGORY = "IMP: more (fractions)"


def write_metadata(model_dir: str, config: ExperimentConfig,
                   charts: tensorboard.Layout, accuracy_first: bool = False) -> None:
    """An experiment's custom-scalars layout and hparams columns, into its
    summary run (``layout.summary_dir``)."""
    writer = chief.summary_writer(layout.summary_dir(model_dir))
    tensorboard.write_layout(writer, charts)
    metrics = ({**ACCURACY_METRICS, **BARRIER_METRICS} if accuracy_first else METRICS)
    tensorboard.write_hparams_config(writer, [*SESSION_FIELDS, *recipe_fields()], metrics,
                                     shown=SESSION_FIELDS)
    writer.close()


def write_layout(model_dir: str, charts: tensorboard.Layout) -> None:
    """The custom-scalars layout alone, into the summary run: a later
    layout there replaces the earlier one in TensorBoard."""
    writer = chief.summary_writer(layout.summary_dir(model_dir))
    tensorboard.write_layout(writer, charts)
    writer.close()


def _session_hparams(config: ExperimentConfig, *, rewind_step: int, level: int,
                     density: float, branch: str) -> dict[str, tensorboard.HParamValue]:
    return {**tensorboard.flat_hparams(config),
            layout.session_hparam("experiment"): config.experiment,
            layout.session_hparam("rewind_step"): rewind_step,
            layout.session_hparam("level"): level,
            layout.session_hparam("density"): density,
            layout.session_hparam("branch"): branch}


def write_rewind_point_session(run_dir: str, config: ExperimentConfig, k: int,
                               point: records.ReplicateRecord) -> None:
    """One replicate's rewind point k (``analysis.run_rewind_point``'s
    record): its barriers (mean over pairs) and its children's accuracy."""
    children = point.children
    metrics = {layout.session_metric(split, "barrier_pct"): PCT * point.barrier[split].mean
               for split in SPLITS}
    metrics.update({
        layout.session_metric(split, "accuracy_pct"):
            PCT * sum(c.metrics.accuracy(split) for c in children) / len(children)
        for split in SPLITS})
    tensorboard.write_session(
        run_dir, _session_hparams(config, rewind_step=k, level=0, density=1.0,
                                  branch="dense"),
        layout.session_group(config.recipe_hash(), k=k), metrics, step=k)


# -- IMP ------------------------------------------------------------------------------

def write_imp_metadata(config: ExperimentConfig) -> None:
    """The IMP experiment's layout and hparams columns (``imp_layout``), and
    the runs of its paper charts, started side by side (``paper.open_runs``)."""
    write_metadata(config.runtime.model_dir, config, imp_layout(config), accuracy_first=True)
    c = config.pruning
    paper.open_runs(config.runtime.model_dir, paper.imp_runs(
        c.baselines, c.instability, c.instability_levels or range(c.levels + 1)))


def write_level(config: ExperimentConfig, level: records.LevelRecord, branch: str, *,
                instability: bool = False) -> None:
    """An IMP level's finished network (``branch`` 'imp' or a baseline) or,
    with ``instability``, that network's sparse instability in TensorBoard.

    Scalars go to the branch's summary run (``layout.summary_run``), against
    the level and against the ppm of weights pruned (so that the steps grow
    as pruning proceeds): accuracy, or the sparse error barrier (one run,
    one colour, per branch on the barrier charts too); the level's density
    to ``summary/``; the hparams row to the network's own run dir. ``level``
    is the level's record in ``results.json`` holding the finished piece. A
    sparse instability with layer-wise barriers adds each group's barrier
    beside the network's own, as ``imp/layerwise/<split>_barrier/<group>``
    (the instability analysis' ``layout.layerwise_tag`` in IMP's family,
    ``layout.branch_tag``).
    """
    model_dir = config.runtime.model_dir
    step, pruned = level.level, layout.ppm_pruned(level.density)
    network: records.LevelRecord | records.BaselineRecord = (
        level if branch == "imp" else level.baselines[branch])
    if instability:
        assert network.instability is not None
        barrier = network.instability.barrier
        values = {f"{split}_barrier": barrier[split].mean for split in SPLITS}
        layerwise = network.instability.layerwise  # --layerwise_barriers
        if layerwise is not None:
            values.update({layout.layerwise_tag(split, group): layerwise.barrier[group][split].mean
                           for group in layerwise.groups for split in SPLITS})
    else:
        values = {f"{split}_accuracy": network.accuracy(split) for split in SPLITS}
    tensorboard.write_scalars(layout.summary_run(model_dir, branch), {
        tag: [(at, value)] for metric, value in values.items()
        for tag, at in ((layout.branch_tag(metric), step),
                        (layout.branch_tag(metric, vs_pruned=True), pruned))})
    _write_paper_level(config, level, branch, network, instability)
    if branch == "imp" and not instability:
        tensorboard.write_scalars(layout.summary_dir(model_dir), {
            layout.IMP_DENSITY: [(step, level.density)],
            **{layout.imp_layer_density_tag(name): [(step, value)]
               for name, value in level.layer_density.items()}})
    _write_level_session(config, level, branch, network, instability)


def _write_paper_level(config: ExperimentConfig, level: records.LevelRecord, branch: str,
                       network: records.LevelRecord | records.BaselineRecord,
                       instability: bool) -> None:
    """The level in the paper's charts, in percent (``summaries/paper.py``):
    the branch's accuracy or sparse barrier (with the threshold), IMP's
    sparse path at the level, and at level 0 the dense reference."""
    model_dir = config.runtime.model_dir
    pruned = layout.ppm_pruned(level.density)
    if not instability:
        paper.write_imp_point(model_dir, branch, level.level, pruned,
                              {f"{s}_accuracy": network.accuracy(s) for s in SPLITS}, None)
        if branch == "imp" and level.level == 0:
            paper.write_dense_reference(model_dir, {s: level.accuracy(s) for s in SPLITS},
                                        config.pruning.levels)
        return
    found = network.instability
    assert found is not None
    paper.write_imp_point(model_dir, branch, level.level, pruned,
                          {f"{s}_barrier": found.barrier[s].mean for s in SPLITS},
                          config.instability.stability_threshold)
    if branch == "imp" and found.pairs:
        paper.write_sparse_path(model_dir, level.level,
                                {s: _mean_path(found.pairs, s) for s in SPLITS})


def _mean_path(pairs: list[records.PairRecord], split: str) -> list[tuple[int, float]]:
    """The mean error of pairs along the first pair's α grid, as (α ×
    PATH_STEPS, error)."""
    grid = pairs[0].alphas
    same = [p.error[split] for p in pairs if p.alphas == grid]
    return [(int(round(layout.PATH_STEPS * a)), sum(e[i] for e in same) / len(same))
            for i, a in enumerate(grid)]


def _write_level_session(config: ExperimentConfig, level: records.LevelRecord, branch: str,
                         network: records.LevelRecord | records.BaselineRecord,
                         instability: bool) -> None:
    """The hparams row of a network; its sparse instability adds its barriers
    to the network's row."""
    if instability:
        assert network.instability is not None
        barrier = network.instability.barrier
        tensorboard.write_session(
            network.run_dir, {}, "",
            {layout.session_metric(split, "barrier_pct"): PCT * barrier[split].mean
             for split in SPLITS},
            step=level.level)
        return
    tensorboard.write_session(
        network.run_dir,
        _session_hparams(config, rewind_step=config.pruning.rewind_step,
                         level=level.level, density=network.density, branch=branch),
        layout.session_group(config.recipe_hash(), level=level.level, branch=branch),
        {layout.session_metric(split, "accuracy_pct"): PCT * network.accuracy(split)
         for split in SPLITS},
        step=level.level)


def imp_layout(config: ExperimentConfig) -> tensorboard.Layout:
    """Custom-scalars charts of an IMP run (tags written by ``write_level``):
    the paper's, in percent (``paper.imp_charts``: IMP, every baseline and
    the references, one run and colour each), then density and the
    instruments' charts in fractions."""
    charts = [
        ("density of the prunable weights vs level", [layout.tag_pattern(layout.IMP_DENSITY)]),
        ("per-layer density vs level",
         [layout.tag_pattern(layout.imp_layer_density_tag(""), prefix_only=True)]),
    ]
    if config.pruning.instability:
        k = config.pruning.rewind_step
        if config.instability.layerwise_barriers:
            groups = layout.layerwise_tag("{split}", "")
            charts += [
                (f"layer-wise sparse error barrier per group at k={k} vs level "
                 "(one group moves)",
                 [layout.tag_pattern(layout.branch_tag(groups), prefix_only=True)]),
                (f"layer-wise sparse error barrier per group at k={k} vs weights pruned "
                 "(x: parts per million pruned)",
                 [layout.tag_pattern(layout.branch_tag(groups, vs_pruned=True),
                                     prefix_only=True)]),
            ]
    for j in config.pruning.level_barriers:  # written by experiments.instruments
        charts += [
            (f"error barrier between levels L and L + {j} vs L",
             [layout.tag_pattern(layout.level_barrier_tag("{split}", j))]),
            (f"error barrier between levels L and L + {j} vs weights pruned at L "
             "(x: parts per million pruned)",
             [layout.tag_pattern(layout.level_barrier_tag("{split}", j, vs_pruned=True))]),
        ]
    # The instability section exists only with --instability (or level barriers).
    threshold = (config.instability.stability_threshold if config.pruning.instability
                 else None)
    return {IMP_CATEGORY: paper.imp_charts(config.pruning.rewind_step, threshold),
            IMP_MORE_CATEGORY: charts}
