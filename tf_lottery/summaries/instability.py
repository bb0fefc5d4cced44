"""TensorBoard output of the instability analysis.

Tags (``tensorboard --logdir=<model_dir>``; named in ``core.layout``), in
the experiment's summary run ``summary/`` unless said otherwise:

- ``barrier/test``, ``barrier/train`` (mean over pairs and replicates) and
  ``barrier/test_std``, ``barrier/train_std`` against the rewind step k: the
  paper's instability-vs-k figure; the same ``barrier/*`` tags in
  ``summary/independent/`` hold the barrier between independently trained
  networks at every k, so the two draw as two colours of one chart;
- ``children/test_error``, ``children/train_error``: the children's mean
  final error against k;
- ``paths/k_<k>/test_error``, ``.../train_error`` (and
  ``paths/independent/...``): the mean error along the paths at k, against
  α × ``layout.PATH_STEPS``; one chart overlays every k;
- ``interpolation/k_<k>/test_error``, ``.../train_error``, ``.../alpha`` in
  each pair's own run directory (``replicate_<r>/k_<k>/pair_<i>_<j>``),
  against the α index: each pair's curve, written point by point.

With ``--align=weights`` also (``stability.aligned_paths``):

- ``interpolation/k_<k>/aligned/test_error``, ... beside each pair's raw
  curve (``interpolation/independent/aligned/...`` for independent parents);
- ``aligned_barrier/test``, ``aligned_barrier/train`` (and ``_std``) against
  k, charted with the raw barrier (in ``summary/independent/`` too);
- ``independent/barrier/<split>`` and ``independent/aligned_barrier/<split>``
  (step 0): raw and aligned barrier between independently trained networks.

With ``--layerwise_barriers`` also ``layerwise/<split>_barrier/<group>``
against k (``experiments.instruments``, written by the results task).

The paper's charts read the same quantities in percent, one run per series
(``summary/dense/``, ``summary/threshold/``, ``summary/independent/``,
``summary/k_<k>/``), written by ``summaries/paper.py``.

A custom-scalars layout groups these charts; each replicate's rewind point
is a row of the hparams dashboard (``summaries/dashboards.py``); the
report's figures are images of ``summary/`` (``reporting/tensorboard_figures.py``).
Every writer goes through ``chief.summary_writer``: only the chief writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tf_lottery import chief
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records
from tf_lottery.core.layout import SPLITS
from tf_lottery.summaries import dashboards, paper, tensorboard

MORE_CATEGORY = "instability: more (fractions)"


def layout_charts(rewind_steps: Sequence[int], independent: bool,
                  aligned: bool = False, layerwise: bool = False,
                  threshold: float = 0.02, curve: bool = False,
                  centroid: bool = False) -> tensorboard.Layout:
    """Custom-scalars layout: the paper's charts in percent
    (``summaries/paper.py``), then the rest in fractions (with ``aligned``,
    raw and aligned barriers side by side, and each k's pair curves raw and
    aligned; with ``layerwise``, every layer group's barrier vs k)."""
    charts: dict[str, list[tuple[str, Sequence[str]]]] = {
        **{category: list(found) for category, found in
           paper.instability_charts(independent, threshold, curve, centroid).items()},
        MORE_CATEGORY: [
            ("children's final error (fraction) vs k",
             [layout.tag_pattern(layout.children_error_tag("{split}"))]),
            ("loss barrier vs rewind step k (x: k)",
             [layout.tag_pattern(layout.loss_barrier_tag("{split}"))]),
        ],
    }
    if aligned:
        charts[MORE_CATEGORY].insert(0, (
            "raw vs aligned error barrier vs k",
            [layout.tag_pattern(layout.barrier_tag("{split}")),
             layout.tag_pattern(layout.aligned_barrier_tag("{split}"))]))
        ks: list[int | None] = [*rewind_steps, *([None] if independent else [])]
        charts[MORE_CATEGORY] += [
            (f"each pair's path at {'k=' + str(k) if k is not None else 'independent'}: "
             "raw and aligned (x: alpha index)",
             [layout.tag_pattern(layout.path_tag(k, "{split}_error")),
              layout.tag_pattern(layout.aligned_path_tag(k, "{split}_error"))])
            for k in ks]
    if layerwise:
        charts[MORE_CATEGORY].append((
            "layer-wise error barrier per group vs k (one group moves)",
            [layout.tag_pattern(layout.layerwise_tag("{split}", ""), prefix_only=True)]))
    return charts


def _add_ons(config: ExperimentConfig) -> tuple[bool, bool]:
    """Whether ``config`` asks for curves and for the centroid (the curve
    section is in the config only once ``--curve`` is given)."""
    return (bool(getattr(getattr(config, "curve", None), "enabled", False)),
            bool(getattr(getattr(config, "surface", None), "centroid", False)))


def _charts(config: ExperimentConfig, independent: bool) -> tensorboard.Layout:
    ic = config.instability
    return layout_charts(config.train.rewind_steps, independent, ic.align != "none",
                         ic.layerwise_barriers, ic.stability_threshold, *_add_ons(config))


def write_run_metadata(model_dir: str, config: ExperimentConfig, independent: bool) -> None:
    """Layout and hparams columns, written into ``model_dir``'s summary run."""
    dashboards.write_metadata(model_dir, config, _charts(config, independent))
    paper.open_runs(model_dir, paper.instability_runs(
        config.train.rewind_steps, independent, *_add_ons(config)))
    paper.write_thresholds(model_dir, config.instability.stability_threshold,
                           config.train.rewind_steps, independent)


def write_add_on_layout(model_dir: str, config: ExperimentConfig, independent: bool) -> None:
    """The layout again, with the charts of ``--curve`` and ``--centroid``:
    a finished run relaunched with them gets their charts too (TensorBoard
    shows a run's latest layout). Their runs start only now, so their
    colours are not pinned as a first launch's are (``paper.open_runs``)."""
    if any(_add_ons(config)):
        dashboards.write_layout(model_dir, _charts(config, independent))


def _mean_path(pairs: Sequence[records.PairRecord], split: str) -> list[tuple[int, float]]:
    """The mean error curve of pairs on one α grid, as (α × PATH_STEPS, error)."""
    grid = pairs[0].alphas
    same = [p for p in pairs if p.alphas == grid]
    mean = np.mean([p.error[split] for p in same], axis=0)
    return [(int(round(layout.PATH_STEPS * a)), float(e))
            for a, e in zip(grid, mean, strict=True)]


def write_barriers(model_dir: str, record: records.RewindPointRecord) -> None:
    """Barrier (raw, and aligned with --align=weights), loss barrier,
    children's error and mean path at rewind step k, into the summary run."""
    k = record.rewind_step
    pairs = [p for rep in record.replicates for p in rep.pairs]
    scalars: dict[str, list[tuple[int, float]]] = {}
    for split in SPLITS:
        scalars[layout.barrier_tag(split)] = [(k, record.barrier[split].mean)]
        scalars[layout.barrier_tag(split, std=True)] = [(k, record.barrier[split].std or 0.0)]
        scalars[layout.children_error_tag(split)] = [(k, record.children_error[split].mean)]
        if record.aligned_barrier is not None:
            aligned = record.aligned_barrier[split]
            scalars[layout.aligned_barrier_tag(split)] = [(k, aligned.mean)]
            scalars[layout.aligned_barrier_tag(split, std=True)] = [(k, aligned.std or 0.0)]
        if record.loss_barrier is not None:
            loss = record.loss_barrier[split]
            scalars[layout.loss_barrier_tag(split)] = [(k, loss.mean)]
            scalars[layout.loss_barrier_tag(split, std=True)] = [(k, loss.std or 0.0)]
        if record.curve_barrier is not None:
            curve = record.curve_barrier[split]
            scalars[layout.curve_barrier_tag(split)] = [(k, curve.mean)]
            scalars[layout.curve_barrier_tag(split, std=True)] = [(k, curve.std or 0.0)]
        if pairs:
            scalars[layout.mean_path_tag(k, split)] = _mean_path(pairs, split)
    tensorboard.write_scalars(layout.summary_dir(model_dir), scalars)
    if record.curve_barrier is not None:
        paper.write_curve_barrier(model_dir, k, {s: record.curve_barrier[s].mean
                                                 for s in SPLITS})
    paper.write_rewind_point(
        model_dir, k, {s: record.barrier[s].mean for s in SPLITS},
        {s: record.barrier[s].std or 0.0 for s in SPLITS},
        {s: scalars[layout.mean_path_tag(k, s)] for s in SPLITS} if pairs else {})


def write_independent(model_dir: str, record: records.IndependentRecord,
                      rewind_steps: Sequence[int] = ()) -> None:
    """The barrier between independently trained networks: at step 0 under
    its own tags (raw and aligned), and at every rewind step in
    ``summary/independent/`` (a level line beside the dense curve), with
    their mean path."""
    aligned = record.aligned_barrier
    at_zero = {layout.independent_barrier_tag(split): [(0, record.barrier[split].mean)]
               for split in SPLITS}
    if aligned is not None:
        at_zero.update({layout.independent_barrier_tag(split, aligned=True):
                        [(0, aligned[split].mean)] for split in SPLITS})
    if record.loss_barrier is not None:
        at_zero.update({layout.independent_barrier_tag(split, loss=True):
                        [(0, record.loss_barrier[split].mean)] for split in SPLITS})
    if record.pairs:
        at_zero.update({layout.mean_path_tag(None, split): _mean_path(record.pairs, split)
                        for split in SPLITS})
    tensorboard.write_scalars(layout.summary_dir(model_dir), at_zero)
    every_k = {layout.barrier_tag(split): [(k, record.barrier[split].mean)
                                           for k in rewind_steps] for split in SPLITS}
    if aligned is not None:
        every_k.update({layout.aligned_barrier_tag(split): [(k, aligned[split].mean)
                                                            for k in rewind_steps]
                        for split in SPLITS})
    if rewind_steps:
        tensorboard.write_scalars(layout.summary_run(model_dir, layout.INDEPENDENT_RUN),
                                  every_k)
        paper.write_independent(
            model_dir, {s: record.barrier[s].mean for s in SPLITS}, rewind_steps,
            {s: at_zero[layout.mean_path_tag(None, s)] for s in SPLITS} if record.pairs else {})


class PathWriter:
    """Writes one path's error and loss curves, point by point, into its own run dir."""

    def __init__(self, run_dir: str, k: int | None, aligned: bool = False):
        self._writer = chief.summary_writer(run_dir)
        self._k = k
        self._tag = layout.aligned_path_tag if aligned else layout.path_tag

    def __call__(self, index: int, alpha: float, metrics: dict[str, float]) -> None:
        with self._writer.as_default(step=index):
            tf.summary.scalar(self._tag(self._k, "alpha"), alpha)
            for split in SPLITS:
                for metric in ("error", "loss"):
                    tf.summary.scalar(self._tag(self._k, f"{split}_{metric}"),
                                      metrics[f"{split}_{metric}"])

    def close(self) -> None:
        self._writer.close()
