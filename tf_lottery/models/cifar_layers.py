"""Conv, dense and BatchNorm layers initialized as in open_lth, for the CIFAR models.

The paper's CIFAR networks come from open_lth (the authors' PyTorch
framework), whose defaults for ResNet-20 and VGG-16 are ``kaiming_normal``
kernels and ``uniform`` BatchNorm. Reproducing W_0's distribution matters
here: instability at initialization is a property of that distribution.

- Kernels of every conv and dense layer: ``torch.nn.init.kaiming_normal_``
  with its defaults, i.e. an untruncated normal with std sqrt(2 / fan_in)
  (fan_in = kh * kw * in_channels for a conv).
- Biases: open_lth leaves PyTorch's default, uniform in +-1/sqrt(fan_in) of
  the layer's kernel (Keras' default would be zeros).
- BatchNorm: gamma uniform in [0, 1), beta 0 (open_lth's ``uniform``
  batchnorm_init); PyTorch's running-statistics momentum 0.1 and epsilon 1e-5
  (Keras defaults: 0.01 and 1e-3).

Batch statistics are per replica, as every Keras model here; the CIFAR
recipes set ``--cross_replica_bn`` (``models/batchnorm.py``) so that they
come from the global batch of 128 on any number of replicas, as on the
paper's single GPU.
"""

from __future__ import annotations

import math

import tf_keras

# open_lth trains with PyTorch's BatchNorm2d defaults.
BN_MOMENTUM = 0.9  # Keras' decay of the moving statistics = 1 - PyTorch's 0.1.
BN_EPSILON = 1e-5


def kaiming_normal() -> tf_keras.initializers.Initializer:
    """He et al. 2015 normal init, fan-in, untruncated: PyTorch's kaiming_normal_.

    A fresh instance per layer: tf_keras warns, and returns identical values,
    when one unseeded initializer instance is called twice.
    """
    return tf_keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_in", distribution="untruncated_normal")


def torch_bias(fan_in: int) -> tf_keras.initializers.Initializer:
    """PyTorch's default bias init for a layer whose kernel has ``fan_in``."""
    bound = 1.0 / math.sqrt(fan_in)
    return tf_keras.initializers.RandomUniform(-bound, bound)


def conv(filters: int, kernel_size: int, strides: int, fan_in_channels: int,
         use_bias: bool, name: str) -> tf_keras.layers.Conv2D:
    """A conv with 'same' padding for stride 1 and no padding otherwise.

    Strided convs get their padding from an explicit ``ZeroPadding2D`` in the
    caller (see ``resnet_cifar``), as PyTorch's symmetric ``padding=1``.
    """
    fan_in = kernel_size * kernel_size * fan_in_channels
    return tf_keras.layers.Conv2D(
        filters, kernel_size, strides=strides,
        padding="same" if strides == 1 else "valid",
        use_bias=use_bias, kernel_initializer=kaiming_normal(),
        bias_initializer=torch_bias(fan_in) if use_bias else "zeros", name=name)


def batch_norm(name: str) -> tf_keras.layers.BatchNormalization:
    """BatchNorm with open_lth's init and PyTorch's running-statistics settings."""
    return tf_keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
        gamma_initializer=tf_keras.initializers.RandomUniform(0.0, 1.0), name=name)


def logits(num_classes: int, fan_in: int, name: str = "logits") -> tf_keras.layers.Dense:
    """The output layer (named 'logits' in every model, for pruning exclusions)."""
    return tf_keras.layers.Dense(
        num_classes, kernel_initializer=kaiming_normal(),
        bias_initializer=torch_bias(fan_in), name=name)
