"""ResNet-50 v1.5 for ImageNet, as torchvision's ``resnet50`` that the paper trained.

The paper's ImageNet ResNet-50 comes from its authors' framework open_lth,
which uses torchvision's model: bottleneck blocks (1x1, 3x3, 1x1 convs with
BatchNorm) in four stages of 3, 4, 6 and 3 blocks, with the stride of a
downsampling block on its **3x3** conv ("v1.5"; keras.applications'
``ResNet50`` is v1, with the stride on the first 1x1 conv, which sees only a
quarter of the input pixels). Layer names follow keras.applications
(``conv2_block1_1_conv`` ...), except the classifier, named ``logits`` as in
every model of this package.

Convs have no bias (BatchNorm follows each one), so with 1000 classes the
network has 25,557,032 trainable parameters -- the paper's "25.5M" and
torchvision's count -- and 25,610,152 weights with the 53,120 BatchNorm
moving statistics (``registry.count_params``). keras.applications'
``ResNet50`` has 25,636,712 (25,583,592 trainable) because its convs carry
26,560 biases.

Initialization and BatchNorm follow torchvision: ``kaiming_normal_`` with
``mode='fan_out'`` for convs, PyTorch's default uniform init for the
classifier, BatchNorm gamma 1 and beta 0, momentum 0.1 (Keras 0.9) and
epsilon 1e-5. Padding is symmetric as in PyTorch (explicit ``ZeroPadding2D``
before every strided conv and the max pool).
"""

from __future__ import annotations

import math

import tf_keras

from tf_lottery.errors import ConfigError

STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))  # (bottleneck width, blocks)
EXPANSION = 4
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def _conv(filters: int, kernel_size: int, strides: int, name: str) -> tf_keras.layers.Conv2D:
    return tf_keras.layers.Conv2D(
        filters, kernel_size, strides=strides,
        padding="same" if strides == 1 else "valid", use_bias=False,
        kernel_initializer=tf_keras.initializers.VarianceScaling(
            scale=2.0, mode="fan_out", distribution="untruncated_normal"),
        name=name)


def _conv_bn(x, filters: int, kernel_size: int, strides: int, name: str):
    if strides > 1 and kernel_size > 1:
        x = tf_keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    x = _conv(filters, kernel_size, strides, f"{name}_conv")(x)
    return tf_keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)


def _bottleneck(x, width: int, strides: int, name: str):
    """1x1 (width) -> 3x3 (width, ``strides``) -> 1x1 (4 width), plus shortcut."""
    out_channels = EXPANSION * width
    shortcut = x
    if strides != 1 or int(x.shape[-1]) != out_channels:
        shortcut = _conv_bn(x, out_channels, 1, strides, f"{name}_0")
    y = _conv_bn(x, width, 1, 1, f"{name}_1")
    y = tf_keras.layers.ReLU(name=f"{name}_1_relu")(y)
    y = _conv_bn(y, width, 3, strides, f"{name}_2")
    y = tf_keras.layers.ReLU(name=f"{name}_2_relu")(y)
    y = _conv_bn(y, out_channels, 1, 1, f"{name}_3")
    y = tf_keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return tf_keras.layers.ReLU(name=f"{name}_out")(y)


def resnet50(num_classes: int, image_shape: tuple[int, int, int]) -> tf_keras.Model:
    """ResNet-50 v1.5; inputs need at least 32x32 pixels (five halvings)."""
    if min(image_shape[:2]) < 32:
        raise ConfigError(f"resnet50 needs inputs of at least 32x32 (--image_size), "
                          f"got {image_shape}")
    inputs = tf_keras.Input(shape=image_shape, name="image")
    x = _conv_bn(inputs, 64, 7, 2, "conv1")
    x = tf_keras.layers.ReLU(name="conv1_relu")(x)
    x = tf_keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = tf_keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (width, blocks) in enumerate(STAGES):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _bottleneck(x, width, strides, f"conv{stage + 2}_block{block + 1}")
    x = tf_keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    fan_in = EXPANSION * STAGES[-1][0]
    bound = 1.0 / math.sqrt(fan_in)
    torch_default = tf_keras.initializers.RandomUniform(-bound, bound)
    outputs = tf_keras.layers.Dense(
        num_classes, kernel_initializer=torch_default,
        bias_initializer=tf_keras.initializers.RandomUniform(-bound, bound),
        name="logits")(x)
    return tf_keras.Model(inputs, outputs, name="resnet50")


BUILDERS = {"resnet50": resnet50}
