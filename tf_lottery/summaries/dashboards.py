"""The paper's TensorBoard dashboards, shared by every experiment.

``tensorboard --logdir=<model_dir>`` (or a folder of several model_dirs):

- **Custom scalars** group the paper's charts: error barrier against the
  rewind step k and the error along each interpolation path (instability
  analysis, ``stability/summaries.py``), IMP test accuracy against the level
  and against the density with its baselines, density per level and layer,
  and the sparse error barrier (IMP, written here). TensorBoard merges the
  layouts of all runs under the logdir.
- **HParams**: every measurement is one *session* (one row): a rewind point
  of the instability analysis (one per replicate and k, in
  ``replicate_<r>/k_<k>/``), and every IMP level and baseline (in its run
  directory). A row holds the whole recipe (``model.name``,
  ``optimizer.learning_rate``, …) plus ``session.rewind_step``,
  ``session.level``, ``session.density`` and ``session.branch`` (``dense``,
  or an IMP branch of ``pruning.branches``: ``imp`` or a baseline), and the metrics
  ``session/{test,train}_barrier`` and ``session/{test,train}_accuracy``.
  Replicates of one measurement share a session group, so the dashboard can
  average them. Every experiment declares the same columns (every recipe
  field of every experiment; a run leaves those of sections it does not use
  empty), so runs of different experiments under one logdir compare in one
  table.
"""

from __future__ import annotations

import tensorflow as tf

from tf_lottery.config import ExperimentConfig, recipe_fields
from tf_lottery.core import layout, records
from tf_lottery.core.layout import SPLITS
from tf_lottery.summaries import tensorboard

SESSION_FIELDS = tuple(layout.session_hparam(name)
                       for name in ("rewind_step", "level", "density", "branch"))
METRICS = {layout.session_metric(split, quantity): f"{split} {title}"
           for quantity, title in (("barrier", "error barrier"), ("accuracy", "accuracy"))
           for split in SPLITS}
IMP_CATEGORY = "IMP with rewinding"


def write_experiment(writer: tf.summary.SummaryWriter, config: ExperimentConfig,
                     charts: tensorboard.Layout) -> None:
    """An experiment's layout and the hparams columns, into its ``model_dir``."""
    tensorboard.write_layout(writer, charts)
    tensorboard.write_hparams_config(
        writer, [*recipe_fields(), *SESSION_FIELDS], METRICS)


def _session_hparams(config: ExperimentConfig, *, rewind_step: int, level: int,
                     density: float, branch: str) -> dict[str, tensorboard.HParamValue]:
    return {**tensorboard.flat_hparams(config),
            layout.session_hparam("rewind_step"): rewind_step,
            layout.session_hparam("level"): level,
            layout.session_hparam("density"): density,
            layout.session_hparam("branch"): branch}


def write_rewind_point_session(run_dir: str, config: ExperimentConfig, k: int,
                               point: records.ReplicateRecord) -> None:
    """One replicate's rewind point k (``analysis.analyze_rewind_point``'s
    result): its barriers (mean over pairs) and its children's accuracy."""
    children = point.children
    metrics = {layout.session_metric(split, "barrier"): point.barrier[split].mean
               for split in SPLITS}
    metrics.update({
        layout.session_metric(split, "accuracy"):
            sum(c.metrics.accuracy(split) for c in children) / len(children)
        for split in SPLITS})
    tensorboard.write_session(
        run_dir, _session_hparams(config, rewind_step=k, level=0, density=1.0,
                                  branch="dense"),
        layout.session_group(config.recipe_hash(), k=k), metrics, step=k)


def write_level_session(config: ExperimentConfig, level: records.LevelRecord,
                        branch: str) -> None:
    """An IMP level's record (``results.json``'s ``levels[i]``) in the hparams
    table: ``branch`` 'imp' or a baseline is a new session in that network's
    run dir; 'instability' adds the sparse barriers to the level's session."""
    if branch == "instability":
        assert level.instability is not None
        barrier = level.instability.barrier
        tensorboard.write_session(
            level.run_dir, {}, "",
            {layout.session_metric(split, "barrier"): barrier[split].mean
             for split in SPLITS},
            step=level.level)
        return
    record = level if branch == "imp" else level.baselines[branch]
    tensorboard.write_session(
        record.run_dir,
        _session_hparams(config, rewind_step=config.pruning.rewind_step,
                         level=level.level, density=record.density, branch=branch),
        layout.session_group(config.recipe_hash(), level=level.level, branch=branch),
        {layout.session_metric(split, "accuracy"): record.accuracy(split)
         for split in SPLITS},
        step=level.level)


def imp_layout(config: ExperimentConfig) -> tensorboard.Layout:
    """Custom-scalars charts of an IMP run (tags written by ``pruning/imp.py``)."""
    charts = [
        ("test accuracy vs level: IMP and baselines", [layout.imp_pattern("test_accuracy")]),
        ("test accuracy vs density (x: parts per million of weights remaining)",
         [layout.imp_pattern("test_accuracy", vs_density=True)]),
        ("train accuracy vs level: IMP and baselines", [layout.imp_pattern("train_accuracy")]),
        ("density of the prunable weights vs level", [layout.tag_pattern(layout.IMP_DENSITY)]),
        ("per-layer density vs level",
         [layout.tag_pattern(layout.imp_layer_density_tag(""), prefix_only=True)]),
    ]
    if config.pruning.instability:
        k = config.pruning.rewind_step
        charts += [
            (f"sparse error barrier at k={k} vs level",
             [layout.imp_pattern("{split}_barrier", baselines=False)]),
            (f"sparse error barrier at k={k} vs density (x: parts per million)",
             [layout.imp_pattern("{split}_barrier", vs_density=True, baselines=False)]),
        ]
    charts.append(("test accuracy while training (every run under the logdir)",
                   [layout.tag_pattern(layout.eval_tag("test", "accuracy"))]))
    return {IMP_CATEGORY: charts}
