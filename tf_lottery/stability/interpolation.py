"""The linear path W(α) = (1−α)·W₁ + α·W₂ between two networks, evaluated in place.

One model holds every point of the path: its variables are overwritten with
W(α) for each α and evaluated with the trainer's distributed evaluation loop
(``Trainer.evaluate``: ``strategy.run`` inside a ``tf.function``, padded
batches weighted 0), so nothing is rebuilt or retraced per α and the loop
runs unchanged under MirroredStrategy or on a TPU.

Endpoints are held on the host as numpy arrays and W(α) is computed there
with ``lerp``, a pure function; assignment copies the result to every
replica. Every floating-point variable of the model is interpolated,
including non-trainable state such as BatchNorm moving statistics (which
``bn.BatchNormRecompute`` may then re-estimate) and pruning masks (equal in
both children, hence unchanged). Integer state (e.g. a pruning step counter)
is left as loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras
from absl import logging

from tf_lottery.training import checkpoints

Weights = list[np.ndarray]
SPLITS = (("test", "test"), ("train_eval", "train"))


def alphas(points: int) -> np.ndarray:
    """``points`` evenly spaced interpolation coefficients from 0 to 1 inclusive."""
    if points < 2:
        raise ValueError(f"a path needs at least 2 points, got {points}")
    return np.linspace(0.0, 1.0, points)


def lerp(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """(1−α)·a + α·b in a's dtype, exactly a at α=0, exactly b at α=1.

    Written as a + α(b−a) below α=½ and b − (1−α)(b−a) from α=½ on, so both
    endpoints are reproduced bit for bit (the path starts and ends at the
    children themselves) and a == b gives exactly a at every α (a network
    interpolated with itself never moves). The naive (1−α)a + αb has neither
    property in floating point.
    """
    a = np.asarray(a)
    diff = np.asarray(b, dtype=a.dtype) - a
    if alpha < 0.5:
        out = a + np.asarray(alpha, a.dtype) * diff
    else:
        out = np.asarray(b, dtype=a.dtype) - np.asarray(1.0 - alpha, a.dtype) * diff
    return out.astype(a.dtype, copy=False)


def path_variables(model: tf_keras.Model) -> list[tf.Variable]:
    """The model's variables that lie on the path: all floating-point ones."""
    return [v for v in model.weights if v.dtype.is_floating]


def snapshot(variables: Sequence[tf.Variable]) -> Weights:
    """Host copies of the variables (on a distributed model: the aggregate)."""
    return [np.array(tf.convert_to_tensor(v)) for v in variables]


def load(model: tf_keras.Model, checkpoint_path: str) -> Weights:
    """Reads a trainer checkpoint's model weights into ``model``; returns them."""
    checkpoints.restore(tf.train.Checkpoint(model=model), checkpoint_path)
    return snapshot(path_variables(model))


def assign_point(variables: Sequence[tf.Variable], w1: Weights, w2: Weights,
                 alpha: float) -> None:
    """Writes W(α) into ``variables`` in place (every replica)."""
    if not len(variables) == len(w1) == len(w2):
        raise ValueError(f"{len(variables)} variables but endpoints with "
                         f"{len(w1)} and {len(w2)} arrays")
    for v, a, b in zip(variables, w1, w2, strict=True):
        v.assign(lerp(a, b, alpha))


def evaluate_path(
    trainer,
    w1: Weights,
    w2: Weights,
    points: int,
    *,
    prepare: Callable[[], None] | None = None,
    on_point: Callable[[int, float, dict[str, float]], None] | None = None,
    label: str = "path",
) -> dict:
    """Error and loss along W(α) on the test set and the train subset.

    Args:
      trainer: a ``Trainer`` whose model has the endpoints' architecture; its
        variables are overwritten (restore a checkpoint before training again).
      w1, w2: endpoint weights, in the order of ``path_variables(trainer.model)``.
      points: number of evenly spaced α in [0, 1].
      prepare: called after each W(α) is assigned and before it is evaluated
        (e.g. to re-estimate BatchNorm statistics).
      on_point: called with (index, α, metrics) after each point, e.g. to
        write summaries.
      label: names the path in progress lines.

    Returns:
      ``{"alphas": [...], "test_error": [...], "test_loss": [...],
      "train_error": [...], "train_loss": [...]}``, one value per α.
    """
    variables = path_variables(trainer.model)
    curves: dict[str, list[float]] = {"alphas": []}
    for _, prefix in SPLITS:
        curves[f"{prefix}_error"], curves[f"{prefix}_loss"] = [], []
    started = time.perf_counter()
    grid = alphas(points)
    for i, alpha in enumerate(grid):
        assign_point(variables, w1, w2, float(alpha))
        if prepare is not None:
            prepare()
        metrics = {}
        for split, prefix in SPLITS:
            result = trainer.evaluate(split)
            metrics[f"{prefix}_error"] = result["error"]
            metrics[f"{prefix}_loss"] = result["loss"]
        curves["alphas"].append(float(alpha))
        for key, value in metrics.items():
            curves[key].append(value)
        if on_point is not None:
            on_point(i, float(alpha), metrics)
        done = i + 1
        if done % 10 == 0 or done == points:
            elapsed = time.perf_counter() - started
            logging.info("%s: %d/%d points (α=%.3f: test error %.4f, train error %.4f) "
                         "| %.2f s/point | ETA %.0f s", label, done, points, alpha,
                         metrics["test_error"], metrics["train_error"],
                         elapsed / done, elapsed / done * (points - done))
    return curves
