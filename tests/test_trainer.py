"""The training engine: determinism, resume, strategies, rewind checkpoints."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import parse_config, tiny_pipeline
from tf_lottery.core import records, store
from tf_lottery.training import checkpoints
from tf_lottery.training.trainer import (
    FromCheckpoint,
    FromSeed,
    RunSpec,
    SgdNoise,
    Trainer,
    TrainerHooks,
)

STEPS = 40


def config(tmp_path, *extra):
    return parse_config(
        f"--train_steps={STEPS}", "--batch_size=20", "--eval_batch_size=50",
        "--train_eval_examples=100", "--steps_per_loop=7", "--checkpoint_every=10",
        "--log_every=20", "--rewind_steps=0,15", *extra, model_dir=str(tmp_path))


def run_spec(c, run_dir, order=None, aug=None, **kw):
    kw.setdefault("rewind_steps", c.train.rewind_steps)
    kw.setdefault("start", FromSeed(c.train.init_seed))
    return RunSpec(run_dir=str(run_dir), end_step=c.train.train_steps,
                   noise=SgdNoise(c.train.data_order_seed if order is None else order,
                                  c.train.augment_seed if aug is None else aug), **kw)


def weights(trainer):
    return [v.numpy() for v in trainer.model.weights]


def assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def train(c, run_dir, strategy=None, **kw):
    t = Trainer(c, strategy or tf.distribute.get_strategy(), tiny_pipeline(c))
    t.train(run_spec(c, run_dir, **kw))
    return t


def test_same_seeds_give_bitwise_identical_weights(tmp_path):
    c = config(tmp_path)
    a = train(c, tmp_path / "a")
    b = train(c, tmp_path / "b")
    assert_bitwise_equal(weights(a), weights(b))


def test_data_order_seed_alone_changes_the_weights(tmp_path):
    c = config(tmp_path)
    a = train(c, tmp_path / "a")
    b = train(c, tmp_path / "b", order=1)
    assert not np.array_equal(weights(a)[0], weights(b)[0])


def test_augment_seed_alone_changes_the_weights_under_augmentation(tmp_path):
    c = config(tmp_path, "--augment=crop_flip")
    a = train(c, tmp_path / "a")
    b = train(c, tmp_path / "b", aug=1)
    assert not np.array_equal(weights(a)[0], weights(b)[0])


class Crash(Exception):
    pass


def test_interrupted_run_resumes_bitwise_identical(tmp_path):
    c = config(tmp_path, "--optimizer=momentum", "--learning_rate=0.05")
    uninterrupted = train(c, tmp_path / "a")

    def crash_after_step_25(model):
        tf.debugging.assert_less(crashing.step, tf.constant(25, tf.int64))

    crashing = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c),
                       TrainerHooks(post_update_fns=(crash_after_step_25,)))
    with pytest.raises(tf.errors.InvalidArgumentError):
        crashing.train(run_spec(c, tmp_path / "b"))
    assert not os.path.exists(tmp_path / "b" / "results.json")

    resumed = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    resumed.train(run_spec(c, tmp_path / "b"))
    assert_bitwise_equal(weights(uninterrupted), weights(resumed))
    assert_bitwise_equal([v.numpy() for v in uninterrupted.optimizer.variables],
                         [v.numpy() for v in resumed.optimizer.variables])


def test_finished_run_is_not_recomputed(tmp_path):
    c = config(tmp_path)
    first = train(c, tmp_path / "a")
    before = {p: os.stat(os.path.join(d, p)).st_mtime_ns
              for d, _, fs in os.walk(tmp_path / "a") for p in fs}
    again = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    results = again.train(run_spec(c, tmp_path / "a"))
    after = {p: os.stat(os.path.join(d, p)).st_mtime_ns
             for d, _, fs in os.walk(tmp_path / "a") for p in fs}
    assert before == after
    assert results.status == "complete" and results.step == STEPS
    assert results == store.read(str(tmp_path / "a" / "results.json"), records.RunRecord,
                                 str(tmp_path / "a"))
    del first


def test_rewind_checkpoints_hold_w_k(tmp_path):
    c = config(tmp_path)
    full = train(c, tmp_path / "a")
    assert checkpoints.rewind_steps_saved(str(tmp_path / "a")) == [0, 15]
    assert int(full.step.numpy()) == STEPS
    # A run stopped at 15 ends with exactly the weights saved as W_15.
    short = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    short.train(RunSpec(str(tmp_path / "s"), 15, SgdNoise(0, 0), FromSeed(0)))
    probe = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), init_seed=99)
    probe.restore_from(checkpoints.rewind_prefix(str(tmp_path / "a"), 15), False)
    assert int(probe.step.numpy()) == 15
    assert_bitwise_equal(weights(short), weights(probe))
    # W_0 is the initialization drawn from init_seed.
    fresh = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    probe.restore_from(checkpoints.rewind_prefix(str(tmp_path / "a"), 0), False)
    assert_bitwise_equal(weights(fresh), weights(probe))


def test_child_from_w_k_continues_like_the_parent(tmp_path):
    """Training 15 -> T from W_15 with the parent's seeds reproduces the parent."""
    c = config(tmp_path)
    parent = train(c, tmp_path / "p")
    child = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), init_seed=5)
    child.train(run_spec(c, tmp_path / "c", rewind_steps=(), start=FromCheckpoint(
        checkpoints.rewind_prefix(str(tmp_path / "p"), 15))))
    assert_bitwise_equal(weights(parent), weights(child))


def test_reset_optimizer_keeps_weights_and_step(tmp_path):
    c = config(tmp_path, "--optimizer=adam")
    train(c, tmp_path / "p")
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), init_seed=7)
    t.restore_from(checkpoints.rewind_prefix(str(tmp_path / "p"), 15), reset_optimizer=True)
    assert int(t.step.numpy()) == 15
    assert all(not np.any(v.numpy()) for v in t.optimizer.variables)
    keep = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), init_seed=7)
    keep.restore_from(checkpoints.rewind_prefix(str(tmp_path / "p"), 15), False)
    assert_bitwise_equal(weights(t), weights(keep))
    assert int(keep.optimizer.iterations.numpy()) == 15


def test_mirrored_matches_one_device(tmp_path, mirrored):
    c = config(tmp_path, "--optimizer=momentum", "--learning_rate=0.05",
               "--weight_decay=1e-3", "--label_smoothing=0.1", "--grad_clip_norm=1.0",
               "--augment=crop_flip")
    one = train(c, tmp_path / "one")
    two = train(c, tmp_path / "two", strategy=mirrored)
    assert two.strategy.num_replicas_in_sync == 2
    for a, b in zip(weights(one), weights(two), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    ea, eb = one.evaluate("test"), two.evaluate("test")
    assert ea["examples"] == eb["examples"] == 100
    assert ea["accuracy"] == pytest.approx(eb["accuracy"], abs=0.011)


def test_training_learns_the_tiny_task(tmp_path):
    c = parse_config("--train_steps=120", "--batch_size=20", "--eval_batch_size=50",
                     "--learning_rate=3e-3", model_dir=str(tmp_path))
    t = train(c, tmp_path / "a")
    assert t.evaluate("test")["accuracy"] > 0.9


def test_evaluate_matches_a_direct_computation(tmp_path):
    c = config(tmp_path)
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    data = t.pipeline._test
    logits = t.model(data[0].astype(np.float32) / 255.0).numpy()
    expected = float(np.mean(logits.argmax(-1) == data[1]))
    assert t.evaluate("test")["accuracy"] == pytest.approx(expected, abs=1e-6)


def test_a_run_from_a_seed_starts_there_whatever_the_trainer_held(tmp_path):
    """FromSeed sets W_0, the step and the optimizer state: a trainer that has
    trained before trains a new run bit for bit like a fresh one."""
    c = config(tmp_path, "--optimizer=adam")
    built_from_3 = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), init_seed=3)
    fresh = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    fresh.initialize(3)
    assert_bitwise_equal(weights(built_from_3), weights(fresh))
    fresh.train(run_spec(c, tmp_path / "fresh", start=FromSeed(3)))
    used = train(c, tmp_path / "first", order=5)
    used.train(run_spec(c, tmp_path / "second", start=FromSeed(3)))
    assert_bitwise_equal(weights(fresh), weights(used))
    assert_bitwise_equal([v.numpy() for v in fresh.optimizer.variables],
                         [v.numpy() for v in used.optimizer.variables])


def test_a_run_from_a_checkpoint_applies_then_after_loading(tmp_path):
    c = config(tmp_path)
    train(c, tmp_path / "p")
    seen = []
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    start = FromCheckpoint(checkpoints.rewind_prefix(str(tmp_path / "p"), 15),
                           then=lambda tr: seen.append(int(tr.step.numpy())))
    t.train(run_spec(c, tmp_path / "c", rewind_steps=(), start=start))
    assert seen == [15]
    # A finished run is not redone, so its start is not applied again.
    t.train(run_spec(c, tmp_path / "c", rewind_steps=(), start=start))
    assert seen == [15]
