"""A user's builder by import path: errors, identity, pruned kernels, and every instrument."""

import json
from unittest import mock

import pytest
import tensorflow_datasets as tfds

import tf_lottery
from tests import user_models
from tests.conftest import parse_config
from tf_lottery import rundir
from tf_lottery.core import layout, records
from tf_lottery.data import cache, sources
from tf_lottery.errors import ConfigError
from tf_lottery.models import registry
from tf_lottery.pruning import wrappers

CNN = "tests.user_models:small_cnn"
TINY = dict(dataset="mnist", batch_size=10, eval_batch_size=20, train_eval_examples=20,
            steps_per_loop=3, log_every=1000)


@pytest.fixture(autouse=True)
def _fresh_architectures():
    """Architectures are computed once per process; tests edit a builder."""
    registry._ARCHITECTURES.clear()
    yield
    registry._ARCHITECTURES.clear()


@pytest.fixture
def mock_mnist():
    """TFDS mock data standing in for a prepared dataset (as tests.mock_main)."""
    with tfds.testing.mock_data(num_examples=40), \
            mock.patch.object(sources, "is_prepared", lambda builder: True), \
            mock.patch.object(cache, "load", lambda *args: None):
        yield


@pytest.mark.parametrize("model, says", [
    ("tests.user_models:not_a_model", "returned a builtins.str, not a tf_keras.Model"),
    ("tests.user_models:wrong_outputs", "outputs shape (None, 11); expected logits of "
                                        "shape (None, 10)"),
    ("tests.user_models_broken:cnn", "cannot import tests.user_models_broken "
                                     "(RuntimeError: this module is broken)"),
    ("tests.no_such_module:cnn", "cannot import tests.no_such_module"),
    ("tests.user_models:missing", "tests.user_models has no missing"),
    ("tests.user_models:NOT_CALLABLE", "is not a function"),
    ("no_such_model", "is not a known model"),
])
def test_a_bad_builder_is_one_line_naming_the_flag(model, says):
    with pytest.raises(ConfigError) as e:
        parse_config("--train_steps=5", "--dataset=mnist", f"--model={model}")
    message = str(e.value)
    assert message.startswith(f"--model={model}") and says in message, message
    assert "\n" not in message


def test_the_identity_is_the_import_path_and_the_architecture(monkeypatch):
    a = parse_config("--train_steps=5", "--dataset=mnist", f"--model={CNN}")
    b = parse_config("--train_steps=5", "--dataset=mnist", f"--model={CNN}")
    assert a.model.architecture and a.model.architecture == b.model.architecture
    assert a.recipe_hash() == b.recipe_hash()
    assert a.recipe_dict()["model"]["name"] == CNN
    monkeypatch.setattr(user_models, "WIDTH", 16)
    registry._ARCHITECTURES.clear()
    edited = parse_config("--train_steps=5", "--dataset=mnist", f"--model={CNN}")
    assert edited.model.architecture != a.model.architecture
    assert edited.recipe_hash() != a.recipe_hash()
    # A registry model's recipe is as it was before builders could be imported.
    lenet = parse_config("--train_steps=5", "--dataset=mnist")
    assert "architecture" not in lenet.recipe_dict()["model"]


def test_an_edited_builder_is_refused_on_resume_naming_the_layer(tmp_path, monkeypatch):
    config = parse_config("--train_steps=5", "--dataset=mnist", f"--model={CNN}",
                          model_dir=str(tmp_path))
    rundir.claim(config)
    assert json.loads((tmp_path / layout.ARCHITECTURE_FILE).read_text())["digest"] == \
        config.model.architecture
    rundir.claim(config)  # the same builder resumes
    monkeypatch.setattr(user_models, "WIDTH", 16)
    registry._ARCHITECTURES.clear()
    edited = parse_config("--train_steps=5", "--dataset=mnist", f"--model={CNN}",
                          model_dir=str(tmp_path))
    with pytest.raises(ConfigError) as e:
        rundir.claim(edited)
    message = str(e.value)
    assert "the builder now builds a different network" in message, message
    assert "hidden (units 8 -> 16)" in message and "\n" not in message


def test_depthwise_conv_and_dense_kernels_are_wrapped():
    model = wrappers.wrap_model(user_models.small_cnn(10, (28, 28, 1)))
    assert sorted(wrappers.pruning_vars(model)) == [
        "conv/kernel", "depthwise/depthwise_kernel", "hidden/kernel", "logits/kernel"]


def test_a_builder_given_as_a_function_is_known_by_its_import_path(tmp_path):
    config = tf_lottery.make_config(model_dir=str(tmp_path), model=user_models.small_cnn,
                                    dataset="mnist", train_steps=5)
    assert config.model.name == CNN
    assert config.model.architecture == parse_config(
        "--train_steps=5", "--dataset=mnist", f"--model={CNN}").model.architecture


def test_train_with_an_imported_builder(tmp_path, mock_mnist):
    config = tf_lottery.make_config(model_dir=str(tmp_path), model=CNN, train_steps=6,
                                    rewind_steps=[0, 3], **TINY)
    result = tf_lottery.run(config)
    assert isinstance(result, records.RunRecord) and result.step == 6
    assert sorted(result.rewind_checkpoints) == [0, 3]


@pytest.mark.slow
def test_instability_with_an_imported_builder(tmp_path, mock_mnist):
    config = tf_lottery.make_config(
        "instability", model_dir=str(tmp_path), model=CNN, train_steps=6,
        rewind_steps=[0, 3], children=2, interpolation_points=3, **TINY)
    result = tf_lottery.run(config)
    assert isinstance(result, records.InstabilityResults)
    assert [p.rewind_step for p in result.rewind_steps] == [0, 3]
    assert "test barrier" in result.table


@pytest.mark.slow
def test_two_level_imp_with_an_imported_builder(tmp_path, mock_mnist):
    config = tf_lottery.make_config(
        "imp", model_dir=str(tmp_path), model=CNN, train_steps=6, rewind_steps=[0, 3],
        rewind_step=3, imp_levels=2, imp_baselines=["random_prune", "random_reinit"],
        **TINY)
    result = tf_lottery.run(config)
    assert isinstance(result, records.ImpResults) and result.status == layout.COMPLETE
    assert [level.level for level in result.levels] == [0, 1, 2]
    assert result.levels[0].density == 1.0 > result.levels[1].density > result.levels[2].density
    assert set(result.levels[2].layer_density) == {
        "conv/kernel", "depthwise/depthwise_kernel", "hidden/kernel", "logits/kernel"}
    assert set(result.levels[1].baselines) == {"random_prune", "random_reinit"}
