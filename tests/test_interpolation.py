"""The path W(α) evaluated in place: exact endpoints, a known barrier, strategies."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests.conftest import parse_config, tiny_data, tiny_pipeline
from tf_lottery.models import registry
from tf_lottery.stability import barrier, interpolation
from tf_lottery.stability.path_evaluator import SPLITS, PathEvaluator
from tf_lottery.training.trainer import Trainer

LINEAR = "test_two_layer_linear"


@registry.register(LINEAR)
def _two_layer_linear(num_classes, image_shape):
    """logits = x·K·V with no biases and no nonlinearity: (K, V) and (−K, −V)
    compute the same function, and their midpoint is the zero network."""
    inputs = tf_keras.Input(shape=image_shape)
    x = tf_keras.layers.Flatten()(inputs)
    x = tf_keras.layers.Dense(num_classes, use_bias=False, name="k")(x)
    logits = tf_keras.layers.Dense(num_classes, use_bias=False, name="v")(x)
    return tf_keras.Model(inputs, logits)


def config(tmp_path, *extra):
    return parse_config("--train_steps=10", "--batch_size=20", "--eval_batch_size=50",
                        "--train_eval_examples=120", *extra, model_dir=str(tmp_path))


def trainer(c, strategy=None, init_seed=None):
    return Trainer(c, strategy or tf.distribute.get_strategy(), tiny_pipeline(c),
                   init_seed=init_seed)


def evaluate_path(t, w1, w2, points):
    return PathEvaluator(t, points).curves(w1, w2)


def weights(t):
    return interpolation.snapshot(interpolation.path_variables(t.model))


def test_network_interpolated_with_itself_is_constant_with_zero_barrier(tmp_path):
    t = trainer(config(tmp_path))
    w = weights(t)
    alone = t.evaluate("test"), t.evaluate("train_eval")
    curves = evaluate_path(t, w, w, 7)
    for prefix, expected in zip(("test", "train"), alone, strict=True):
        assert curves[f"{prefix}_error"] == [expected["error"]] * 7
        assert curves[f"{prefix}_loss"] == [expected["loss"]] * 7
        assert barrier.error_barrier(curves[f"{prefix}_error"]) == 0.0
    assert curves["alphas"] == list(np.linspace(0, 1, 7))


def test_endpoints_are_the_networks_themselves(tmp_path):
    c = config(tmp_path)
    a, b = trainer(c, init_seed=0), trainer(c, init_seed=1)
    w1, w2 = weights(a), weights(b)
    curves = evaluate_path(a, w1, w2, 3)
    for split, prefix in SPLITS:
        assert curves[f"{prefix}_error"][0] == trainer(c, init_seed=0).evaluate(split)["error"]
        assert curves[f"{prefix}_error"][-1] == b.evaluate(split)["error"]
        assert curves[f"{prefix}_loss"][-1] == b.evaluate(split)["loss"]
    # The model now holds W(1) = W2 bit for bit.
    for x, y in zip(weights(a), w2, strict=True):
        np.testing.assert_array_equal(x, y)


def test_sign_flipped_linear_networks_have_the_known_barrier(tmp_path):
    """(K, V) and (−K, −V) are the same perfect classifier of the tiny task,
    W(½) is the zero network, which predicts class 0 (argmax of equal logits)
    everywhere: E = [0, 0, 1 − P(label 0), 0, 0] and the barrier is 1 − P(0)."""
    c = config(tmp_path, f"--model={LINEAR}")
    t = trainer(c)
    band = 28 // 10  # tiny_data lights rows [band·y, band·(y+1)) for label y
    k = np.zeros((28 * 28, 10), np.float32)
    for y in range(10):
        k[band * y * 28:band * (y + 1) * 28, y] = 1.0
    v = np.eye(10, dtype=np.float32)
    curves = evaluate_path(t, [k, v], [-k, -v], 5)
    data = tiny_data()
    for prefix, labels in (("test", data.test_labels), ("train", data.train_labels[:120])):
        midpoint_error = 1.0 - np.sum(labels == 0) / len(labels)
        assert curves[f"{prefix}_error"] == [0.0, 0.0, midpoint_error, 0.0, 0.0]
        assert barrier.error_barrier(curves[f"{prefix}_error"]) == midpoint_error
        assert curves[f"{prefix}_loss"][2] == pytest.approx(np.log(10.0))


def test_path_under_mirrored_strategy_matches_one_device(tmp_path, mirrored):
    c = config(tmp_path)
    w1, w2 = weights(trainer(c, init_seed=0)), weights(trainer(c, init_seed=1))
    one = evaluate_path(trainer(c), w1, w2, 4)
    two_replicas = trainer(c, mirrored)
    two = evaluate_path(two_replicas, w1, w2, 4)
    assert two_replicas.strategy.num_replicas_in_sync == 2
    for key in ("test_error", "train_error"):
        np.testing.assert_allclose(one[key], two[key], atol=1.5 / 100)
    for key in ("test_loss", "train_loss"):
        np.testing.assert_allclose(one[key], two[key], rtol=1e-5)
    # Every replica holds the last point, W2.
    for v, expected in zip(interpolation.path_variables(two_replicas.model), w2, strict=True):
        for replica_value in v.values:
            np.testing.assert_array_equal(replica_value.numpy(), expected)
