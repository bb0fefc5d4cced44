"""The linear path W(α) = (1−α)·W₁ + α·W₂ between two networks: α grid, lerp, variables.

Endpoints are held on the host as numpy arrays and W(α) is computed there
with ``lerp``, a pure function. Every floating-point variable of a model
lies on the path (``path_variables``), including non-trainable state such
as BatchNorm moving statistics and pruning masks (equal in both children,
hence unchanged); integer state (e.g. a pruning step counter) does not.
Writing W(α) into a model and evaluating it is ``path_evaluator``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from tf_lottery.training import checkpoints

Weights = list[np.ndarray]


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
