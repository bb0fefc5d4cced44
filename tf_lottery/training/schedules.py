"""Learning rate as a pure function of the global step.

The schedule is evaluated from the engine's own step counter (not the
optimizer's), so a child spawned at step k continues the parent's schedule
from k even when its optimizer state is reset.
"""

from __future__ import annotations

import tensorflow as tf

from tf_lottery.config import ScheduleConfig


# Python branches on the config only: converting it with AutoGraph (as the
# training loop would) cost every launch ~0.3 s of tracing for the same ops.
@tf.autograph.experimental.do_not_convert
def learning_rate(schedule: ScheduleConfig, step, train_steps: int) -> tf.Tensor:
    """LR at ``step`` (int or scalar tensor) as float32.

    - constant: ``lr``
    - step: ``lr * drop_factor ** (number of drop_steps <= step)``
    - linear_decay: from ``lr`` at the end of warmup to
      ``final_learning_rate`` at ``train_steps``
    - exponential: ``lr * decay_rate ** floor(step / decay_steps)``
    A linear warmup ``(step + 1) / warmup_steps`` multiplies the curve for
    ``step < warmup_steps`` (so step 0 already takes a small non-zero step).
    """
    s = tf.cast(step, tf.float32)
    lr = tf.constant(schedule.learning_rate, tf.float32)
    kind = schedule.kind
    if kind == "constant":
        value = lr
    elif kind == "step":
        drops = tf.reduce_sum(tf.cast(
            tf.cast(step, tf.int64) >= tf.constant(schedule.drop_steps, tf.int64),
            tf.float32))
        value = lr * tf.pow(tf.constant(schedule.drop_factor, tf.float32), drops)
    elif kind == "linear_decay":
        start = float(schedule.warmup_steps)
        span = max(float(train_steps) - start, 1.0)
        frac = tf.clip_by_value((s - start) / span, 0.0, 1.0)
        value = lr + (schedule.final_learning_rate - lr) * frac
    elif kind == "exponential":
        value = lr * tf.pow(
            tf.constant(schedule.decay_rate, tf.float32),
            tf.floor(s / float(max(schedule.decay_steps, 1))))
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    if schedule.warmup_steps > 0:
        warm = tf.minimum((s + 1.0) / float(schedule.warmup_steps), 1.0)
        value = value * warm
    return value
