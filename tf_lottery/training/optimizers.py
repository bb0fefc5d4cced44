"""Builds the tf_keras optimizer named by --optimizer.

The learning rate is a plain variable that the training loop assigns from
the schedule before every step; weight decay and clipping are applied by the
loop on the global-batch gradient, so the optimizer only sees final
gradients.
"""

from __future__ import annotations

import tf_keras

from tf_lottery.config import OptimizerConfig


def make_optimizer(cfg: OptimizerConfig, initial_lr: float) -> tf_keras.optimizers.Optimizer:
    """sgd | momentum (optionally Nesterov) | adam | rmsprop."""
    if cfg.name == "sgd":
        return tf_keras.optimizers.SGD(learning_rate=initial_lr)
    if cfg.name == "momentum":
        return tf_keras.optimizers.SGD(
            learning_rate=initial_lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "adam":
        return tf_keras.optimizers.Adam(
            learning_rate=initial_lr, beta_1=cfg.beta1, beta_2=cfg.beta2,
            epsilon=cfg.epsilon)
    if cfg.name == "rmsprop":
        return tf_keras.optimizers.RMSprop(
            learning_rate=initial_lr, rho=cfg.rmsprop_decay, momentum=cfg.momentum,
            epsilon=cfg.epsilon)
    raise ValueError(f"unknown optimizer {cfg.name!r}")
