"""Input pipelines: batches are a pure function of (seeds, step)."""

import numpy as np
import tensorflow as tf

from tests.conftest import assert_replicas_form_global_batch, parse_config, tiny_data, tiny_pipeline
from tf_lottery.data import augment as augment_lib
from tf_lottery.data.pipeline import global_batch_at


def config(*extra):
    return parse_config("--train_steps=50", "--batch_size=20", "--eval_batch_size=30",
                        "--train_eval_examples=50", *extra)


def batches(pipeline, start, end, order, aug):
    ctx = tf.distribute.InputContext(1, 0, 1)
    ds = pipeline.train_dataset_fn(start, end, order, aug)(ctx)
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_same_seeds_same_batches_and_resume_sees_the_same_stream():
    p = tiny_pipeline(config(), augment="crop_flip")
    full = batches(p, 0, 30, 1, 2)
    again = batches(p, 0, 30, 1, 2)
    resumed = batches(p, 17, 30, 1, 2)  # crosses the epoch boundary at 12, 24
    assert len(full) == 30 and len(resumed) == 13
    for (xa, ya), (xb, yb) in zip(full, again, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    for (xa, ya), (xb, yb) in zip(full[17:], resumed, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_each_epoch_visits_distinct_examples_in_a_new_order():
    p = tiny_pipeline(config())
    first = p.epoch_order(5, 0).numpy()
    second = p.epoch_order(5, 1).numpy()
    assert first.shape == (12, 20)  # 240 examples // batch 20
    assert len(np.unique(first)) == 240
    assert not np.array_equal(first, second)


def test_data_order_seed_changes_the_order():
    p = tiny_pipeline(config())
    assert not np.array_equal(p.epoch_order(0, 0).numpy(), p.epoch_order(1, 0).numpy())
    xa, _ = global_batch_at(p, 3, 0, 0)
    xb, _ = global_batch_at(p, 3, 1, 0)
    assert not np.array_equal(xa, xb)


def test_augment_seed_changes_only_augmentation():
    p = tiny_pipeline(config(), augment="crop_flip")
    plain = tiny_pipeline(config(), augment="none")
    xa, ya = global_batch_at(p, 5, 7, 0)
    xb, yb = global_batch_at(p, 5, 7, 1)
    x0, y0 = global_batch_at(plain, 5, 7, 123)
    np.testing.assert_array_equal(ya, yb)  # same examples, same order
    np.testing.assert_array_equal(ya, y0)
    assert not np.array_equal(xa, xb)  # different crops / flips
    # Each augmented image is a crop/flip of the same unaugmented example.
    for img, src in zip(xa, x0, strict=True):
        padded = np.pad(src, [[4, 4], [4, 4], [0, 0]])
        found = any(
            np.array_equal(img, cand[oy:oy + 28, ox:ox + 28])
            for cand in (padded, padded[:, ::-1])
            for oy in range(9) for ox in range(9))
        assert found


def test_augment_none_leaves_images_unaugmented_and_scaled():
    c = config()
    data = tiny_data()
    p = tiny_pipeline(c, data)
    x, y = global_batch_at(p, 0, 0, 0)
    idx = p.epoch_order(0, 0).numpy()[0]
    np.testing.assert_allclose(x, data.train_images[idx] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, data.train_labels[idx])


def test_replica_slices_concatenate_to_the_global_batch(mirrored):
    p = tiny_pipeline(config(), augment="crop_flip")
    assert_replicas_form_global_batch(mirrored, p, 4, 3, 4)


def test_eval_counts_every_example_once_with_padding():
    data = tiny_data(num_test=100)
    p = tiny_pipeline(config(), data)
    split = p.eval_split("test")
    assert split.num_batches == 4  # 100 examples, batch 30, last padded
    ds = split.dataset_fn(tf.distribute.InputContext(1, 0, 1))
    labels, weights = [], []
    for x, y, w in ds:
        assert x.shape[0] == 30
        labels.append(y.numpy()), weights.append(w.numpy())
    w = np.concatenate(weights)
    assert w.sum() == 100 and w[:100].all() and not w[100:].any()
    np.testing.assert_array_equal(np.concatenate(labels)[:100], data.test_labels)
    assert p.eval_split("train_eval").num_examples == 50


def test_crop_offsets_cover_the_pad_range():
    draws = tf.constant([[0.0, 0.0, 0.0], [0.99, 0.999, 0.999]], tf.float32)
    images = tf.reshape(tf.range(2 * 4 * 4, dtype=tf.float32), [2, 4, 4, 1])
    out = augment_lib.pad_crop(images, draws[:, 1], draws[:, 2]).numpy()
    assert np.all(out[0, :4, :4] == 0)  # offset 0: all padding
    assert np.all(out[1, -4:, -4:] == 0)  # offset 8: all padding
