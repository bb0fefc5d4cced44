"""Any TFDS image-classification dataset by builder name, through tfds.testing.mock_data."""

import json
import types
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tf_lottery
from tests.conftest import parse_config
from tf_lottery import compose
from tf_lottery.config import cli_message, config_from_json
from tf_lottery.core import records
from tf_lottery.data import cache, describe, sources, stats
from tf_lottery.errors import ConfigError

N = 40  # mock examples per split


@pytest.fixture
def mock_tfds():
    with tfds.testing.mock_data(num_examples=N), \
            mock.patch.object(sources, "is_prepared", lambda builder: True), \
            mock.patch.object(cache, "load", lambda *args: None):
        yield


def test_a_dataset_outside_the_registry_takes_its_facts_from_tfds(mock_tfds, tmp_path):
    config = parse_config("--dataset=cifar100", "--train_steps=4", "--batch_size=10",
                          f"--data_dir={tmp_path}")
    d = config.data
    assert (d.num_classes, tuple(d.image_shape), d.train_examples, d.test_examples) == \
        (100, (32, 32, 3), N, N)
    assert d.features == ("image", "label") and not d.streamed and d.tfds_version
    assert d.augment == "none" and config.train.steps_per_epoch == N // 10
    recorded = json.loads(config.to_json())["data"]
    assert recorded["num_classes"] == 100 and recorded["image_shape"] == [32, 32, 3]
    # config.json alone gives the dataset back, without TFDS.
    again = config_from_json(config.to_json())
    assert again.data.spec() == config.data.spec()
    assert again.recipe_hash() == config.recipe_hash()


def test_splits_are_chosen_by_flag(mock_tfds, tmp_path):
    config = parse_config("--dataset=cifar100", "--train_split=train[:50%]",
                          "--test_split=train[50%:]", "--train_steps=2", "--batch_size=10",
                          f"--data_dir={tmp_path}")
    spec = config.data.spec()
    assert (spec.train_split, spec.test_split) == ("train[:50%]", "train[50%:]")
    # A registry dataset given a split records it; its own splits keep its recipe.
    split = parse_config("--dataset=mnist", "--train_split=train[:90%]", "--train_steps=2",
                         "--batch_size=10",
                         f"--data_dir={tmp_path}")
    assert split.data.spec().train_split == "train[:90%]"
    assert split.recipe_hash() != parse_config("--dataset=mnist", "--train_steps=2",
                                               "--batch_size=10").recipe_hash()


def test_registry_datasets_keep_their_recipe():
    data = parse_config("--dataset=cifar10", "--train_steps=2").recipe_dict()["data"]
    assert sorted(data) == ["augment", "dataset", "eval_batch_size", "image_size",
                            "shuffle_window_shards", "train_eval_examples"]


def test_channel_statistics_are_computed_once_and_kept(mock_tfds, tmp_path):
    config = parse_config("--dataset=cifar100", "--train_steps=2", "--batch_size=10",
                          f"--data_dir={tmp_path}")
    pipeline = compose.make_pipeline(config)
    spec = pipeline.spec
    assert spec.mean is not None and len(spec.mean) == len(spec.std) == 3
    images = pipeline._train[0]
    expect = images.reshape(-1, 3).astype(np.float64) / 255.0
    np.testing.assert_allclose(spec.mean, expect.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(spec.std, expect.std(axis=0), rtol=1e-9)
    kept = stats.stats_file(str(tmp_path), "cifar100", spec.version, "train")
    assert json.loads(open(kept).read())["mean"] == list(spec.mean)
    with mock.patch.object(stats, "compute", side_effect=AssertionError("computed again")):
        assert compose.make_pipeline(config).spec.mean == spec.mean


@pytest.mark.parametrize("args, says", [
    (["--dataset=no_such_dataset"], "--dataset=no_such_dataset is neither a registry "
                                    "dataset"),
    (["--dataset=imdb_reviews"], "--dataset=imdb_reviews is not an image classification"),
])
def test_bad_datasets_and_splits_are_one_line(mock_tfds, tmp_path, args, says):
    with pytest.raises(ConfigError) as e:
        parse_config(*args, "--train_steps=2", f"--data_dir={tmp_path}")
    assert str(e.value).startswith(says) and "\n" not in str(e.value), str(e.value)


def test_an_unknown_split_names_its_flag_and_the_known_splits():
    split = types.SimpleNamespace
    builder = split(name="cifar100", info=split(splits={"train": split(num_examples=5),
                                                       "test": split(num_examples=2)}))
    assert describe._split_size(builder, "train", "data.train_split") == 5
    with pytest.raises(ConfigError) as e:
        describe._split_size(builder, "nope", "data.test_split")
    assert cli_message(e.value).startswith("--test_split=nope is not a split of cifar100 "
                                           "(has: train, test")


def test_train_on_a_dataset_outside_the_registry(mock_tfds, tmp_path):
    config = tf_lottery.make_config(
        model_dir=str(tmp_path / "run"), model="tests.user_models:small_cnn",
        dataset="cifar100", data_dir=str(tmp_path / "data"), train_steps=4, batch_size=10,
        eval_batch_size=20, train_eval_examples=20, steps_per_loop=2)
    result = tf_lottery.run(config)
    assert isinstance(result, records.RunRecord) and result.step == 4
    assert result.metrics.test_examples == N


@pytest.mark.parametrize("name, image_format", [("imagenette", "jpeg"), ("food101", "png")])
def test_images_of_varying_size_stream(mock_tfds, tmp_path, name, image_format):
    config = parse_config(f"--dataset={name}", "--train_steps=2", "--batch_size=4",
                          f"--data_dir={tmp_path}")
    d = config.data
    assert d.streamed and d.augment == "resnet" and d.image_size == 224
    assert d.image_format == image_format and tuple(d.image_shape) == (0, 0, 3)
    spec = d.spec()
    assert not spec.in_memory and spec.image_shape == (224, 224, 3)


def test_a_png_is_cropped_like_the_decoded_image():
    import tensorflow as tf

    from tf_lottery.data import imagenet_preprocessing as prep

    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3)).astype(np.uint8)
    png = tf.io.encode_png(image)
    side = round(40 * prep.EVAL_CROP_FRACTION)
    top, left = (40 - side) // 2, (60 - side) // 2
    expect = prep._finish(prep._resize(image[top:top + side, left:left + side], 32), "resnet")
    got = prep.preprocess_eval(png, "resnet", 32, is_jpeg=False)
    np.testing.assert_array_equal(got.numpy(), expect.numpy())
    seed = tf.constant([1, 2], tf.int64)
    train = prep.preprocess_train(png, "resnet", 32, seed, is_jpeg=False)
    assert train.shape == (32, 32, 3)
