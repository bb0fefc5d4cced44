"""--bn_mode=recompute: re-estimated moving statistics, and nothing else changes."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests.conftest import parse_config, tiny_pipeline
from tf_lottery.data.pipeline import global_batch_at
from tf_lottery.experiments import evaluation
from tf_lottery.models import registry
from tf_lottery.stability import bn, interpolation
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.training.trainer import SgdNoise, Trainer

TINY_BN = "test_tiny_bn"
BATCHES = 3
NOISE = SgdNoise(4, 5)


@registry.register(TINY_BN)
def _tiny_bn(num_classes, image_shape):
    """A conv BatchNorm (fused kernel, 4-D) and a dense one (2-D)."""
    inputs = tf_keras.Input(shape=image_shape)
    x = tf_keras.layers.Conv2D(3, 4, strides=4, name="conv")(inputs)
    x = tf_keras.layers.BatchNormalization(name="bn_conv")(x)
    x = tf_keras.layers.Flatten()(x)
    x = tf_keras.layers.Dense(6, name="dense")(x)
    x = tf_keras.layers.BatchNormalization(name="bn_dense")(x)
    x = tf_keras.layers.ReLU()(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(num_classes, name="logits")(x))


def trainer(tmp_path, strategy=None):
    c = parse_config(f"--model={TINY_BN}", "--train_steps=10", "--batch_size=20",
                     "--eval_batch_size=50", "--train_eval_examples=60",
                     model_dir=str(tmp_path))
    return Trainer(c, strategy or tf.distribute.get_strategy(), tiny_pipeline(c))


def state(t):
    """Every variable of the trainer by name: model, optimizer and step."""
    out = {v.name + f"#{i}": np.array(tf.convert_to_tensor(v))
           for i, v in enumerate(t.model.weights)}
    out.update({f"opt/{v.name}#{i}": v.numpy() for i, v in enumerate(t.optimizer.variables)})
    out["step"] = t.step.numpy()
    return out


def batch_inputs_of_bn_layers(t):
    """Per batch, the inputs of both BatchNorm layers in training mode."""
    probe = tf_keras.Model(t.model.input, [t.model.get_layer("bn_conv").input,
                                           t.model.get_layer("bn_dense").input])
    out = []
    for step in range(BATCHES):
        images, _ = global_batch_at(t.pipeline, step, NOISE.data_order_seed,
                                    NOISE.augment_seed)
        out.append([h.numpy() for h in probe(images, training=True)])
    return out


def test_recompute_sets_the_average_batch_statistics_and_nothing_else(tmp_path):
    t = trainer(tmp_path)
    inputs = batch_inputs_of_bn_layers(t)  # also moves the stats: any start works
    before = state(t)
    recompute = bn.BatchNormRecompute(t, BATCHES, NOISE)
    assert [layer.name for layer in recompute.layers] == ["bn_conv", "bn_dense"]
    recompute()
    after = state(t)
    statistics = {v.name for v in bn.moving_statistics(t.model)}
    changed = {name for name in before if not np.array_equal(before[name], after[name])}
    assert {name.split("#")[0] for name in changed} == statistics
    assert all(layer.momentum == 0.99 for layer in recompute.layers)

    # Each batch's variance as Keras itself accumulates it in training: with
    # Bessel's correction in the fused (4-D) kernel, without in the 2-D one.
    for index, (name, axes, ddof) in enumerate((("bn_conv", (0, 1, 2), 1),
                                                 ("bn_dense", (0,), 0))):
        layer = t.model.get_layer(name)
        means = [batch[index].mean(axis=axes) for batch in inputs]
        variances = [batch[index].var(axis=axes, ddof=ddof) for batch in inputs]
        np.testing.assert_allclose(layer.moving_mean.numpy(), np.mean(means, axis=0),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance.numpy(),
                                   np.mean(variances, axis=0), rtol=1e-4, atol=1e-6)


def test_recompute_under_mirrored_strategy(tmp_path, mirrored):
    t = trainer(tmp_path, mirrored)
    inputs = batch_inputs_of_bn_layers(t)
    before = state(t)
    bn.BatchNormRecompute(t, BATCHES, NOISE)()
    after = state(t)
    statistics = {v.name for v in bn.moving_statistics(t.model)}
    assert {n.split("#")[0] for n in before if not np.array_equal(before[n], after[n])} \
        == statistics
    # Replicas see equal halves of each batch: the mean of their means is the
    # batch mean (the conv layer's input does not depend on any BatchNorm).
    layer = t.model.get_layer("bn_conv")
    expected = np.mean([batch[0].mean(axis=(0, 1, 2)) for batch in inputs], axis=0)
    np.testing.assert_allclose(layer.moving_mean.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_path_with_recompute_re_estimates_at_every_point(tmp_path):
    t = trainer(tmp_path)
    variables = interpolation.path_variables(t.model)
    w1 = interpolation.snapshot(variables)
    w2 = [w + 0.5 for w in w1]  # moving variances stay positive
    recompute = bn.BatchNormRecompute(t, BATCHES, NOISE)
    calls = []

    def prepare():
        recompute()
        calls.append(1)

    curves = PathEvaluator(t, 3, prepare).curves(w1, w2)
    assert len(calls) == 3 and len(curves["test_error"]) == 3
    statistics = bn.moving_statistics(t.model)
    at_w2 = interpolation.snapshot(statistics)
    # Not W2's own (interpolated) statistics, but a deterministic re-estimate.
    stat_ids = {id(v) for v in statistics}
    stored = [w for v, w in zip(variables, w2, strict=True) if id(v) in stat_ids]
    assert not any(np.array_equal(a, b) for a, b in zip(at_w2, stored, strict=True))
    recompute()
    for a, b in zip(at_w2, interpolation.snapshot(statistics), strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_without_batchnorm_is_left_alone(tmp_path):
    c = parse_config("--train_steps=10", "--batch_size=20", model_dir=str(tmp_path))
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    before = state(t)
    recompute = bn.BatchNormRecompute(t, BATCHES, NOISE)
    assert recompute.layers == []
    recompute()
    after = state(t)
    assert all(np.array_equal(before[n], after[n]) for n in before)
    with pytest.raises(ValueError):
        bn.BatchNormRecompute(t, 0, NOISE)


def test_bn_mode_flag_selects_recompute_in_the_path_evaluator(tmp_path):
    c = parse_config("--experiment=instability", f"--model={TINY_BN}", "--train_steps=10",
                     "--batch_size=20", "--eval_batch_size=50", "--train_eval_examples=60",
                     "--bn_mode=recompute", "--bn_recompute_batches=2",
                     "--interpolation_points=3", model_dir=str(tmp_path))
    ends = []
    for seed in (0, 1):
        t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), init_seed=seed)
        ends.append(t.checkpoint.write(str(tmp_path / f"w{seed}" / "ckpt")))
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    evaluator = PathEvaluator.for_config(t, c)
    result = evaluation.evaluate_pair(evaluator, ends[0], ends[1], str(tmp_path / "pair.json"),
                                    k=0, label="bn", root=str(tmp_path))
    assert result.bn_mode == "recompute" and len(result.error["test"]) == 3
    # The model ends at W2 with statistics re-estimated on the recipe's first
    # two training batches, not W2's stored ones.
    statistics = bn.moving_statistics(t.model)
    recomputed = interpolation.snapshot(statistics)
    stored = interpolation.load(t.model, ends[1])
    stat_ids = {id(v) for v in statistics}
    stored = [w for v, w in zip(interpolation.path_variables(t.model), stored, strict=True)
              if id(v) in stat_ids]
    assert not any(np.array_equal(a, b) for a, b in zip(recomputed, stored, strict=True))
    bn.BatchNormRecompute(t, 2, SgdNoise(c.train.data_order_seed, c.train.augment_seed))()
    for a, b in zip(recomputed, interpolation.snapshot(statistics), strict=True):
        np.testing.assert_array_equal(a, b)
