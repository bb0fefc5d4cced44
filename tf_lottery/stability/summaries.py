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


def layout_charts(rewind_steps: tuple[int, ...], independent: bool) -> tensorboard.Layout:
    """Custom-scalars layout: barrier vs k, then one chart per k's paths."""
    paths = [(f"error along the path at k={k} (x: alpha index)",
              [layout.tag_pattern(layout.path_tag(k, "{split}_error"))])
             for k in rewind_steps]
    if independent:
        paths.append(("error along the path between independent networks "
                      "(x: alpha index)",
                      [layout.tag_pattern(layout.path_tag(None, "{split}_error"))]))
    return {
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


def write_run_metadata(model_dir: str, config: ExperimentConfig, independent: bool) -> None:
    """Layout and hparams columns, written into ``model_dir``."""
    writer = chief.summary_writer(model_dir)
    dashboards.write_experiment(writer, config,
                                layout_charts(config.train.rewind_steps, independent))
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
    writer.close()


class PathWriter:
    """Writes one path's error curve, point by point, into its own run dir."""

    def __init__(self, run_dir: str, k: int | None):
        self._writer = chief.summary_writer(run_dir)
        self._k = k

    def __call__(self, index: int, alpha: float, metrics: dict[str, float]) -> None:
        with self._writer.as_default(step=index):
            tf.summary.scalar(layout.path_tag(self._k, "alpha"), alpha)
            for split in SPLITS:
                tf.summary.scalar(layout.path_tag(self._k, f"{split}_error"),
                                  metrics[f"{split}_error"])

    def close(self) -> None:
        self._writer.close()
