"""Runs stepped side by side in one compiled loop (training.packed) train as
they would alone: same weights, optimizer state, steps and losses."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import parse_config, tiny_pipeline
from tf_lottery.training.packed import PackedLoop
from tf_lottery.training.trainer import Trainer

STEPS = 7


def trainers(c, seeds):
    pipeline = tiny_pipeline(c)
    return [Trainer(c, tf.distribute.get_strategy(), pipeline, init_seed=s) for s in seeds]


def iterators(ts, orders):
    return [iter(t.strategy.distribute_datasets_from_function(
        t.pipeline.train_dataset_fn(0, STEPS, order, order)))
        for t, order in zip(ts, orders, strict=True)]


def state(t):
    return [v.numpy() for v in (*t.model.weights, *t.optimizer.variables, t.step)]


@pytest.mark.parametrize("extra", [
    ("--model=lenet_300_100", "--optimizer=adam", "--learning_rate=1e-3"),
    ("--model=lenet_300_100", "--optimizer=momentum", "--learning_rate=0.05", "--weight_decay=1e-4",
     "--augment=crop_flip", "--warmup_steps=3", "--jit_compile"),
], ids=["adam", "momentum_crop_flip_jit"])
def test_packed_runs_end_bitwise_like_each_run_alone(extra):
    # Two children of one start with different SGD noise, and a third run
    # from another seed: every run's math must stay its own.
    c = parse_config("--batch_size=20", f"--train_steps={STEPS}", *extra)
    seeds, orders = (0, 0, 5), (1, 2, 3)
    alone = trainers(c, seeds)
    alone_totals = []
    for t, it in zip(alone, iterators(alone, orders), strict=True):
        alone_totals.append(sum(t._train_loop(it, tf.constant(n, tf.int64))[0].numpy()
                                for n in (3, STEPS - 3)))
    packed = trainers(c, seeds)
    loop = PackedLoop(packed)
    its = iterators(packed, orders)
    totals = loop(its, 3).numpy() + loop(its, STEPS - 3).numpy()
    for a, p in zip(alone, packed, strict=True):
        assert int(p.step.numpy()) == STEPS
        for x, y in zip(state(a), state(p), strict=True):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(totals, np.stack(alone_totals))
    # The children did diverge: the check above compares distinct runs.
    assert not np.array_equal(packed[0].model.weights[0].numpy(),
                              packed[1].model.weights[0].numpy())


def test_packed_loop_refuses_mismatched_inputs(mirrored):
    c = parse_config("--batch_size=20", f"--train_steps={STEPS}")
    one = trainers(c, (0,))
    with pytest.raises(ValueError, match="2 iterators for 1 trainers"):
        PackedLoop(one)(iterators(one, (0,)) * 2, 1)
    other = Trainer(c, mirrored, tiny_pipeline(c))
    with pytest.raises(ValueError, match="share one tf.distribute strategy"):
        PackedLoop([*one, other])
