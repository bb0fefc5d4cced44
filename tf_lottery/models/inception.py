"""Inception-v3 as the stock recipe trains it: keras.applications plus an auxiliary head.

``tf_keras.applications.InceptionV3`` is the paper's architecture (Szegedy
et al. 2016) without the auxiliary classifier, which the stock training
recipe attaches to the 17x17x768 block (``mixed7``) and weights 0.4 in the
loss. This module adds it as in the reference implementation (TF-slim's
``inception_v3``): average pool 5x5 stride 3 -> 1x1 conv 128 + BatchNorm +
ReLU -> 5x5 conv 768 + BatchNorm + ReLU (valid: 5x5 -> 1x1) -> dense to the
classes. Convs and BatchNorm are configured like keras.applications' own
``conv2d_bn`` (no conv bias, BatchNorm without scale, epsilon 1e-3).

Parameter counts with 1000 classes at 299x299 (``registry.count_params``,
BatchNorm moving statistics included; tf_keras 2.21):

- keras.applications InceptionV3, no auxiliary head: 23,851,784;
- with the auxiliary head (``inception_v3``): 27,179,376 -- the paper's
  "27.1M", so the paper's network carried the head.

``inception_v3`` returns ``(logits, aux_logits)`` when called with
``training=True`` and ``logits`` otherwise; the engine adds the auxiliary
loss in training (``--aux_loss_weight``) and ignores the head at evaluation.
Models derived from it by ``tf_keras.models.clone_model`` (e.g. pruning
wrappers) become plain functional models that return both outputs in both
modes; the engine reads the first output as the logits either way.

Inputs must be at least 75x75. Below 299x299 the head's 5x5 pool and conv
shrink to the size of their input, as slim's ``_reduced_kernel_size_for_
small_input`` does, so reduced-size test models build; at 299x299 it is the
stock head.
"""

from __future__ import annotations

import tf_keras

from tf_lottery.errors import ConfigError

AUX_INPUT = "mixed7"
BN_EPSILON = 1e-3  # keras.applications' conv2d_bn


class InceptionV3WithAux(tf_keras.Model):
    """A functional model with outputs [logits, aux_logits] whose ``call``
    drops the auxiliary output outside training."""

    def call(self, inputs, training=None, mask=None):
        logits, aux_logits = super().call(inputs, training=training, mask=mask)
        if training:
            return logits, aux_logits
        return logits


def _conv_bn(x, filters: int, kernel_size: int, name: str):
    x = tf_keras.layers.Conv2D(filters, kernel_size, padding="valid", use_bias=False,
                               name=f"{name}_conv")(x)
    x = tf_keras.layers.BatchNormalization(scale=False, epsilon=BN_EPSILON,
                                           name=f"{name}_bn")(x)
    return tf_keras.layers.ReLU(name=f"{name}_relu")(x)


def aux_head(features, num_classes: int):
    """The auxiliary classifier on ``mixed7``'s 17x17x768 features."""
    pool = min(5, int(features.shape[1]), int(features.shape[2]))
    x = tf_keras.layers.AveragePooling2D(pool, strides=3, name="aux_pool")(features)
    x = _conv_bn(x, 128, 1, "aux_1")
    kernel = min(5, int(x.shape[1]), int(x.shape[2]))
    x = _conv_bn(x, 768, kernel, "aux_2")
    x = tf_keras.layers.Flatten(name="aux_flatten")(x)
    return tf_keras.layers.Dense(num_classes, name="aux_logits")(x)


def inception_v3_base(num_classes: int, image_shape: tuple[int, int, int]) -> tf_keras.Model:
    """keras.applications InceptionV3 (random init) mapping images to logits."""
    if min(image_shape[:2]) < 75:
        raise ConfigError(f"inception_v3 needs inputs of at least 75x75 (--image_size), "
                          f"got {image_shape}")
    return tf_keras.applications.InceptionV3(
        include_top=True, weights=None, input_shape=tuple(image_shape),
        classes=num_classes, classifier_activation=None)


def inception_v3(num_classes: int, image_shape: tuple[int, int, int]) -> tf_keras.Model:
    """Inception-v3 with the auxiliary classifier (27,179,376 weights at 1000
    classes); expects images scaled to [-1, 1] (``--augment=inception``)."""
    base = inception_v3_base(num_classes, image_shape)
    aux_logits = aux_head(base.get_layer(AUX_INPUT).output, num_classes)
    return InceptionV3WithAux(inputs=base.inputs, outputs=[base.output, aux_logits],
                              name="inception_v3")


BUILDERS = {"inception_v3": inception_v3}
