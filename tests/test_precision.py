"""Mixed precision (--precision): 16-bit compute, float32 state, float16 loss scaling."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests.conftest import parse_config, tiny_pipeline
from tf_lottery.errors import ConfigError
from tf_lottery.pruning import wrappers
from tf_lottery.training.trainer import FromSeed, RunSpec, SgdNoise, Trainer


def config(tmp_path, precision, *extra):
    return parse_config(
        "--train_steps=20", "--batch_size=20", "--eval_batch_size=50",
        "--train_eval_examples=100", "--steps_per_loop=5", "--learning_rate=3e-3",
        f"--precision={precision}", *extra, model_dir=str(tmp_path))


def dense_layers(model):
    return [layer for layer in model.submodules if isinstance(layer, tf_keras.layers.Dense)]


@pytest.mark.parametrize("precision,compute", [("mixed_bfloat16", "bfloat16"),
                                               ("mixed_float16", "float16")])
def test_layers_compute_in_16_bits_with_float32_weights_and_masks(tmp_path, precision,
                                                                   compute):
    c = config(tmp_path, precision)
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), wrappers.masked_training())
    assert tf_keras.mixed_precision.global_policy().name == "float32"  # restored
    assert {layer.compute_dtype for layer in dense_layers(t.model)} == {compute}
    wrapped = [layer for layer in t.model.layers
               if isinstance(layer, wrappers.PruneLowMagnitude)]
    assert wrapped and {layer.compute_dtype for layer in wrapped} == {compute}
    assert {v.dtype for v in t.model.weights if v.dtype.is_floating} == {tf.float32}
    assert t.model(np.zeros((1, 28, 28, 1), np.float32)).dtype == compute
    masks = {name: np.tril(np.ones(w.shape, np.float32))
             for name, (w, _) in wrappers.pruning_vars(t.model).items()}
    results = t.train(RunSpec(str(tmp_path / "run"), 20, SgdNoise(0, 0), FromSeed(
        c.train.init_seed, then=lambda tr: wrappers.set_masks(tr.model, masks))))
    assert results.metrics.test_accuracy > 0.5  # the tiny task is learnt
    for name, (weight, _) in wrappers.pruning_vars(t.model).items():
        assert not np.any(weight.numpy()[masks[name] == 0])


def test_float16_scales_the_loss_and_skips_a_step_that_overflows(tmp_path):
    c = config(tmp_path, "mixed_float16")
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    assert isinstance(t.optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
    assert float(t.optimizer.loss_scale) == 2.0 ** 15
    iterator = iter(t.strategy.distribute_datasets_from_function(
        t.pipeline.train_dataset_fn(0, 2, 0, 0)))
    # A scale of 2^120 overflows float16 gradients: the step is skipped and
    # the scale halved.
    t.optimizer._loss_scale.current_loss_scale.assign(2.0 ** 120)
    before = [v.numpy() for v in t.model.trainable_variables]
    t._train_loop(iterator, tf.constant(1, tf.int64))
    for v, value in zip(t.model.trainable_variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), value)
    assert float(t.optimizer.loss_scale) == 2.0 ** 119
    t.optimizer._loss_scale.current_loss_scale.assign(2.0 ** 10)
    t._train_loop(iterator, tf.constant(1, tf.int64))
    assert not np.array_equal(t.model.trainable_variables[0].numpy(), before[0])


def test_bfloat16_updates_are_close_to_float32_updates(tmp_path):
    updates = []
    for precision in ("float32", "mixed_bfloat16"):
        c = config(tmp_path, precision, "--optimizer=momentum", "--learning_rate=0.05")
        t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
        w0 = t.model.weights[0].numpy()
        t.train(RunSpec(str(tmp_path / precision), 20, SgdNoise(0, 0), FromSeed(0)))
        updates.append(t.model.weights[0].numpy() - w0)
    full, half = updates
    assert not np.array_equal(full, half)
    assert np.linalg.norm(full - half) < 0.1 * np.linalg.norm(full)


def test_float16_on_tpu_is_a_config_error():
    with pytest.raises(ConfigError, match="mixed_bfloat16"):
        parse_config("--train_steps=10", "--precision=mixed_float16", "--strategy=tpu",
                     "--tpu=local")
