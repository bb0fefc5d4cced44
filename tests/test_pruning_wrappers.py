"""TFMOT wrappers with fixed masks: what is wrapped, and pruned weights stay 0."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests.conftest import parse_config, tiny_pipeline
from tf_lottery import config as config_lib
from tf_lottery.errors import FieldError
from tf_lottery.experiments import imp
from tf_lottery.models import registry
from tf_lottery.pruning import wrappers
from tf_lottery.training.trainer import FromCheckpoint, FromSeed, RunSpec, SgdNoise, Trainer

NOISE = SgdNoise(0, 0)


if "conv_bn_for_tests" not in registry.names():
    @registry.register("conv_bn_for_tests")
    def conv_bn_for_tests(num_classes, image_shape):
        """Conv -> BatchNorm -> ReLU -> Dense: a small net with every kind of state."""
        inputs = tf_keras.Input(shape=image_shape)
        x = tf_keras.layers.Conv2D(4, 3, strides=3, name="conv")(inputs)
        x = tf_keras.layers.BatchNormalization(name="bn")(x)
        x = tf_keras.layers.ReLU(name="relu")(x)
        x = tf_keras.layers.Flatten(name="flatten")(x)
        logits = tf_keras.layers.Dense(num_classes, name="logits")(x)
        return tf_keras.Model(inputs, logits, name="conv_bn_for_tests")


def config(tmp_path, *extra):
    return parse_config(
        "--experiment=imp", "--train_steps=12", "--batch_size=20", "--eval_batch_size=50",
        "--train_eval_examples=100", "--steps_per_loop=4", "--checkpoint_every=4",
        "--log_every=12", *extra, model_dir=str(tmp_path))


def random_masks(model, density=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return {n: (rng.random(w.shape) < density).astype(np.float32)
            for n, w in wrappers.weight_values(model).items()}


def test_dense_and_conv_kernels_are_wrapped_and_keep_their_weights():
    model = registry.build_model("conv_bn_for_tests", 10, (28, 28, 1), init_seed=0)
    kernels = {n: model.get_layer(n).kernel for n in ("conv", "logits")}
    wrapped = wrappers.wrap_model(model)
    held = wrappers.pruning_vars(wrapped)
    assert sorted(held) == ["conv/kernel", "logits/kernel"]  # no bias, no BatchNorm
    for name, (weight, mask) in held.items():
        assert weight is kernels[name.split("/")[0]]  # W_0 is reused, not redrawn
        np.testing.assert_array_equal(mask.numpy(), np.ones(weight.shape))


def test_exclusion_patterns_match_full_layer_names():
    def names(exclude):
        model = registry.build_model("lenet_300_100", 10, (28, 28, 1), init_seed=0)
        return sorted(wrappers.pruning_vars(wrappers.wrap_model(model, exclude)))

    assert names(["logits"]) == ["fc1/kernel", "fc2/kernel"]
    assert names(["fc.*"]) == ["logits/kernel"]
    with pytest.raises(FieldError, match="pruning.exclude pattern") as error:
        names(["fc"])  # a full match is needed: 'fc' names no layer
    assert config_lib.cli_message(error.value).startswith("--prune_exclude pattern")
    with pytest.raises(FieldError) as error:
        names([".*"])
    assert config_lib.cli_message(error.value).startswith(
        "--prune_exclude leaves no prunable layer")


def test_all_ones_masks_train_bit_for_bit_like_the_unwrapped_network(tmp_path):
    """Level 0 of IMP (wrapped, masks all ones) *is* the dense run."""
    c = config(tmp_path, "--optimizer=adam", "--grad_clip_norm=1.0")
    dense = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    dense.train(RunSpec(str(tmp_path / "dense"), 12, NOISE, FromSeed(0)))
    wrapped = imp.make_trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    wrapped.train(RunSpec(str(tmp_path / "wrapped"), 12, NOISE, FromSeed(0)))
    a = dense.model.trainable_variables
    b = wrapped.model.trainable_variables
    assert len(a) == len(b) == 6
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def replica_values(variable):
    return [v.numpy() for v in getattr(variable, "values", (variable,))]


def assert_checkpoint_is_masked(prefix):
    """Every kernel saved in ``prefix`` is 0 wherever its saved mask is 0."""
    reader = tf.train.load_checkpoint(prefix)
    suffix = "/layer/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    keys = [k for k in reader.get_variable_to_shape_map() if k.endswith(suffix)]
    assert keys
    for key in keys:
        kernel = reader.get_tensor(key)
        mask = reader.get_tensor(key[:-len(suffix)] + "/mask/.ATTRIBUTES/VARIABLE_VALUE")
        assert 0 < mask.mean() < 1
        assert not np.any(kernel[mask == 0]), key


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_pruned_weights_stay_exactly_zero(tmp_path, request, optimizer, strategy_name):
    strategy = (request.getfixturevalue("mirrored") if strategy_name == "mirrored"
                else tf.distribute.get_strategy())
    c = config(tmp_path, f"--optimizer={optimizer}", "--learning_rate=0.05",
               "--model=conv_bn_for_tests", "--weight_decay=1e-3")
    t = imp.make_trainer(c, strategy, tiny_pipeline(c))
    # Dense steps first, so that momentum / Adam moments of the weights about
    # to be pruned are non-zero (as after rewinding with restored state).
    dense = t.train(RunSpec(str(tmp_path / "dense"), 6, NOISE, FromSeed(0)))
    masks = random_masks(t.model)
    wrappers.set_masks(t.model, masks)
    slots = [v.numpy() for v in t.optimizer.variables if v.shape == (3, 3, 1, 4)]
    assert slots and all(np.any(s[masks["conv/kernel"] == 0]) for s in slots)

    # The sparse run goes on from the dense one's state (optimizer state too).
    results = t.train(RunSpec(str(tmp_path / "sparse"), 12, NOISE, FromCheckpoint(
        dense.final_checkpoint, then=lambda tr: wrappers.set_masks(tr.model, masks)),
        rewind_steps=(9,)))
    assert int(t.step.numpy()) == 12
    for name, (weight, mask) in wrappers.pruning_vars(t.model).items():
        for value in replica_values(weight):
            assert not np.any(value[masks[name] == 0]), name
            assert np.all(value[masks[name] == 1] != 0), name
        for value in replica_values(mask):
            np.testing.assert_array_equal(value, masks[name])
    for prefix in (results.final_checkpoint, results.rewind_checkpoints[9],
                   tf.train.latest_checkpoint(str(tmp_path / "sparse" / "checkpoints"))):
        assert_checkpoint_is_masked(prefix)
