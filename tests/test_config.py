"""Flags -> config: recipes resolve to the paper's numbers; bad input is named."""

import pytest

from tests.conftest import parse_config
from tf_lottery import config as config_lib
from tf_lottery.errors import ConfigError


def test_lenet_flagfile_is_the_papers_recipe():
    c = parse_config("--flagfile=flags/lenet_fashion_mnist.cfg")
    assert c.model.name == "lenet_300_100"
    assert c.data.dataset == "fashion_mnist"
    assert c.optimizer.name == "adam"
    assert c.schedule.kind == "constant"
    assert c.schedule.learning_rate == pytest.approx(1.2e-3)
    assert c.train.batch_size == 60
    assert c.train.train_steps == 24000
    assert c.train.steps_per_epoch == 1000
    assert c.train.rewind_steps == (0, 25, 100, 500, 2000)
    assert c.data.augment == "none"


def test_mnist_flagfile_matches_fashion_recipe():
    a = parse_config("--flagfile=flags/lenet_mnist.cfg").recipe_dict()
    b = parse_config("--flagfile=flags/lenet_fashion_mnist.cfg").recipe_dict()
    a["data"].pop("dataset"), b["data"].pop("dataset")
    assert a == b


def test_command_line_overrides_flagfile():
    c = parse_config("--flagfile=flags/lenet_fashion_mnist.cfg", "--train_steps=500",
                     "--rewind_steps=0,100")
    assert c.train.train_steps == 500
    assert c.train.rewind_steps == (0, 100)
    assert c.optimizer.name == "adam"


def test_epochs_resolve_to_steps():
    c = parse_config("--batch_size=100", "--train_epochs=2.5", "--lr_schedule=step",
                     "--lr_drop_epochs=1,2", "--warmup_epochs=0.5")
    assert c.train.steps_per_epoch == 600
    assert c.train.train_steps == 1500
    assert c.schedule.drop_steps == (600, 1200)
    assert c.schedule.warmup_steps == 300


def test_exponential_decay_every_n_epochs():
    c = parse_config("--batch_size=100", "--train_steps=6000", "--lr_schedule=exponential",
                     "--lr_decay_epochs=2", "--lr_decay_rate=0.94")
    assert c.schedule.decay_steps == 1200


def test_runtime_flags_do_not_change_the_recipe_hash():
    a = parse_config("--train_steps=10", "--strategy=mirrored", "--steps_per_loop=5")
    b = parse_config("--train_steps=10", model_dir="/elsewhere")
    assert a.recipe_hash() == b.recipe_hash()
    c = parse_config("--train_steps=10", "--data_order_seed=1")
    assert c.recipe_hash() != a.recipe_hash()
    assert config_lib.diff_recipes(a.recipe_dict(), c.recipe_dict()) == [
        "train.data_order_seed"]


def test_config_json_round_trip():
    c = parse_config("--flagfile=flags/lenet_fashion_mnist.cfg")
    assert config_lib.config_from_json(c.to_json()) == c


@pytest.mark.parametrize("args, flag", [
    (["--model=nope", "--train_steps=1"], "--model=nope"),
    (["--dataset=nope", "--train_steps=1"], "--dataset=nope"),
    (["--learning_rate=-1", "--train_steps=1"], "--learning_rate"),
    (["--learning_rate=nan", "--train_steps=1"], "--learning_rate"),
    (["--batch_size=0", "--train_steps=1"], "--batch_size"),
    (["--train_steps=100", "--rewind_steps=0,200"], "--rewind_steps"),
    (["--train_steps=100", "--rewind_steps=a"], "--rewind_steps"),
    (["--train_steps=100", "--train_epochs=1"], "--train_epochs"),
    (["--train_steps=100", "--lr_schedule=step"], "--lr_drop_steps"),
    (["--train_steps=100", "--lr_drop_steps=50"], "--lr_drop_steps"),
    (["--train_steps=100", "--weight_decay=-1"], "--weight_decay"),
    (["--train_steps=100", "--label_smoothing=1"], "--label_smoothing"),
    (["--train_steps=100", "--strategy=tpu"], "--tpu"),
])
def test_bad_input_names_the_flag(args, flag):
    with pytest.raises(ConfigError, match=flag.replace("-", r"\-")) as e:
        parse_config(*args)
    assert "\n" not in str(e.value)
