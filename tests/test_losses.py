"""The training objective: main + weight * auxiliary cross-entropy, label-smoothed."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_lottery.training import losses

S = 0.1  # label smoothing
ON, OFF = 1 - S + S / 3, S / 3  # smoothed targets with 3 classes


def test_loss_is_main_plus_0_4_aux_with_label_smoothing_by_hand():
    labels = tf.constant([0, 2])
    logits = tf.constant([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    aux_logits = tf.constant([[0.0, 0.0, 0.0], [1.0, 0.0, -1.0]])
    # Cross-entropy against targets t: logsumexp(z) - sum_i t_i z_i.
    main = [math.log(math.e ** 2 + math.e + 1) - (ON * 2 + OFF * 1),
            math.log(3.0)]
    aux = [math.log(3.0),
           math.log(math.e + 1 + math.e ** -1) - (OFF * 1 - ON * 1)]
    expected = [m + 0.4 * a for m, a in zip(main, aux, strict=True)]
    assert expected == pytest.approx([0.947051, 2.021654], abs=1e-6)  # worked out on paper
    got = losses.per_example_loss(labels, logits, aux_logits, S, 0.4)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_without_aux_logits_or_weight_the_loss_is_the_main_cross_entropy():
    labels = tf.constant([1])
    logits = tf.constant([[0.5, -1.0, 2.0]])
    main = losses.cross_entropy(labels, logits, S).numpy()
    np.testing.assert_array_equal(
        losses.per_example_loss(labels, logits, None, S, 0.4).numpy(), main)
    np.testing.assert_array_equal(
        losses.per_example_loss(labels, logits, logits * 3, S, 0.0).numpy(), main)


def test_low_precision_logits_are_scored_in_float32():
    labels = tf.constant([0])
    logits = tf.constant([[3.0, 1.0, -2.0]])
    full = losses.cross_entropy(labels, logits, 0.0)
    half = losses.cross_entropy(labels, tf.cast(logits, tf.bfloat16), 0.0)
    assert half.dtype == tf.float32
    np.testing.assert_allclose(half.numpy(), full.numpy(), rtol=1e-6)


def test_split_outputs():
    x = tf.zeros([2, 3])
    assert losses.split_outputs(x) == (x, None)
    assert losses.split_outputs([x, x + 1])[1] is not None
    with pytest.raises(ValueError, match="3 outputs"):
        losses.split_outputs((x, x, x))
