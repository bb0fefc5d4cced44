"""Builders a user might write, imported by tests through ``--model=tests.user_models:NAME``.

``WIDTH`` lets a test edit the builder (as a user editing their code would)
without writing a module.
"""

import tf_keras

WIDTH = 8


def small_cnn(num_classes, image_shape):
    """Conv2D, DepthwiseConv2D and Dense kernels: every prunable kind."""
    inputs = tf_keras.Input(image_shape)
    x = tf_keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv")(inputs)
    x = tf_keras.layers.DepthwiseConv2D(3, activation="relu", name="depthwise")(x)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    x = tf_keras.layers.Dense(WIDTH, activation="relu", name="hidden")(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(num_classes, name="logits")(x))


def not_a_model(num_classes, image_shape):
    return "a string"


def wrong_outputs(num_classes, image_shape):
    inputs = tf_keras.Input(image_shape)
    x = tf_keras.layers.Flatten()(inputs)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(num_classes + 1)(x))


NOT_CALLABLE = 3
