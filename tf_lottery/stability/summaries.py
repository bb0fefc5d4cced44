"""TensorBoard output of the instability analysis.

Tags (``tensorboard --logdir=<model_dir>``; named in ``core.layout``):

- ``interpolation/k_<k>/test_error``, ``.../train_error``, ``.../alpha`` in
  each pair's run directory (``replicate_<r>/k_<k>/pair_<i>_<j>``), against
  the α index (step i is α = i / (points − 1), also recorded as ``alpha``);
  ``interpolation/independent/...`` for independently initialized parents;
- ``barrier/test``, ``barrier/train`` (mean over pairs and replicates) and
  ``barrier/test_std``, ``barrier/train_std`` in ``model_dir`` against the
  rewind step k: the paper's instability-vs-k figure;
- ``children/test_error``, ``children/train_error``: the children's mean
  final error against k.

With ``--align=weights`` also (``stability.aligned_paths``):

- ``interpolation/k_<k>/aligned/test_error``, ... beside each pair's raw
  curve (``interpolation/independent/aligned/...`` for independent parents);
- ``aligned_barrier/test``, ``aligned_barrier/train`` (and ``_std``) against
  k, charted with the raw barrier;
- ``independent/barrier/<split>`` and ``independent/aligned_barrier/<split>``
  (step 0): raw and aligned barrier between independently trained networks.

A custom-scalars layout groups these charts; each replicate's rewind point
is a row of the hparams dashboard (``summaries/dashboards.py``).
"""

from __future__ import annotations

import tensorflow as tf

from tf_lottery import chief
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records
from tf_lottery.core.layout import SPLITS
from tf_lottery.summaries import dashboards, tensorboard


def _path_patterns(k: int | None, aligned: bool) -> list[str]:
    tags = [layout.path_tag(k, "{split}_error")]
    if aligned:
        tags.append(layout.aligned_path_tag(k, "{split}_error"))
    return [layout.tag_pattern(t) for t in tags]


def layout_charts(rewind_steps: tuple[int, ...], independent: bool,
                  aligned: bool = False) -> tensorboard.Layout:
    """Custom-scalars layout: barrier vs k, then one chart per k's paths
    (with ``aligned``, raw and aligned side by side)."""
    paths = [(f"error along the path at k={k} (x: alpha index)", _path_patterns(k, aligned))
             for k in rewind_steps]
    if independent:
        paths.append(("error along the path between independent networks "
                      "(x: alpha index)", _path_patterns(None, aligned)))
    charts = {
        "instability": [
            ("error barrier vs rewind step k",
             [layout.tag_pattern(layout.barrier_tag("{split}"))]),
            ("barrier std (pairs, replicates) vs k",
             [layout.tag_pattern(layout.barrier_tag("{split}", std=True))]),
            ("children's final error vs k",
             [layout.tag_pattern(layout.children_error_tag("{split}"))]),
        ],
        "interpolation paths": paths,
    }
    if aligned:
        charts["instability"].insert(1, (
            "raw vs aligned error barrier vs k",
            [layout.tag_pattern(layout.barrier_tag("{split}")),
             layout.tag_pattern(layout.aligned_barrier_tag("{split}"))]))
        if independent:
            charts["instability"].insert(2, (
                "raw vs aligned barrier between independent networks",
                [layout.tag_pattern(layout.independent_barrier_tag("{split}", a))
                 for a in (False, True)]))
    return charts


def write_run_metadata(model_dir: str, config: ExperimentConfig, independent: bool) -> None:
    """Layout and hparams columns, written into ``model_dir``."""
    writer = chief.summary_writer(model_dir)
    dashboards.write_experiment(writer, config, layout_charts(
        config.train.rewind_steps, independent, config.instability.align != "none"))
    writer.close()


def write_barriers(model_dir: str, record: records.RewindPointRecord) -> None:
    """Barrier and children's error at rewind step k, into ``model_dir``."""
    writer = chief.summary_writer(model_dir)
    with writer.as_default(step=record.rewind_step):
        for split in SPLITS:
            tf.summary.scalar(layout.barrier_tag(split), record.barrier[split].mean)
            tf.summary.scalar(layout.barrier_tag(split, std=True), record.barrier[split].std)
            tf.summary.scalar(layout.children_error_tag(split),
                              record.children_error[split].mean)
            if record.aligned_barrier is not None:
                aligned = record.aligned_barrier[split]
                tf.summary.scalar(layout.aligned_barrier_tag(split), aligned.mean)
                tf.summary.scalar(layout.aligned_barrier_tag(split, std=True), aligned.std)
    writer.close()


def write_independent(model_dir: str, record: records.IndependentRecord) -> None:
    """Raw (and aligned) barrier between independent networks, at step 0."""
    writer = chief.summary_writer(model_dir)
    with writer.as_default(step=0):
        for split in SPLITS:
            tf.summary.scalar(layout.independent_barrier_tag(split),
                              record.barrier[split].mean)
            if record.aligned_barrier is not None:
                tf.summary.scalar(layout.independent_barrier_tag(split, aligned=True),
                                  record.aligned_barrier[split].mean)
    writer.close()


class PathWriter:
    """Writes one path's error curve, point by point, into its own run dir."""

    def __init__(self, run_dir: str, k: int | None, aligned: bool = False):
        self._writer = chief.summary_writer(run_dir)
        self._k = k
        self._tag = layout.aligned_path_tag if aligned else layout.path_tag

    def __call__(self, index: int, alpha: float, metrics: dict[str, float]) -> None:
        with self._writer.as_default(step=index):
            tf.summary.scalar(self._tag(self._k, "alpha"), alpha)
            for split in SPLITS:
                tf.summary.scalar(self._tag(self._k, f"{split}_error"),
                                  metrics[f"{split}_error"])

    def close(self) -> None:
        self._writer.close()
