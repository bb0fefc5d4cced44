"""VGG-11/13/16/19 for CIFAR, as in the paper's framework open_lth (``cifar_vgg``).

The conv stack of Simonyan & Zisserman (2015) with BatchNorm after every
conv (3x3, 'same', with bias as PyTorch's ``nn.Conv2d`` default), 2x2 max
pooling between blocks but not after the last one, then average pooling of
the remaining 2x2 map and a single dense layer 512 -> classes: the CIFAR
head of open_lth and of the paper (no 4096-wide dense layers).

VGG-16 on 10 classes has 14,728,266 trainable parameters (open_lth's unit
test gives the same number) and 14,736,714 with the BatchNorm moving
statistics: the paper's 14.7M. Initialization and BatchNorm settings are
open_lth's (see ``cifar_layers``).
"""

from __future__ import annotations

import functools

import tf_keras

from tf_lottery.models import cifar_layers as layers

POOL = "M"
PLANS: dict[int, tuple[int | str, ...]] = {
    11: (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512),
    13: (64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512),
    16: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL,
         512, 512, 512),
    19: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512,
         POOL, 512, 512, 512, 512),
}


def cifar_vgg(depth: int, num_classes: int,
              image_shape: tuple[int, int, int]) -> tf_keras.Model:
    """VGG-``depth`` for CIFAR; conv layers are named ``conv1`` ... ``convD-3``.

    The final average pooling is global: on 32x32 inputs it is open_lth's
    ``AvgPool2d(2)`` of the 2x2 map, and other input sizes still give 512
    features.
    """
    if depth not in PLANS:
        raise ValueError(f"VGG depth must be one of {sorted(PLANS)}, got {depth}")
    inputs = tf_keras.Input(shape=image_shape, name="image")
    x = inputs
    conv_index = pool_index = 0
    for spec in PLANS[depth]:
        if spec == POOL:
            pool_index += 1
            x = tf_keras.layers.MaxPool2D(2, name=f"pool{pool_index}")(x)
            continue
        conv_index += 1
        name = f"conv{conv_index}"
        x = layers.conv(int(spec), 3, 1, int(x.shape[-1]), use_bias=True, name=name)(x)
        x = layers.batch_norm(f"{name}_bn")(x)
        x = tf_keras.layers.ReLU(name=f"{name}_relu")(x)
    x = tf_keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.logits(num_classes, fan_in=int(x.shape[-1]))(x)
    return tf_keras.Model(inputs, outputs, name=f"vgg{depth}")


BUILDERS = {f"vgg{depth}": functools.partial(cifar_vgg, depth) for depth in PLANS}
