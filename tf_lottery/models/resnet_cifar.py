"""ResNet-N for CIFAR (He et al. 2016, Sec. 4.2), as in the paper's framework open_lth.

A 3x3 conv with 16 filters, then three stages of (N - 2) / 6 basic blocks
with 16, 32 and 64 filters (the first block of stages 2 and 3 halves the
resolution with stride 2), global average pooling and a dense layer.
Each basic block is conv3x3-BN-ReLU-conv3x3-BN plus a shortcut, then ReLU.

Shortcut: where the shape changes (first block of stages 2 and 3) a 1x1
stride-2 conv + BatchNorm projection ("option B" of He et al.), as
open_lth's ``cifar_resnet``; identity elsewhere. This is what matches the
paper's 274K for ResNet-20 (10 classes):

- option B (ours): 272,474 trainable (open_lth's own unit test for
  ``cifar_resnet_20`` gives the same), 274,042 with the BatchNorm moving
  mean and variance;
- option A (zero-padded identity shortcuts): 269,722 trainable, 271,098
  with the moving statistics.

The paper's 274K is the option-B network counted with the moving statistics
(274,042: 0.02 % off; trainable only: 0.6 % off); option A falls 1.1 %
(trainable only: 1.6 %) short.

Convs have no bias (BatchNorm follows). Initialization and BatchNorm settings
are open_lth's (see ``cifar_layers``). Strided 3x3 convs pad one pixel on
every side explicitly, as PyTorch's ``padding=1``, so each output is centred
on the same input pixel as the 1x1 shortcut that is added to it (Keras'
'same' padding would pad only bottom/right and shift it by one).
"""

from __future__ import annotations

import functools

import tf_keras

from tf_lottery.models import cifar_layers as layers

DEPTHS = (20, 32, 44, 56, 110)  # He et al. 2016, Table 6.


def _conv_bn(x, filters: int, kernel_size: int, strides: int, name: str):
    in_channels = int(x.shape[-1])
    if strides > 1 and kernel_size > 1:
        x = tf_keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    x = layers.conv(filters, kernel_size, strides, in_channels, use_bias=False,
                    name=name)(x)
    return layers.batch_norm(f"{name}_bn")(x)


def _basic_block(x, filters: int, downsample: bool, name: str):
    strides = 2 if downsample else 1
    y = _conv_bn(x, filters, 3, strides, f"{name}_conv1")
    y = tf_keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv_bn(y, filters, 3, 1, f"{name}_conv2")
    shortcut = x
    if downsample or int(x.shape[-1]) != filters:
        shortcut = _conv_bn(x, filters, 1, strides, f"{name}_shortcut")
    y = tf_keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return tf_keras.layers.ReLU(name=f"{name}_out")(y)


def cifar_resnet(depth: int, num_classes: int, image_shape: tuple[int, int, int],
                 width: int = 16) -> tf_keras.Model:
    """ResNet-``depth`` (depth = 6n + 2) with ``width``, 2 width, 4 width filters.

    Returns a model mapping normalized images to logits; layer names
    (``stageS_blockB_conv1``, ``..._shortcut``, ``logits``) are stable so
    pruning exclusions can name them.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
    blocks = (depth - 2) // 6
    inputs = tf_keras.Input(shape=image_shape, name="image")
    x = _conv_bn(inputs, width, 3, 1, "conv")
    x = tf_keras.layers.ReLU(name="conv_relu")(x)
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        for block in range(blocks):
            x = _basic_block(x, filters, downsample=stage > 0 and block == 0,
                             name=f"stage{stage + 1}_block{block + 1}")
    x = tf_keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.logits(num_classes, fan_in=4 * width)(x)
    return tf_keras.Model(inputs, outputs, name=f"resnet{depth}")


BUILDERS = {f"resnet{depth}": functools.partial(cifar_resnet, depth) for depth in DEPTHS}
