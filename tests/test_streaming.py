"""Streaming pipeline over TFDS shards: order, resume, hosts, eval, config errors.

The data are a tiny imagenet2012 prepared by TFDS's own builder from fake
ILSVRC-2012 tars (``tests/fake_imagenet.py``): 60 training examples in 4
shards of 15, 5 validation examples.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests import fake_imagenet
from tests.conftest import assert_replicas_form_global_batch, parse_config
from tf_lottery import compose
from tf_lottery.data import registry, sources, streaming
from tf_lottery.data.pipeline import global_batch_at
from tf_lottery.errors import ConfigError

BATCH = 8  # 60 // 8 = 7 steps per epoch, 4 examples dropped per epoch


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    fake_imagenet.prepare(str(root / "data"), str(root / "manual"), num_shards=4)
    return str(root / "data")


def pipeline(data_dir, *extra):
    config = parse_config(
        "--dataset=imagenet2012", f"--data_dir={data_dir}", f"--batch_size={BATCH}",
        "--eval_batch_size=4", "--train_steps=20", "--image_size=32",
        "--shuffle_window_shards=3", "--train_eval_examples=10", *extra)
    return compose.make_pipeline(config)


def records(p, start, end, order):
    return [r.numpy() for _, r in p.global_records(start, end, order)]


def batches(p, start, end, order, aug, ctx=None):
    ds = p.train_dataset_fn(start, end, order, aug)(ctx or tf.distribute.InputContext())
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_plan_windows_cover_each_shard_once_per_epoch():
    plan = streaming.train_plan([15, 15, 15, 15], 3, BATCH, 5, 0, 14)
    for epoch in (0, 1):
        windows = [w for w in plan if w.epoch == epoch]
        assert sorted(i for w in windows for i in w.shards) == [0, 1, 2, 3]
        assert [len(w.shards) for w in windows] == [3, 1]
        assert sum(w.keep[1] - w.keep[0] for w in windows) == 7 * BATCH
    assert [w.shards for w in plan if w.epoch == 0] != [w.shards for w in plan if w.epoch == 1]
    # Resuming at step 9 = epoch 1, position 16: epoch 0 is never opened, the
    # first window is skipped to 16, the last stops at 56 (7 whole batches).
    resumed = streaming.train_plan([15, 15, 15, 15], 3, BATCH, 5, 9, 14)
    assert [(w.epoch, w.keep) for w in resumed] == [(1, (16, 45)), (1, (0, 11))]
    assert [w.shards for w in resumed] == [w.shards for w in plan if w.epoch == 1]


def test_each_epoch_visits_distinct_examples_in_a_new_order(data_dir):
    p = pipeline(data_dir)
    assert p.steps_per_epoch == 7 and p.spec.image_shape == (32, 32, 3)
    full = records(p, 0, 14, order=3)
    epochs = [np.concatenate(full[:7]), np.concatenate(full[7:])]
    for epoch in epochs:
        assert len(epoch) == 56 and len(set(epoch)) == 56
    assert len(set(epochs[0]) | set(epochs[1])) == 60  # different 4 dropped
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(np.concatenate(records(p, 0, 7, order=4)), epochs[0])


def test_same_seeds_same_batches_and_resume_sees_the_same_stream(data_dir):
    p = pipeline(data_dir, "--augment=inception")
    full = batches(p, 0, 16, 1, 2)
    again = batches(p, 0, 16, 1, 2)
    resumed = batches(p, 9, 16, 1, 2)  # crosses the epoch boundary at 14
    assert len(full) == 16 and len(resumed) == 7
    assert full[0][0].shape == (BATCH, 32, 32, 3) and full[0][1].dtype == np.int32
    for (xa, ya), (xb, yb) in zip(full, again, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    for (xa, ya), (xb, yb) in zip(full[9:], resumed, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_augment_seed_changes_only_augmentation_and_order_seed_the_examples(data_dir):
    p = pipeline(data_dir)
    xa, ya = global_batch_at(p, 4, 7, 0)
    xb, yb = global_batch_at(p, 4, 7, 1)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(xa, xb)
    # The data order seed alone changes which examples the step sees.
    assert not np.array_equal(records(p, 4, 5, 7)[0], records(p, 4, 5, 8)[0])


def test_two_hosts_each_decode_their_slice_of_the_same_global_batch(data_dir):
    p = pipeline(data_dir)
    whole = batches(p, 5, 8, 2, 3)
    hosts = [batches(p, 5, 8, 2, 3, tf.distribute.InputContext(2, i, 2)) for i in (0, 1)]
    for step, (x, y) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([h[step][0] for h in hosts]), x)
        np.testing.assert_array_equal(np.concatenate([h[step][1] for h in hosts]), y)


def test_replica_slices_concatenate_to_the_global_batch(data_dir, mirrored):
    assert_replicas_form_global_batch(mirrored, pipeline(data_dir, "--augment=inception"), 3, 3, 4)


def test_eval_counts_every_example_once_with_padding(data_dir):
    p = pipeline(data_dir)
    split = p.eval_split("test")
    assert (split.num_batches, split.num_examples) == (2, 5)
    labels, weights = [], []
    for x, y, w in split.dataset_fn(tf.distribute.InputContext()):
        assert x.shape == (4, 32, 32, 3)
        labels.append(y.numpy())
        weights.append(w.numpy())
    w = np.concatenate(weights)
    np.testing.assert_array_equal(w, [1, 1, 1, 1, 1, 0, 0, 0])
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    on_disk = [int(e["label"]) for e in builder.as_dataset(split="validation",
                                                           shuffle_files=False)]
    np.testing.assert_array_equal(np.concatenate(labels)[:5], on_disk)
    assert p.eval_split("train_eval").num_examples == 10


def test_manual_dir_prepares_imagenet2012_from_the_original_tars(tmp_path):
    fake_imagenet.write_tars(str(tmp_path / "manual"))
    spec = registry.get("imagenet2012")
    with pytest.raises(ConfigError, match="ILSVRC2012_img_train.tar"):
        sources.get_builder(spec, str(tmp_path / "data"), None)
    builder = sources.get_builder(spec, str(tmp_path / "data"), str(tmp_path / "manual"))
    assert builder.info.splits["train"].num_examples == 60
    assert builder.info.splits["validation"].num_examples == 5


@pytest.mark.parametrize("flags,message", [
    (("--dataset=imagenet2012", "--augment=crop_flip"), "--augment=crop_flip"),
    (("--dataset=fashion_mnist", "--augment=inception"), "ImageNet recipe"),
    (("--dataset=fashion_mnist", "--image_size=64"), "--image_size"),
    (("--dataset=imagenet2012", "--image_size=16"), "--image_size"),
    (("--dataset=imagenet2012", "--shuffle_window_shards=0"), "--shuffle_window_shards"),
])
def test_bad_data_flags_are_one_line_config_errors(flags, message):
    with pytest.raises(ConfigError, match=message):
        parse_config("--train_steps=10", *flags)


def test_image_size_defaults_to_the_recipes():
    for recipe, size in (("inception", 299), ("resnet", 224)):
        c = parse_config("--train_steps=10", "--dataset=imagenet2012", f"--augment={recipe}")
        assert (c.data.augment, c.data.image_size) == (recipe, size)
    assert parse_config("--train_steps=10").data.image_size == 0


def lenet_on_imagenet(data_dir, tmp_path, *extra):
    """A fast stand-in network (LeNet takes any input size) on the streamed data."""
    return parse_config(
        "--model=lenet_300_100", "--dataset=imagenet2012", f"--data_dir={data_dir}",
        "--image_size=32", f"--batch_size={BATCH}", "--eval_batch_size=4",
        "--train_steps=12", "--train_eval_examples=10", "--steps_per_loop=5",
        "--checkpoint_every=4", "--rewind_steps=0,9", "--optimizer=momentum",
        "--learning_rate=0.01", *extra, model_dir=str(tmp_path / "run"))


def test_main_trains_a_streamed_dataset_and_reports_it(data_dir, tmp_path):
    from tf_lottery import main as main_lib

    results = main_lib.run(lenet_on_imagenet(data_dir, tmp_path, "--ema_decay=0.9"))
    assert results.status == "complete" and results.step == 12
    assert results.metrics.test_examples == 5
    assert results.metrics.train_examples == 10
    assert sorted(results.rewind_checkpoints) == [0, 9]


def test_interrupted_streamed_run_resumes_bitwise(data_dir, tmp_path):
    from tf_lottery.training.trainer import FromSeed, RunSpec, SgdNoise, Trainer, TrainerHooks

    c = lenet_on_imagenet(data_dir, tmp_path)
    spec = RunSpec(str(tmp_path / "a"), 12, SgdNoise(1, 2), FromSeed(0))
    whole = Trainer(c, tf.distribute.get_strategy(), compose.make_pipeline(c))
    whole.train(spec)
    crashing = Trainer(c, tf.distribute.get_strategy(), compose.make_pipeline(c), TrainerHooks(
        post_update_fns=(  # dies in epoch 1, after the checkpoint at 8
            lambda model: tf.debugging.assert_less(crashing.step, tf.constant(10, tf.int64)),)))
    spec_b = RunSpec(str(tmp_path / "b"), 12, SgdNoise(1, 2), FromSeed(0))
    with pytest.raises(tf.errors.InvalidArgumentError):
        crashing.train(spec_b)
    resumed = Trainer(c, tf.distribute.get_strategy(), compose.make_pipeline(c))
    resumed.train(spec_b)
    for a, b in zip(whole.model.weights, resumed.model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
