"""Quadratic Bézier curves between two networks: the point at t, the fitted bend, the curve.

When the straight line between two networks W₁, W₂ has a barrier, a curve
may still join them at low error (Garipov et al. 2018; Draxler et al. 2018).
The curve here is the quadratic Bézier curve with one bend θ,

    W(t) = (1−t)²·W₁ + 2t(1−t)·θ + t²·W₂,   t in [0, 1],

written as W₁ + 2t(1−t)(θ − W₁) + t²(W₂ − W₁) for t < ½ and as
W₂ + 2t(1−t)(θ − W₂) + (1−t)²(W₁ − W₂) from ½ on (``point``), each weight
left exactly at its base where the added term is exactly 0. So W(0) is W₁
and W(1) is W₂ bit for bit, a weight equal in W₁, W₂ and θ (a pruned weight,
0 in all three) is that weight at every t, and with θ the midpoint
(``interpolation.lerp(W₁, W₂, ½)``) the curve is the linear path up to
rounding: W(t) − W₁ = t(1−t)(W₂−W₁) + t²(W₂−W₁) = t(W₂−W₁).

Only θ is trained (``BendFitter``): the objective is the recipe's training
loss (data loss, the model's own losses, weight decay: ``Trainer.gradients``)
at W(t) with t drawn uniformly at every step, minimized with the recipe's
optimizer at ``learning_rate``; the gradient wrt θ is 2t(1−t)·∂L/∂W(t).
Batches come from the recipe's step-indexed pipeline and t from
(seed, step) (``draw_t``), so a fit killed in the middle resumes from its
last checkpoint (θ, optimizer state, step) to the same bend bit for bit,
as a training run does. The model's gradient hooks apply: in a masked
network the gradient of a pruned weight is 0, θ starts masked (the midpoint
of two 0s) and so stays exactly 0, and every point of the curve keeps it 0.
Training uses batch statistics; a point of a network with BatchNorm is
evaluated with its moving statistics re-estimated at that point
(``curve_evaluator``: ``bn.BatchNormRecompute``).

Only trainable variables have a fitted bend; every other floating-point
variable of the path (BatchNorm moving statistics, pruning masks) bends at
the midpoint, i.e. lies on the line (masks: equal at both ends, so
unchanged).

Between a network and itself (W₁ == W₂) nothing is fitted: θ = W₁ and the
curve is the point, with barrier exactly 0. A fit there would move θ off
the network to lower the loss around it, which says something of the
landscape near one network, not of the connection between two.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from tf_lottery import chief
from tf_lottery.stability import bn, interpolation
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.training import checkpoints, optimizers
from tf_lottery.training.trainer import SgdNoise, Trainer

Weights = interpolation.Weights

_T_STREAM = 7  # the SeedSequence stream of t, apart from the data order's own use of the seed


def point(w1: np.ndarray, bend: np.ndarray, w2: np.ndarray, t: float) -> np.ndarray:
    """W(t) of the quadratic Bézier curve W₁ -> θ -> W₂, in W₁'s dtype.

    Exactly W₁ at t=0, W₂ at t=1, and a weight equal in all three (e.g. a
    pruned 0) at every t: where the added term is exactly 0 the base is
    returned untouched (not base + 0, which turns −0 into +0).
    """
    w1 = np.asarray(w1)
    dtype = w1.dtype
    w2, bend = np.asarray(w2, dtype), np.asarray(bend, dtype)
    base, other, s = (w1, w2, t) if t < 0.5 else (w2, w1, 1.0 - t)
    delta = (np.asarray(2.0 * t * (1.0 - t), dtype) * (bend - base)
             + np.asarray(s * s, dtype) * (other - base))
    return np.where(delta == 0, base, base + delta).astype(dtype, copy=False)


def midpoint(w1: Weights, w2: Weights) -> Weights:
    """The bend that makes the curve the line (exactly W₁ where W₁ == W₂)."""
    return [interpolation.lerp(a, b, 0.5) for a, b in zip(w1, w2, strict=True)]


def identical(w1: Weights, w2: Weights) -> bool:
    """Whether two networks are the same bit for bit."""
    return all(a.dtype == b.dtype and a.tobytes() == b.tobytes()
               for a, b in zip(w1, w2, strict=True))


def assign(variables: Sequence[tf.Variable], w1: Weights, bend: Weights, w2: Weights,
           t: float) -> None:
    """Writes W(t) into ``variables`` in place (every replica)."""
    if not len(variables) == len(w1) == len(bend) == len(w2):
        raise ValueError(f"{len(variables)} variables but curve arrays of "
                         f"{len(w1)}, {len(bend)} and {len(w2)}")
    for v, a, th, b in zip(variables, w1, bend, w2, strict=True):
        v.assign(point(a, th, b, t))


def draw_t(seed: int, step: int) -> float:
    """The t of fitting step ``step``: uniform in [0, 1), a pure function of
    (seed, step), so a resumed fit draws what it would have drawn."""
    state = np.random.SeedSequence([seed % 2**63, _T_STREAM, step]).generate_state(
        1, np.uint64)
    return float(int(state[0]) >> 11) * 2.0 ** -53


def curve_evaluator(trainer: Trainer, points: int, bn_batches: int,
                    noise: SgdNoise) -> PathEvaluator:
    """A path evaluator for curves: ``points`` t's; a network with BatchNorm
    has its moving statistics re-estimated at each point on ``bn_batches``
    training batches of ``noise`` (a bend has no statistics of its own)."""
    if bn.batchnorm_layers(trainer.model):
        return PathEvaluator(trainer, points, bn.BatchNormRecompute(trainer, bn_batches, noise),
                             "recompute")
    return PathEvaluator(trainer, points)


def evaluate(evaluator: PathEvaluator, w1: Weights, bend: Weights, w2: Weights, *,
             label: str = "curve",
             on_point: Callable[[int, float, dict[str, float]], None] | None = None
             ) -> dict:
    """``PathEvaluator.curves`` of the curve W₁ -> θ -> W₂ (its "alphas" are the t's)."""
    return evaluator.along(lambda t: assign(evaluator.variables, w1, bend, w2, t),
                           label=label, on_point=on_point)


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """How a bend is fitted.

    Attributes:
      steps: optimizer steps on θ.
      learning_rate: the optimizer's (constant) learning rate.
      checkpoint_every: steps between resume checkpoints of the fit.
      noise: the batches' data order and augmentation; t is drawn from
        ``noise.data_order_seed`` too (``draw_t``).
      steps_per_loop: steps per call of the compiled loop.
      log_every: steps between progress lines.
    """

    steps: int
    learning_rate: float
    checkpoint_every: int
    noise: SgdNoise
    steps_per_loop: int = 100
    log_every: int = 1000


@dataclasses.dataclass(frozen=True)
class Fit:
    """A fitted bend: θ over the path variables, the steps it took, and the
    mean training loss at W(t) of each logged stretch, (last step, loss)."""

    bend: Weights
    steps: int
    losses: list[tuple[int, float]]


class BendFitter:
    """Trains the bend of curves between two networks in one trainer's model.

    Built once per trainer (its compiled loop is reused by every fit); the
    model's trainable variables are overwritten with W(t) at every step, so
    the model holds an arbitrary point afterwards (as after a path
    evaluation, nothing relies on it).
    """

    def __init__(self, trainer: Trainer, settings: FitSettings):
        self.trainer = trainer
        self.settings = settings
        model = trainer.model
        self.variables = interpolation.path_variables(model)
        trainable = {v.ref() for v in model.trainable_variables}
        self._fitted = [i for i, v in enumerate(self.variables) if v.ref() in trainable]
        with trainer.strategy.scope():
            def copies(name: str) -> list[tf.Variable]:
                return [tf.Variable(tf.zeros_like(v), trainable=False, name=f"{name}_{n}")
                        for n, v in enumerate(model.trainable_variables)]
            self._w1, self._w2 = copies("curve_w1"), copies("curve_w2")
            self.bend = copies("curve_bend")
            self.optimizer = optimizers.make_optimizer(trainer.config.optimizer,
                                                       settings.learning_rate)
            self.optimizer.build(self.bend)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="curve_step")
            # Mean loss at W(t) over each stretch of log_every steps, kept in
            # the checkpoint so that a resumed fit reports the whole fit.
            self._history = tf.Variable(
                tf.zeros([max(1, math.ceil(settings.steps / settings.log_every))],
                         tf.float64), trainable=False, name="curve_losses")
        self.checkpoint = tf.train.Checkpoint(bend=self.bend, optimizer=self.optimizer,
                                              step=self.step, losses=self._history)
        self._loop = tf.function(self._loop_impl)

    # -- the compiled steps ----------------------------------------------------------------

    def _replica_step(self, images: tf.Tensor, labels: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        grads, per_example, _ = self.trainer.gradients(images, labels)
        scale = 2.0 * t * (1.0 - t)
        self.optimizer.apply_gradients(
            [(scale * g, th) for g, th in zip(grads, self.bend, strict=True)],
            skip_gradients_aggregation=True)
        return tf.reduce_sum(per_example)

    def _loop_impl(self, iterator, ts: tf.Tensor) -> tf.Tensor:
        total = tf.constant(0.0)
        model_vars = self.trainer.model.trainable_variables
        for i in tf.range(tf.shape(ts)[0]):
            t = ts[i]
            for v, a, th, b in zip(model_vars, self._w1, self.bend, self._w2, strict=True):
                v.assign(a + 2.0 * t * (1.0 - t) * (th - a) + t * t * (b - a))
            per_replica = self.trainer.strategy.run(self._replica_step,
                                                    args=(*next(iterator), t))
            total += self.trainer.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                                                  axis=None)
            self.step.assign_add(1)
        return total

    # -- a fit ------------------------------------------------------------------------------

    def fit(self, w1: Weights, w2: Weights, out_dir: str, *, label: str = "curve",
            keep_checkpoints: int = 2) -> Fit:
        """The bend of the curve W₁ -> W₂ (over ``variables``), trained in
        ``out_dir`` (resume checkpoints, then the final bend committed as a
        run's final checkpoint); resumes a fit killed in the middle, and
        returns at once a fit that finished. Identical endpoints: no fit, the
        curve is the point (the module's docstring says why)."""
        if identical(w1, w2):
            logging.info("%s: both ends are the same network; the curve is the point.",
                         label)
            return Fit([np.array(a) for a in w1], 0, [])
        for i, (a_var, b_var) in enumerate(zip(self._w1, self._w2, strict=True)):
            a_var.assign(w1[self._fitted[i]])
            b_var.assign(w2[self._fitted[i]])
        chief.makedirs(out_dir)
        manager, resumed = checkpoints.resume(self.checkpoint, out_dir, keep_checkpoints)
        if resumed:
            logging.info("%s: resuming the fit of its bend from step %d", label,
                         int(self.step.numpy()))
        else:
            self._start(w1, w2)
        self._train(manager, out_dir, int(self.step.numpy()), label)
        bend = midpoint(w1, w2)
        for var, i in zip(self.bend, self._fitted, strict=True):
            bend[i] = np.array(tf.convert_to_tensor(var))
        return Fit(bend, self.settings.steps, self._losses())

    def _start(self, w1: Weights, w2: Weights) -> None:
        """A new fit: θ at the midpoint, fresh optimizer state, step 0."""
        start = midpoint(w1, w2)
        for var, i in zip(self.bend, self._fitted, strict=True):
            var.assign(start[i])
        for v in self.optimizer.variables:
            v.assign(tf.zeros_like(v))
        self.step.assign(0)
        self._history.assign(tf.zeros_like(self._history))

    def _train(self, manager, out_dir: str, start: int, label: str) -> None:
        s, trainer = self.settings, self.trainer
        end = s.steps
        dataset = trainer.strategy.distribute_datasets_from_function(
            trainer.pipeline.train_dataset_fn(start, max(end, start + 1),
                                              s.noise.data_order_seed, s.noise.augment_seed))
        iterator = iter(dataset)
        step, logged, logged_loss = start, start, 0.0
        started = time.perf_counter()

        def next_multiple(every: int) -> int:
            return (step // every + 1) * every

        while step < end:
            boundary = min(end, next_multiple(s.steps_per_loop),
                           next_multiple(s.checkpoint_every), next_multiple(s.log_every))
            ts = tf.constant([draw_t(s.noise.data_order_seed, n)
                              for n in range(step, boundary)], tf.float32)
            logged_loss += float(self._loop(iterator, ts))
            step = boundary
            if step % s.log_every == 0 or step == end:
                mean = logged_loss / ((step - logged) * trainer.config.train.batch_size)
                self._history[(step - 1) // s.log_every].assign(mean)
                rate = (step - start) / max(time.perf_counter() - started, 1e-9)
                logging.info("%s: bend step %d/%d | loss at W(t) %.4f | %.1f steps/s | "
                             "ETA %.0f s", label, step, end, mean, rate,
                             (end - step) / max(rate, 1e-9))
                logged, logged_loss = step, 0.0
            if step % s.checkpoint_every == 0 and step < end:
                manager.save(checkpoint_number=step)
        if end > start:
            manager.save(checkpoint_number=end)
        checkpoints.save_final(self.checkpoint, out_dir)

    def _losses(self) -> list[tuple[int, float]]:
        s = self.settings
        values = np.array(tf.convert_to_tensor(self._history))
        return [(min((i + 1) * s.log_every, s.steps), round(float(v), 6))
                for i, v in enumerate(values)]
