"""Learning-rate schedules at and around their boundary steps."""

import pytest

from tests.conftest import parse_config
from tf_lottery.training.schedules import learning_rate


def lr(config, step):
    return float(learning_rate(config.schedule, step, config.train.train_steps))


def test_constant():
    c = parse_config("--train_steps=100", "--learning_rate=0.5")
    assert [lr(c, s) for s in (0, 50, 100)] == [0.5, 0.5, 0.5]


def test_step_drops_exactly_at_boundaries():
    c = parse_config("--train_steps=63000", "--batch_size=128", "--learning_rate=0.1",
                     "--lr_schedule=step", "--lr_drop_steps=32000,48000")
    assert lr(c, 31999) == pytest.approx(0.1)
    assert lr(c, 32000) == pytest.approx(0.01)
    assert lr(c, 47999) == pytest.approx(0.01)
    assert lr(c, 48000) == pytest.approx(0.001)
    assert lr(c, 62999) == pytest.approx(0.001)


def test_linear_warmup_then_constant():
    c = parse_config("--train_steps=63000", "--batch_size=128", "--learning_rate=0.03",
                     "--warmup_steps=30000")
    assert lr(c, 0) == pytest.approx(0.03 / 30000)
    assert lr(c, 14999) == pytest.approx(0.015)
    assert lr(c, 29999) == pytest.approx(0.03)
    assert lr(c, 30000) == pytest.approx(0.03)


def test_warmup_composes_with_step_drops():
    c = parse_config("--train_steps=100", "--batch_size=10", "--learning_rate=1",
                     "--warmup_steps=10", "--lr_schedule=step", "--lr_drop_steps=50")
    assert lr(c, 4) == pytest.approx(0.5)
    assert lr(c, 49) == pytest.approx(1.0)
    assert lr(c, 50) == pytest.approx(0.1)


def test_linear_decay_reaches_final_lr_at_T():
    c = parse_config("--train_steps=1000", "--batch_size=10", "--learning_rate=0.03",
                     "--lr_schedule=linear_decay", "--final_learning_rate=0.005")
    assert lr(c, 0) == pytest.approx(0.03)
    assert lr(c, 500) == pytest.approx(0.0175)
    assert lr(c, 1000) == pytest.approx(0.005)


def test_linear_decay_starts_after_warmup():
    c = parse_config("--train_steps=1000", "--batch_size=10", "--learning_rate=1",
                     "--lr_schedule=linear_decay", "--warmup_steps=200")
    assert lr(c, 199) == pytest.approx(1.0)
    assert lr(c, 600) == pytest.approx(0.5)
    assert lr(c, 1000) == pytest.approx(0.0)


def test_exponential_staircase():
    c = parse_config("--train_steps=10000", "--batch_size=100", "--learning_rate=0.1",
                     "--lr_schedule=exponential", "--lr_decay_epochs=2",
                     "--lr_decay_rate=0.94")
    assert c.schedule.decay_steps == 1200
    assert lr(c, 1199) == pytest.approx(0.1)
    assert lr(c, 1200) == pytest.approx(0.094)
    assert lr(c, 2400) == pytest.approx(0.1 * 0.94 ** 2)
