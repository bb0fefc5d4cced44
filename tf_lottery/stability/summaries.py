"""TensorBoard output of the instability analysis.

Tags (``tensorboard --logdir=<model_dir>``):

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

from tf_lottery.config import ExperimentConfig
from tf_lottery.summaries import dashboards, tensorboard

SPLITS = ("test", "train")


def path_prefix(k: int | None) -> str:
    """Tag prefix of the paths at rewind step k (None: independent networks)."""
    return "interpolation/independent" if k is None else f"interpolation/k_{k:09d}"


def layout(rewind_steps: tuple[int, ...], independent: bool) -> tensorboard.Layout:
    """Custom-scalars layout: barrier vs k, then one chart per k's paths."""
    paths = [(f"error along the path at k={k} (x: alpha index)",
              [f"^{path_prefix(k)}/(test|train)_error$"]) for k in rewind_steps]
    if independent:
        paths.append(("error along the path between independent networks "
                      "(x: alpha index)", [f"^{path_prefix(None)}/(test|train)_error$"]))
    return {
        "instability": [
            ("error barrier vs rewind step k", ["^barrier/(test|train)$"]),
            ("barrier std (pairs, replicates) vs k", ["^barrier/(test|train)_std$"]),
            ("children's final error vs k", ["^children/(test|train)_error$"]),
        ],
        "interpolation paths": paths,
    }


def write_run_metadata(model_dir: str, config: ExperimentConfig, independent: bool) -> None:
    """Layout and hparams columns, written into ``model_dir``."""
    writer = tf.summary.create_file_writer(model_dir)
    dashboards.write_experiment(writer, config,
                                layout(config.train.rewind_steps, independent))
    writer.close()


def write_barriers(model_dir: str, k: int, record: dict) -> None:
    """Barrier and children's error at rewind step k, into ``model_dir``."""
    writer = tf.summary.create_file_writer(model_dir)
    with writer.as_default(step=k):
        for split in SPLITS:
            tf.summary.scalar(f"barrier/{split}", record["barrier"][split]["mean"])
            tf.summary.scalar(f"barrier/{split}_std", record["barrier"][split]["std"])
            tf.summary.scalar(f"children/{split}_error",
                              record["children_error"][split]["mean"])
    writer.close()


class PathWriter:
    """Writes one path's error curve, point by point, into its own run dir."""

    def __init__(self, run_dir: str, k: int | None):
        self._writer = tf.summary.create_file_writer(run_dir)
        self._prefix = path_prefix(k)

    def __call__(self, index: int, alpha: float, metrics: dict[str, float]) -> None:
        with self._writer.as_default(step=index):
            tf.summary.scalar(f"{self._prefix}/alpha", alpha)
            for split in SPLITS:
                tf.summary.scalar(f"{self._prefix}/{split}_error", metrics[f"{split}_error"])

    def close(self) -> None:
        self._writer.close()
