"""PathEvaluator: writes each W(α) of a linear path into a trainer's model and evaluates it.

One model holds every point of the path: its variables are overwritten with
W(α) = (1−α)·W₁ + α·W₂ (``interpolation.lerp``, computed on the host) for
each α and evaluated with the trainer's distributed evaluation loop
(``Trainer.evaluate``: ``strategy.run`` inside a ``tf.function``, padded
batches weighted 0), so nothing is rebuilt or retraced per α and the loop
runs unchanged under MirroredStrategy or on a TPU. Every floating-point
variable of the model lies on the path (``interpolation.path_variables``),
BatchNorm moving statistics included, which ``prepare`` (e.g.
``bn.BatchNormRecompute`` under ``--bn_mode=recompute``) may re-estimate at
each point; integer state (a pruning step counter) is left as loaded.

The contract with the trainer it borrows:

- during a call the evaluator owns the model's variables (and, while it
  loads endpoints, the step, optimizer state and moving averages, which a
  checkpoint restore sets);
- on return the model holds the last point evaluated, W(α=1) = W₂ (with
  its statistics re-estimated under ``recompute``), and step, optimizer
  state and averages are those of the last checkpoint loaded. Nothing is
  put back: a trainer's next run sets its own start (``RunSpec.start``),
  never reading what the model holds.

The evaluator writes no files; ``analysis.evaluate_pair`` stores a pair's
curves and TensorBoard summaries, ``aligned_paths`` its aligned paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import tensorflow as tf
from absl import logging

from tf_lottery.config import ExperimentConfig
from tf_lottery.stability import barrier, bn, interpolation
from tf_lottery.training.trainer import SgdNoise, Trainer

Weights = interpolation.Weights
# (split evaluated, prefix of its curves)
SPLITS = (("test", "test"), ("train_eval", "train"))


class PathEvaluator:
    """Error and loss along linear paths, evaluated in one trainer's model.

    Attributes:
      trainer: whose model, strategy and evaluation loop are used.
      points: evenly spaced α in [0, 1] per path.
      prepare: called after each W(α) is written and before it is evaluated
        (e.g. to re-estimate BatchNorm statistics), or None.
      bn_mode: how BatchNorm statistics are treated ('interpolate' or
        'recompute'), recorded with every path.
      align: 'weights' when every pair also gets its aligned path
        (``aligned_paths.aligned_pair``), else 'none'.
    """

    def __init__(self, trainer: Trainer, points: int,
                 prepare: Callable[[], None] | None = None, bn_mode: str = "interpolate",
                 align: str = "none"):
        interpolation.alphas(points)  # at least two points
        self.trainer = trainer
        self.points = points
        self.prepare = prepare
        self.bn_mode = bn_mode
        self.align = align
        self.variables = interpolation.path_variables(trainer.model)

    @classmethod
    def for_config(cls, trainer: Trainer, config: ExperimentConfig) -> PathEvaluator:
        """The instability section's paths: ``--interpolation_points`` points,
        ``--bn_mode`` (recompute: on ``--bn_recompute_batches`` batches of the
        recipe's SGD noise), ``--align``."""
        ic, t = config.instability, config.train
        prepare = (bn.BatchNormRecompute(trainer, ic.bn_recompute_batches,
                                         SgdNoise(t.data_order_seed, t.augment_seed))
                   if ic.bn_mode == "recompute" else None)
        return cls(trainer, ic.interpolation_points, prepare, ic.bn_mode, ic.align)

    def endpoint(self, checkpoint: str) -> Weights:
        """The weights the run of ``checkpoint`` reports (its moving averages
        with --ema_decay, else its trained weights), as host arrays in the
        order of ``variables``."""
        self.trainer.restore_evaluated_weights(checkpoint)
        return interpolation.snapshot(self.variables)

    def between(self, checkpoint_a: str, checkpoint_b: str, *, label: str = "path",
                on_point: Callable[[int, float, dict[str, float]], None] | None = None
                ) -> dict:
        """``curves`` of the path between two checkpoints' reported weights."""
        w1 = self.endpoint(checkpoint_a)
        w2 = self.endpoint(checkpoint_b)
        return self.curves(w1, w2, label=label, on_point=on_point)

    def curves(self, w1: Weights, w2: Weights, *, label: str = "path",
               on_point: Callable[[int, float, dict[str, float]], None] | None = None
               ) -> dict:
        """Error and loss along W(α) on the test set and the train subset.

        ``w1``, ``w2`` are in the order of ``variables``; ``on_point`` is
        called with (index, α, metrics) after each point (e.g. to write
        summaries); ``label`` names the path in progress lines.

        Returns ``{"alphas": [...], "test_error": [...], "test_loss": [...],
        "train_error": [...], "train_loss": [...], "barrier": {"test": b,
        "train": b}, "loss_barrier": {"test": b, "train": b}}``, one value
        per α in each curve; both barriers come from this one pass.
        """
        return self.along(lambda alpha: assign_point(self.variables, w1, w2, alpha),
                          label=label, on_point=on_point)

    def along(self, place: Callable[[float], None], *, label: str = "path",
              on_point: Callable[[int, float, dict[str, float]], None] | None = None
              ) -> dict:
        """``curves`` of any path: ``place(α)`` writes the path's point at α
        into ``variables`` (the line: ``assign_point``; a curve:
        ``curves.BezierCurve.place``), which is then prepared and evaluated
        at every α of the grid."""
        curves: dict[str, list[float]] = {"alphas": []}
        for _, prefix in SPLITS:
            curves[f"{prefix}_error"], curves[f"{prefix}_loss"] = [], []
        started = time.perf_counter()
        grid = interpolation.alphas(self.points)
        for i, alpha in enumerate(grid):
            place(float(alpha))
            metrics = self.measure()
            curves["alphas"].append(float(alpha))
            for key, value in metrics.items():
                curves[key].append(value)
            if on_point is not None:
                on_point(i, float(alpha), metrics)
            done = i + 1
            if done % 10 == 0 or done == self.points:
                elapsed = time.perf_counter() - started
                logging.info("%s: %d/%d points (α=%.3f: test error %.4f, train error %.4f) "
                             "| %.2f s/point | ETA %.0f s", label, done, self.points, alpha,
                             metrics["test_error"], metrics["train_error"],
                             elapsed / done, elapsed / done * (self.points - done))
        return {**curves,
                "barrier": {prefix: barrier.error_barrier(curves[f"{prefix}_error"])
                            for _, prefix in SPLITS},
                "loss_barrier": {prefix: barrier.loss_barrier(curves[f"{prefix}_loss"])
                                 for _, prefix in SPLITS}}

    def point(self, w1: Weights, w2: Weights, alpha: float) -> dict[str, float]:
        """Error and loss of W(α) on the test set and the train subset
        (``<split>_error``, ``<split>_loss``); the model keeps W(α)."""
        assign_point(self.variables, w1, w2, alpha)
        return self.measure()

    def at(self, weights: Weights) -> dict[str, float]:
        """Error and loss of the network ``weights`` (in the order of
        ``variables``), any point off the line (a plane's grid, a centroid):
        written into the model, prepared and evaluated as a point of a path."""
        self.write(weights)
        return self.measure()

    def write(self, weights: Weights) -> None:
        """Writes ``weights`` (in the order of ``variables``) into the model."""
        if len(weights) != len(self.variables):
            raise ValueError(f"{len(self.variables)} variables but {len(weights)} arrays")
        for v, w in zip(self.variables, weights, strict=True):
            v.assign(w)

    def measure(self) -> dict[str, float]:
        """Error and loss of what the model holds (after ``prepare``)."""
        if self.prepare is not None:
            self.prepare()
        metrics = {}
        for split, prefix in SPLITS:
            result = self.trainer.evaluate(split)
            metrics[f"{prefix}_error"] = result["error"]
            metrics[f"{prefix}_loss"] = result["loss"]
        return metrics


def assign_point(variables: Sequence[tf.Variable], w1: Weights, w2: Weights,
                 alpha: float) -> None:
    """Writes W(α) into ``variables`` in place (every replica)."""
    if not len(variables) == len(w1) == len(w2):
        raise ValueError(f"{len(variables)} variables but endpoints with "
                         f"{len(w1)} and {len(w2)} arrays")
    for v, a, b in zip(variables, w1, w2, strict=True):
        v.assign(interpolation.lerp(a, b, alpha))
