"""--jit_compile: each replica's step under XLA trains as without it, masks and resume included."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests.conftest import launch_and_kill_after_checkpoint, parse_config, tiny_data, tiny_pipeline
from tests.test_main import SMALL, checkpoint_tensors, cli
from tests.test_pruning_wrappers import assert_checkpoint_is_masked
from tf_lottery.core import layout
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import imp
from tf_lottery.experiments import train as experiment
from tf_lottery.models import registry
from tf_lottery.training.strategy import step_compiler

STEPS = 16
MODELS = {  # model -> (dataset, image shape, extra flags)
    "lenet_300_100": ("mnist", (28, 28, 1), ("--optimizer=adam",)),
    "resnet20": ("cifar10", (32, 32, 3), ("--optimizer=momentum", "--learning_rate=0.05",
                                          "--weight_decay=1e-4")),
}


def config(run_dir, model, *extra):
    dataset, _, flags = MODELS[model]
    return parse_config(
        f"--model={model}", f"--dataset={dataset}", f"--train_steps={STEPS}",
        "--batch_size=20", "--eval_batch_size=50", "--train_eval_examples=100",
        "--steps_per_loop=1", "--log_every=8", "--checkpoint_every=8", "--rewind_steps=0",
        *flags, *extra, model_dir=str(run_dir))


def pipeline(c, model):
    return tiny_pipeline(c, tiny_data(shape=MODELS[model][1]))


def loss_curve(run_dir):
    """Training loss at every step, from the run's TensorBoard events."""
    curve = {}
    for path in tf.io.gfile.glob(os.path.join(str(run_dir), "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.tag == "train/loss":
                    curve[event.step] = float(tf.make_ndarray(v.tensor))
    return [curve[s] for s in sorted(curve)]


def train(run_dir, model, *extra):
    c = config(run_dir, model, *extra)
    results = experiment.train(c, tf.distribute.get_strategy(), pipeline(c, model))
    return loss_curve(run_dir), checkpoint_tensors(results.final_checkpoint)


def test_jit_trains_lenet_like_plain_ops(tmp_path):
    plain_loss, plain = train(tmp_path / "plain", "lenet_300_100")
    jit_loss, jit = train(tmp_path / "jit", "lenet_300_100", "--jit_compile")
    assert len(plain_loss) == STEPS
    # XLA fuses ops, so float rounding differs: close, not equal.
    np.testing.assert_allclose(jit_loss, plain_loss, rtol=1e-4, atol=1e-5)
    assert plain.keys() == jit.keys()
    for name in plain:
        np.testing.assert_allclose(jit[name], plain[name], rtol=1e-3, atol=1e-5,
                                   err_msg=name)


def test_jit_resnet20_gradient_is_as_exact_as_plain_ops():
    """A deep net with BatchNorm amplifies rounding: in float32 both TF's
    kernels and XLA's miss the float64 gradient by ~3e-3 (relative, measured
    on these inputs), and so differ from each other by about that much; their
    trajectories then part within a few steps. What XLA must not be is less
    exact than TF's own kernels."""
    data = tiny_data(shape=(32, 32, 3))
    images, labels = data.train_images[:20] / 255.0, data.train_labels[:20]
    weights = registry.build_model("resnet20", 10, (32, 32, 3), 0).get_weights()

    def gradient(dtype, compile_step):
        policy = tf_keras.mixed_precision.global_policy()
        tf_keras.mixed_precision.set_global_policy(dtype)
        try:
            model = registry.build_model("resnet20", 10, (32, 32, 3), 0)
        finally:
            tf_keras.mixed_precision.set_global_policy(policy)
        model.set_weights([w.astype(dtype) for w in weights])

        def step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf_keras.losses.sparse_categorical_crossentropy(
                    y, model(x, training=True), from_logits=True))
            return loss, tape.gradient(loss, model.trainable_variables)

        loss, grads = tf.function(compile_step(step))(images.astype(dtype), labels)
        return float(loss), np.concatenate([g.numpy().ravel() for g in grads])

    def compiler(*flags):
        config = parse_config("--train_steps=1", *flags)
        return step_compiler(config.runtime, tf.distribute.get_strategy())

    exact_loss, exact = gradient("float64", compiler())
    plain_loss, plain = gradient("float32", compiler())
    jit_loss, jit = gradient("float32", compiler("--jit_compile"))

    def error(g):
        return np.linalg.norm(g - exact) / np.linalg.norm(exact)

    assert plain_loss != exact_loss  # float32, against float64
    assert plain_loss == pytest.approx(exact_loss, rel=1e-6)
    assert jit_loss == pytest.approx(exact_loss, rel=1e-6)
    assert error(plain) < 1e-2
    assert error(jit) < 2 * error(plain)


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_jit_reruns_are_bitwise_identical(tmp_path, model):
    first_loss, first = train(tmp_path / "first", model, "--jit_compile")
    again_loss, again = train(tmp_path / "again", model, "--jit_compile")
    assert len(first_loss) == STEPS and again_loss == first_loss
    for name in first:
        np.testing.assert_array_equal(again[name], first[name], err_msg=name)


def test_jit_keeps_pruned_weights_exactly_zero(tmp_path):
    c = config(tmp_path, "lenet_300_100", "--experiment=imp", "--imp_levels=2",
               "--jit_compile")
    results = imp.imp(c, tf.distribute.get_strategy(), pipeline(c, "lenet_300_100"))
    assert [r.level for r in results.levels] == [0, 1, 2]
    for level in results.levels[1:]:
        assert_checkpoint_is_masked(layout.final_checkpoint(level.run_dir))


def test_jit_with_replicas_on_logical_cpus_is_refused():
    with pytest.raises(ConfigError, match="--jit_compile"):
        parse_config("--train_steps=1", "--jit_compile", "--strategy=mirrored",
                     "--cpu_devices=2")
    parse_config("--train_steps=1", "--jit_compile", "--strategy=one_device", "--cpu_devices=2")


@pytest.mark.slow
def test_jit_run_killed_and_relaunched_ends_bitwise_like_uninterrupted(tmp_path):
    args = [*SMALL, "--train_steps=1200", "--checkpoint_every=100", "--steps_per_loop=20",
            "--optimizer=adam", "--eval_every=600", "--jit_compile"]
    whole = cli(*args, f"--model_dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    launch_and_kill_after_checkpoint(args, killed_dir, 300)
    resumed = cli(*args, f"--model_dir={killed_dir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming" in resumed.stderr
    a = checkpoint_tensors(layout.final_checkpoint(str(tmp_path / "whole")))
    b = checkpoint_tensors(layout.final_checkpoint(str(killed_dir)))
    assert a.keys() == b.keys() and len(a) > 6
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
