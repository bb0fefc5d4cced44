"""The training objective per example: cross-entropy of the logits, plus the
weighted cross-entropy of an auxiliary classifier when the model has one."""

from __future__ import annotations

import tensorflow as tf


def split_outputs(outputs) -> tuple[tf.Tensor, tf.Tensor | None]:
    """(logits, aux_logits or None) from a model's output.

    A model returns a logits tensor, or ``(logits, aux_logits)`` for models
    with an auxiliary classifier (``inception_v3`` in training; its clones,
    e.g. with pruning wrappers, in both modes).
    """
    if isinstance(outputs, list | tuple):
        if len(outputs) != 2:
            raise ValueError(f"expected logits or (logits, aux_logits), got "
                             f"{len(outputs)} outputs")
        return outputs[0], outputs[1]
    return outputs, None


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor, label_smoothing: float) -> tf.Tensor:
    """Per-example softmax cross-entropy in float32 against smoothed one-hot labels:
    ``(1 - s) * onehot + s / num_classes``."""
    num_classes = tf.shape(logits)[-1]
    onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
    if label_smoothing:
        onehot = onehot * (1.0 - label_smoothing) + (
            label_smoothing / tf.cast(num_classes, tf.float32))
    return tf.nn.softmax_cross_entropy_with_logits(
        labels=onehot, logits=tf.cast(logits, tf.float32))


def per_example_loss(labels: tf.Tensor, logits: tf.Tensor, aux_logits: tf.Tensor | None,
                     label_smoothing: float, aux_weight: float) -> tf.Tensor:
    """main + aux_weight * aux, both with label smoothing (the stock Inception
    objective: aux_weight 0.4, smoothing 0.1)."""
    loss = cross_entropy(labels, logits, label_smoothing)
    if aux_logits is not None and aux_weight:
        loss += aux_weight * cross_entropy(labels, aux_logits, label_smoothing)
    return loss
