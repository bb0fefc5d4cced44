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
from tf_lottery.summaries import tensorboard

SPLITS = ("test", "train")
SESSION_FIELDS = ("session.rewind_step", "session.level", "session.density",
                  "session.branch")
METRICS = {
    "session/test_barrier": "test error barrier",
    "session/train_barrier": "train error barrier",
    "session/test_accuracy": "test accuracy",
    "session/train_accuracy": "train accuracy",
}
IMP_CATEGORY = "IMP with rewinding"


def write_experiment(writer: tf.summary.SummaryWriter, config: ExperimentConfig,
                     layout: tensorboard.Layout) -> None:
    """An experiment's layout and the hparams columns, into its ``model_dir``."""
    tensorboard.write_layout(writer, layout)
    tensorboard.write_hparams_config(
        writer, [*recipe_fields(), *SESSION_FIELDS], METRICS)


def _session_hparams(config: ExperimentConfig, *, rewind_step: int, level: int,
                     density: float, branch: str) -> dict[str, tensorboard.HParamValue]:
    return {**tensorboard.flat_hparams(config), "session.rewind_step": rewind_step,
            "session.level": level, "session.density": density, "session.branch": branch}


def write_rewind_point_session(run_dir: str, config: ExperimentConfig, k: int,
                               point: dict) -> None:
    """One replicate's rewind point k (``analysis.analyze_rewind_point``'s
    result): its barriers (mean over pairs) and its children's accuracy."""
    children = point["children"]
    metrics = {f"session/{split}_barrier": point["barrier"][split]["mean"] for split in SPLITS}
    metrics.update({
        f"session/{split}_accuracy":
            sum(c["metrics"][f"{split}_accuracy"] for c in children) / len(children)
        for split in SPLITS})
    tensorboard.write_session(
        run_dir, _session_hparams(config, rewind_step=k, level=0, density=1.0,
                                  branch="dense"),
        f"{config.recipe_hash()}/k={k}", metrics, step=k)


def write_level_session(config: ExperimentConfig, level: dict, branch: str) -> None:
    """An IMP level's record (``results.json``'s ``levels[i]``) in the hparams
    table: ``branch`` 'imp' or a baseline is a new session in that network's
    run dir; 'instability' adds the sparse barriers to the level's session."""
    if branch == "instability":
        barrier = level["instability"]["barrier"]
        tensorboard.write_session(
            level["run_dir"], {}, "",
            {f"session/{split}_barrier": barrier[split]["mean"] for split in SPLITS},
            step=level["level"])
        return
    record = level if branch == "imp" else level["baselines"][branch]
    tensorboard.write_session(
        record["run_dir"],
        _session_hparams(config, rewind_step=config.pruning.rewind_step,
                         level=level["level"], density=record["density"], branch=branch),
        f"{config.recipe_hash()}/level={level['level']}/{branch}",
        {f"session/{split}_accuracy": record[f"{split}_accuracy"] for split in SPLITS},
        step=level["level"])


def imp_layout(config: ExperimentConfig) -> tensorboard.Layout:
    """Custom-scalars charts of an IMP run (tags written by ``pruning/imp.py``)."""
    charts = [
        ("test accuracy vs level: IMP and baselines", ["^imp/([a-z_]+/)?test_accuracy$"]),
        ("test accuracy vs density (x: parts per million of weights remaining)",
         ["^imp_vs_density/([a-z_]+/)?test_accuracy$"]),
        ("train accuracy vs level: IMP and baselines", ["^imp/([a-z_]+/)?train_accuracy$"]),
        ("density of the prunable weights vs level", ["^imp/density$"]),
        ("per-layer density vs level", ["^imp/layer_density/"]),
    ]
    if config.pruning.instability:
        k = config.pruning.rewind_step
        charts += [
            (f"sparse error barrier at k={k} vs level", ["^imp/(test|train)_barrier$"]),
            (f"sparse error barrier at k={k} vs density (x: parts per million)",
             ["^imp_vs_density/(test|train)_barrier$"]),
        ]
    charts.append(("test accuracy while training (every run under the logdir)",
                   ["^eval/test_accuracy$"]))
    return {IMP_CATEGORY: charts}
