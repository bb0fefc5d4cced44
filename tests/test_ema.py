"""Exponential moving average of the weights (--ema_decay): the update, what is
evaluated, checkpoints and resume, rewinding, masks, replicas."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import parse_config, tiny_pipeline
from tf_lottery.pruning import wrappers
from tf_lottery.training import checkpoints
from tf_lottery.training.trainer import (
    FromCheckpoint,
    FromSeed,
    RunSpec,
    SgdNoise,
    Trainer,
    TrainerHooks,
)

STEPS = 30


def config(tmp_path, *extra):
    return parse_config(
        f"--train_steps={STEPS}", "--batch_size=20", "--eval_batch_size=50",
        "--train_eval_examples=100", "--steps_per_loop=7", "--checkpoint_every=10",
        "--rewind_steps=0,15", "--optimizer=momentum", "--learning_rate=0.05",
        "--ema_decay=0.9", *extra, model_dir=str(tmp_path))


def run(c, run_dir, trainer=None, **kw):
    trainer = trainer or Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    kw.setdefault("rewind_steps", c.train.rewind_steps)
    kw.setdefault("start", FromSeed(c.train.init_seed))
    results = trainer.train(RunSpec(str(run_dir), c.train.train_steps, SgdNoise(0, 0), **kw))
    return trainer, results


def test_average_follows_the_documented_update(tmp_path):
    c = config(tmp_path)
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    iterator = iter(t.strategy.distribute_datasets_from_function(
        t.pipeline.train_dataset_fn(0, 12, 0, 0)))
    expected = [v.numpy() for v in t.ema.sources]
    for s in range(12):
        t._train_loop(iterator, tf.constant(1, tf.int64))
        decay = min(0.9, (1 + s) / (10 + s))
        expected = [a - (1 - decay) * (a - v.numpy())
                    for a, v in zip(expected, t.ema.sources, strict=True)]
    for got, want in zip(t.ema.values(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert not np.allclose(t.ema.values()[0], t.ema.sources[0].numpy())


def test_runs_report_the_average_and_keep_training_the_weights(tmp_path):
    c = config(tmp_path)
    t, results = run(c, tmp_path / "a")
    trained = [v.numpy() for v in t.model.weights]
    with t.evaluated_weights():
        assert t.evaluate_all() == results.metrics.to_json()
        np.testing.assert_array_equal(t.model.weights[0].numpy(), t.ema.values()[0])
    for v, value in zip(t.model.weights, trained, strict=True):
        np.testing.assert_array_equal(v.numpy(), value)
    assert t.evaluate("test")["loss"] != results.metrics.test_loss
    # The final checkpoint keeps both; restore_evaluated_weights loads the average.
    probe = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), init_seed=9)
    probe.restore_evaluated_weights(results.final_checkpoint)
    for v, average in zip(probe.ema.sources, t.ema.values(), strict=True):
        np.testing.assert_array_equal(v.numpy(), average)
    assert probe.evaluate_all() == results.metrics.to_json()


class Crash(Exception):
    pass


def test_interrupted_run_resumes_the_average_bitwise(tmp_path):
    c = config(tmp_path)
    uninterrupted, _ = run(c, tmp_path / "a")
    crashing = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), TrainerHooks(
        post_update_fns=(lambda model: tf.debugging.assert_less(
            crashing.step, tf.constant(17, tf.int64)),)))
    with pytest.raises(tf.errors.InvalidArgumentError):
        run(c, tmp_path / "b", crashing)
    resumed, _ = run(c, tmp_path / "b")
    for a, b in zip(uninterrupted.ema.values(), resumed.ema.values(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_child_continues_the_parents_average_unless_its_optimizer_is_reset(tmp_path):
    c = config(tmp_path)
    parent, _ = run(c, tmp_path / "p")
    w15 = checkpoints.rewind_prefix(str(tmp_path / "p"), 15)
    child, _ = run(c, tmp_path / "c", rewind_steps=(), start=FromCheckpoint(w15))
    for a, b in zip(parent.ema.values(), child.ema.values(), strict=True):
        np.testing.assert_array_equal(a, b)
    # A reset restarts the average at W_15.
    reset, _ = run(c, tmp_path / "r", rewind_steps=(),
                   start=FromCheckpoint(w15, reset_optimizer=True))
    assert not np.array_equal(reset.ema.values()[0], parent.ema.values()[0])


def test_pruned_weights_are_exactly_zero_in_the_average(tmp_path):
    c = config(tmp_path)
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), wrappers.masked_training())
    rng = np.random.default_rng(0)
    masks = {name: (rng.random(w.shape) < 0.3).astype(np.float32)
             for name, (w, _) in wrappers.pruning_vars(t.model).items()}
    # IMP applies masks in its start's then, after the trainer (and its average) exist.
    run(c, tmp_path / "a", t, start=FromSeed(
        c.train.init_seed, then=lambda tr: wrappers.set_masks(tr.model, masks)))
    averages = dict(zip([v.ref() for v in t.ema.sources], t.ema.values(), strict=True))
    for name, (weight, mask) in wrappers.pruning_vars(t.model).items():
        np.testing.assert_array_equal(averages[mask.ref()], masks[name])
        assert not np.any(averages[weight.ref()][masks[name] == 0])
        assert np.any(averages[weight.ref()][masks[name] == 1])


def test_average_on_two_replicas_matches_one_device(tmp_path, mirrored):
    c = config(tmp_path, "--augment=crop_flip")
    one, _ = run(c, tmp_path / "one")
    two, _ = run(c, tmp_path / "two", Trainer(c, mirrored, tiny_pipeline(c)))
    for a, b in zip(one.ema.values(), two.ema.values(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
