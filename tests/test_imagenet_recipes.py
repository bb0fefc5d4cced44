"""The ImageNet flagfiles resolve to the paper's recipes; RMSProp's epsilon matches TF1's."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import parse_config
from tf_lottery.config import OptimizerConfig
from tf_lottery.errors import ConfigError
from tf_lottery.training import optimizers

STEPS_PER_EPOCH = 1_281_167 // 1024  # 1251


def recipe(name, *extra):
    return parse_config(f"--flagfile=flags/{name}.cfg", *extra)


def test_resnet50_recipe():
    c = recipe("resnet50_imagenet", "--experiment=imp")
    assert (c.model.name, c.data.dataset, c.data.augment, c.data.image_size) == (
        "resnet50", "imagenet2012", "resnet", 224)
    assert c.train.steps_per_epoch == STEPS_PER_EPOCH
    assert c.train.train_steps == 90 * STEPS_PER_EPOCH
    s = c.schedule
    assert (s.kind, s.learning_rate, s.warmup_steps) == ("step", 0.4, 5 * STEPS_PER_EPOCH)
    assert s.drop_steps == tuple(e * STEPS_PER_EPOCH for e in (30, 60, 80))
    o = c.optimizer
    assert (o.name, o.momentum, o.weight_decay, o.label_smoothing) == ("momentum", 0.9, 1e-4, 0)
    assert c.pruning.levels == 1 and c.pruning.prune_fraction == pytest.approx(0.7)
    assert c.pruning.rewind_step == 5 * STEPS_PER_EPOCH in c.train.rewind_steps


@pytest.mark.parametrize("name", ["inception_v3", "inception_v3_lmc"])
def test_inception_recipes(name):
    c = recipe(name, "--experiment=imp")
    assert (c.model.name, c.data.augment, c.data.image_size) == ("inception_v3", "inception",
                                                                 299)
    assert c.train.train_steps == 171 * STEPS_PER_EPOCH
    o = c.optimizer
    assert (o.label_smoothing, o.aux_loss_weight) == (0.1, 0.4)
    assert c.train.rewind_steps[-1] == 30 * STEPS_PER_EPOCH
    assert c.pruning.rewind_step == 6 * STEPS_PER_EPOCH in c.train.rewind_steps
    s = c.schedule
    if name == "inception_v3":
        assert (o.name, o.rmsprop_decay, o.momentum, o.epsilon) == ("rmsprop", 0.9, 0.9, 1.0)
        assert (o.grad_clip_norm, o.ema_decay) == (2.0, 0.9999)
        assert (s.kind, s.decay_rate, s.decay_steps) == ("exponential", 0.94,
                                                          2 * STEPS_PER_EPOCH)
        assert s.learning_rate == pytest.approx(0.165 * 1024 / 256)
    else:
        assert (o.name, o.momentum, o.ema_decay) == ("momentum", 0.9, 0.0)
        assert (s.kind, s.learning_rate, s.final_learning_rate) == ("linear_decay", 0.03,
                                                                    0.005)


def test_rewind_epochs_resolve_to_steps_and_exclude_rewind_steps():
    c = parse_config("--dataset=imagenet2012", "--batch_size=1024", "--train_epochs=10",
                     "--rewind_epochs=0,0.5,2")
    assert c.train.rewind_steps == (0, 626, 2502)
    with pytest.raises(ConfigError, match="--rewind_epochs"):
        parse_config("--train_steps=100", "--rewind_steps=5", "--rewind_epochs=1")


def test_rmsprop_epsilon_is_inside_the_square_root_as_in_tf1():
    """The stock recipe's epsilon = 1.0 was tuned with TF1's RMSPropOptimizer:
    ms <- rho ms + (1 - rho) g^2;  mom <- m mom + lr g / sqrt(ms + eps)."""
    opt = optimizers.make_optimizer(
        OptimizerConfig(name="rmsprop", rmsprop_decay=0.9, momentum=0.9, epsilon=1.0), 0.1)
    w = tf.Variable([1.0, 1.0])
    g = np.array([3.0, -0.5], np.float32)
    ms = np.zeros(2)  # TF1 started at 1: the one remaining difference
    inside, outside = np.zeros(2), np.zeros(2)  # momentum buffers
    expected, eps_outside = np.ones(2), np.ones(2)
    for _ in range(3):
        opt.apply_gradients([(tf.constant(g), w)])
        ms = 0.9 * ms + 0.1 * g ** 2
        inside = 0.9 * inside + 0.1 * g / np.sqrt(ms + 1.0)
        outside = 0.9 * outside + 0.1 * g / (np.sqrt(ms) + 1.0)
        expected, eps_outside = expected - inside, eps_outside - outside
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)
    assert not np.allclose(w.numpy(), eps_outside, rtol=1e-3)
