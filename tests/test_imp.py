"""IMP with rewinding: the rewind manager, the levels, baselines, resume, flags."""

import dataclasses
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import parse_config, tiny_pipeline
from tests.test_pruning_wrappers import assert_checkpoint_is_masked, random_masks
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import imp
from tf_lottery.pruning import masks, wrappers
from tf_lottery.pruning.rewind import RewindManager
from tf_lottery.training import checkpoints
from tf_lottery.training.trainer import FromSeed, RunSpec, SgdNoise

NOISE = SgdNoise(0, 0)
T = 12


def config(tmp_path, *extra):
    return parse_config(
        "--experiment=imp", f"--train_steps={T}", "--batch_size=20",
        "--eval_batch_size=50", "--train_eval_examples=100", "--steps_per_loop=4",
        "--checkpoint_every=4", "--log_every=12", *extra, model_dir=str(tmp_path))


def values(model):
    return [v.numpy() for v in model.weights]


def test_rewinding_restores_w_k_exactly_on_unpruned_positions(tmp_path):
    c = config(tmp_path, "--model=conv_bn_for_tests", "--optimizer=adam")
    parent_dir = str(tmp_path / "level_00")
    parent = imp.make_trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    parent.train(RunSpec(parent_dir, T, NOISE, FromSeed(0), rewind_steps=(4,)))
    w_k = imp.make_trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    w_k.restore_from(checkpoints.rewind_prefix(parent_dir, 4), reset_optimizer=False)
    moving_mean = w_k.model.get_layer("bn").moving_mean.numpy()
    assert np.any(moving_mean != 0)  # BatchNorm statistics moved before k
    mask = random_masks(w_k.model, seed=3)

    child = imp.make_trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    for policy in ("reset", "restore"):
        rewind = RewindManager(parent_dir, 4, policy)
        # Rewinding must overwrite whatever the model held before.
        child.model.set_weights([np.full_like(v, 7.0) for v in values(child.model)])
        for v in child.optimizer.variables:
            v.assign(tf.fill(v.shape, tf.constant(7, v.dtype)))
        # A run that stops at k shows the rewound state itself.
        child.train(rewind.run_spec(str(tmp_path / policy), 4, NOISE, mask))
        assert int(child.step.numpy()) == 4
        prunable = {id(w): n for n, (w, _) in wrappers.pruning_vars(child.model).items()}
        for got, want in zip(child.model.weights, w_k.model.weights, strict=True):
            expected = want.numpy()
            if id(got) in prunable:
                expected = expected * mask[prunable[id(got)]]
            elif "mask" in got.name:
                continue
            np.testing.assert_array_equal(got.numpy(), expected, err_msg=got.name)
        np.testing.assert_array_equal(child.model.get_layer("bn").moving_mean.numpy(),
                                      moving_mean)
        opt = [v.numpy() for v in child.optimizer.variables]
        if policy == "reset":
            assert all(not np.any(v) for v in opt)
        else:
            for got, want in zip(opt, (v.numpy() for v in w_k.optimizer.variables),
                                 strict=True):
                np.testing.assert_array_equal(got, want)

    # Training on from the reset state: masked gradients keep the Adam moments
    # of pruned weights at exactly zero.
    rewind = RewindManager(parent_dir, 4, "reset")
    child.train(rewind.run_spec(str(tmp_path / "reset_to_T"), T, NOISE, mask))
    kernel_slots = [v.numpy() for v in child.optimizer.variables if v.shape == (3, 3, 1, 4)]
    assert len(kernel_slots) == 2
    for slot in kernel_slots:
        assert not np.any(slot[mask["conv/kernel"] == 0])
        assert np.any(slot[mask["conv/kernel"] == 1])


def test_rewinding_with_all_ones_and_restored_state_retraces_the_parent(tmp_path):
    """Step, LR schedule and data order all continue from k."""
    c = config(tmp_path)
    parent_dir = str(tmp_path / "level_00")
    parent = imp.make_trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    parent.train(RunSpec(parent_dir, T, NOISE, FromSeed(0), rewind_steps=(5,)))
    rewind = RewindManager(parent_dir, 5, "restore")
    child = imp.make_trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    ones = masks.ones_like(wrappers.weight_values(child.model))
    child.train(rewind.run_spec(str(tmp_path / "child"), T, NOISE, ones))
    for a, b in zip(values(parent.model), values(child.model), strict=True):
        np.testing.assert_array_equal(a, b)


def mtimes(root):
    return {p: os.stat(p).st_mtime_ns
            for p in glob.glob(os.path.join(root, "**", "*"), recursive=True)
            if os.path.isfile(p)}


def final_values(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith("model/")}


def test_imp_end_to_end_three_levels_with_baselines_and_resume(tmp_path):
    c = config(tmp_path, "--imp_levels=3", "--prune_layer_rates=logits:0.5",
               "--imp_baselines=random_prune,random_reinit", "--imp_baseline_levels=2")
    strategy = tf.distribute.get_strategy()
    results = imp.imp(c, strategy, tiny_pipeline(c))
    assert results.status == "complete"
    assert store.read(str(tmp_path / "results.json"), records.ImpResults,
                      str(tmp_path)) == results
    levels = results.levels
    assert [r.level for r in levels] == [0, 1, 2, 3]

    probe = imp.make_trainer(c, strategy, tiny_pipeline(c))
    rule = masks.PruningRule("global", (("logits", 0.5),))
    previous = None
    for r in levels:
        level = r.level
        mask = masks.load(layout.mask_file(layout.level_dir(str(tmp_path), level)))
        fc = {k: v for k, v in mask.items() if k != "logits/kernel"}
        assert abs(masks.count(fc) - masks.size(fc) * 0.8 ** level) <= 1
        assert abs(mask["logits/kernel"].sum() - 1000 * 0.9 ** level) <= 1
        assert r.density == masks.density(mask)
        assert r.layer_density == masks.layer_densities(mask)
        if previous is not None:
            # Level L prunes level L-1's trained weights W_T.
            probe.restore_from(levels[level - 1].run_dir + "/final/ckpt", True)
            want = masks.prune(wrappers.weight_values(probe.model), previous,
                               masks.level_densities(list(mask), 0.2, level, rule), rule)
            for k in mask:
                np.testing.assert_array_equal(mask[k], want[k])
            assert_checkpoint_is_masked(r.run_dir + "/final/ckpt")
        previous = mask
        assert set(r.baselines) == ({"random_prune", "random_reinit"} if level == 2
                                    else set())

    level2 = levels[2]
    shuffled = masks.load(os.path.join(level2.run_dir, "random_prune", layout.MASK_FILE))
    reinit_dir = os.path.join(level2.run_dir, "random_reinit")
    mask2 = masks.load(os.path.join(level2.run_dir, layout.MASK_FILE))
    assert masks.layer_densities(shuffled) == level2.layer_density
    assert not np.array_equal(shuffled["fc1/kernel"], mask2["fc1/kernel"])
    # Random reinit: same mask, different starting weights on the survivors.
    reinit = final_values(checkpoints.rewind_prefix(reinit_dir, 0))
    rewound = final_values(checkpoints.rewind_prefix(level2.run_dir, 0))
    key = "model/layer_with_weights-0/layer/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    mask_key = "model/layer_with_weights-0/mask/.ATTRIBUTES/VARIABLE_VALUE"
    np.testing.assert_array_equal(reinit[mask_key], mask2["fc1/kernel"])
    survivors = mask2["fc1/kernel"] == 1
    assert not np.any(reinit[key][survivors] == rewound[key][survivors])
    assert not np.any(reinit[key][~survivors])
    assert_checkpoint_is_masked(os.path.join(reinit_dir, "final", "ckpt"))

    # TensorBoard: a summary run per branch, accuracy against the level and
    # against the ppm pruned (steps that grow as pruning proceeds).
    def steps(run):
        tags = {}
        for path in glob.glob(os.path.join(run, "events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for v in event.summary.value:
                    tags.setdefault(v.tag, []).append(event.step)
        return tags

    imp_run = steps(layout.summary_run(str(tmp_path), "imp"))
    assert sorted(imp_run["imp/test_accuracy"]) == [0, 1, 2, 3]
    pruned = [layout.ppm_pruned(lv.density) for lv in levels]
    assert sorted(imp_run["imp_vs_pruned/test_accuracy"]) == pruned
    assert pruned[0] == 0 and pruned == sorted(set(pruned))
    assert steps(layout.summary_run(str(tmp_path), "random_prune"))[
        "imp/test_accuracy"] == [2]
    assert sorted(steps(layout.summary_dir(str(tmp_path)))["imp/density"]) == [0, 1, 2, 3]

    # A finished run is not touched again.
    before = mtimes(str(tmp_path / "level_01"))
    assert imp.imp(c, strategy, tiny_pipeline(c)).levels == levels
    assert mtimes(str(tmp_path / "level_01")) == before

    # A run killed during level 3 redoes only level 3, with the same result.
    level3 = levels[3].run_dir
    final3 = final_values(level3 + "/final/ckpt")
    for name in os.listdir(level3):
        if name != layout.MASK_FILE:
            path = os.path.join(level3, name)
            tf.io.gfile.rmtree(path) if os.path.isdir(path) else os.remove(path)
    store.write(str(tmp_path / "results.json"),
                dataclasses.replace(results, status="running", levels=levels[:3]),
                str(tmp_path))
    resumed = imp.imp(c, strategy, tiny_pipeline(c))
    assert mtimes(str(tmp_path / "level_01")) == before
    assert [r.test_accuracy for r in resumed.levels] == [r.test_accuracy for r in levels]
    for k, v in final_values(level3 + "/final/ckpt").items():
        np.testing.assert_array_equal(v, final3[k], err_msg=k)


def test_one_shot_layerwise_with_an_excluded_layer(tmp_path):
    c = config(tmp_path, "--train_steps=8", "--target_density=0.3",
               "--pruning_scope=layerwise", "--prune_exclude=logits", "--rewind_step=4",
               "--rewind_steps=0")
    results = imp.imp(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    assert [r.level for r in results.levels] == [0, 1]
    one_shot = results.levels[1]
    assert sorted(one_shot.layer_density) == ["fc1/kernel", "fc2/kernel"]
    for name, n in (("fc1/kernel", 784 * 300), ("fc2/kernel", 300 * 100)):
        assert one_shot.layer_density[name] == round(0.3 * n) / n
    # Level 0 kept W_0 and W_4; the one-shot level started from W_4.
    assert checkpoints.rewind_steps_saved(str(tmp_path / "level_00")) == [0, 4]
    assert checkpoints.rewind_steps_saved(str(tmp_path / "level_01")) == [4]


def test_main_knows_the_imp_experiment():
    from tf_lottery import experiments

    assert experiments.get("imp") is imp.EXPERIMENT


def test_one_shot_is_one_level_of_fraction_one_minus_density():
    p = parse_config("--experiment=imp", "--train_steps=10", "--target_density=0.3").pruning
    assert (p.levels, p.prune_fraction, p.target_density) == (1, pytest.approx(0.7), 0.3)
    assert parse_config("--experiment=imp", "--train_steps=10",
                        "--prune_layer_rates=logits:0.5").pruning.rates() == (
        ("logits", 0.5),)


@pytest.mark.parametrize("args, flag", [
    (["--target_density=0.3", "--imp_levels=3"], "--target_density"),
    (["--target_density=1.5"], "--target_density"),
    (["--prune_fraction=1"], "--prune_fraction"),
    (["--imp_levels=0"], "--imp_levels"),
    (["--rewind_step=1000", "--train_steps=10"], "--rewind_step"),
    (["--prune_exclude=fc(1"], "--prune_exclude"),
    (["--prune_layer_rates=logits"], "--prune_layer_rates"),
    (["--prune_layer_rates=logits:6"], "--prune_layer_rates"),
    (["--imp_baselines=shuffle"], "--imp_baselines"),
    (["--imp_levels=3", "--imp_baseline_levels=4"], "--imp_baseline_levels"),
    (["--imp_instability_levels=1"], "--imp_instability_levels needs --instability"),
    (["--instability", "--imp_levels=2", "--imp_instability_levels=3"],
     "--imp_instability_levels"),
])
def test_bad_imp_flags_name_the_flag(args, flag):
    with pytest.raises(ConfigError, match=flag):
        parse_config("--experiment=imp", "--train_steps=100", *args)


def test_unknown_rewind_checkpoint_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="step 3"):
        _ = RewindManager(str(tmp_path), 3).checkpoint


def test_sparse_instability_children_keep_the_level_mask(tmp_path):
    c = config(tmp_path, "--imp_levels=1", "--instability", "--imp_instability_levels=1",
               "--interpolation_points=3")
    results = imp.imp(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    assert [(r.instability is not None) for r in results.levels] == [False, True]
    record = results.levels[1].instability
    assert record.rewind_step == 0 and len(record.children) == 2
    assert record.barrier["test"].n == 1
    assert isinstance(record.stable, bool)
    mask = masks.load(layout.mask_file(layout.level_dir(str(tmp_path), 1)))
    ends = []
    for child in record.children:
        final = os.path.join(child.run_dir, "final", "ckpt")
        assert_checkpoint_is_masked(final)
        values = final_values(final)
        np.testing.assert_array_equal(
            values["model/layer_with_weights-0/mask/.ATTRIBUTES/VARIABLE_VALUE"],
            mask["fc1/kernel"])
        ends.append(values["model/layer_with_weights-0/layer/kernel/.ATTRIBUTES/"
                           "VARIABLE_VALUE"])
    assert not np.array_equal(ends[0], ends[1])  # different SGD noise
    (pair,) = record.pairs
    assert pair == store.read(layout.pair_file(layout.sparse_instability_dir(
        str(tmp_path), 1), 0, 1), records.PairRecord, str(tmp_path))
    assert pair.barrier["test"] == record.barrier["test"].mean
    tags = set()
    for path in glob.glob(os.path.join(layout.summary_run(str(tmp_path), "imp"),
                                       "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update((v.tag, event.step) for v in event.summary.value)
    assert ("imp/test_barrier", 1) in tags and ("imp/train_barrier", 1) in tags


def test_baselines_get_sparse_instability_from_their_own_start(tmp_path):
    """--instability at a baseline's level analyses every branch: a baseline's
    children start from its own mask (random_prune) or init (random_reinit)
    on W_k, keep that mask, and their barrier lands in its record, its
    instability.json and its TensorBoard run."""
    c = config(tmp_path, "--imp_levels=1", "--imp_baselines=random_prune,random_reinit",
               "--instability", "--imp_instability_levels=1", "--interpolation_points=3")
    results = imp.imp(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    level = results.levels[1]
    assert level.instability is not None and set(level.baselines) == {
        "random_prune", "random_reinit"}
    model_dir = str(tmp_path)
    level_mask = masks.load(layout.mask_file(layout.level_dir(model_dir, 1)))
    own_mask = masks.load(layout.mask_file(layout.baseline_dir(model_dir, 1, "random_prune")))
    assert not np.array_equal(own_mask["fc1/kernel"], level_mask["fc1/kernel"])
    kernel = "model/layer_with_weights-0/layer/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    mask = "model/layer_with_weights-0/mask/.ATTRIBUTES/VARIABLE_VALUE"
    imp_ends = [final_values(os.path.join(ch.run_dir, "final", "ckpt"))[kernel]
                for ch in level.instability.children]
    for name, expected in (("random_prune", own_mask), ("random_reinit", level_mask)):
        record = level.baselines[name].instability
        assert record is not None and len(record.children) == 2 and len(record.pairs) == 1
        assert record.barrier["test"].mean == record.pairs[0].barrier["test"]
        assert record == store.read(layout.sparse_instability_file(model_dir, 1, name),
                                    records.SparseInstabilityRecord, model_dir)
        for child, imp_end in zip(record.children, imp_ends, strict=True):
            assert child.run_dir.startswith(layout.sparse_instability_dir(model_dir, 1, name))
            values = final_values(os.path.join(child.run_dir, "final", "ckpt"))
            np.testing.assert_array_equal(values[mask], expected["fc1/kernel"])
            # Same SGD noise as IMP's child of that index: only the start differs.
            assert not np.array_equal(values[kernel], imp_end)
        tags = set()
        for path in glob.glob(os.path.join(layout.summary_run(model_dir, name),
                                           "events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                tags.update((v.tag, event.step) for v in event.summary.value)
        assert ("imp/test_barrier", 1) in tags and ("imp/test_accuracy", 1) in tags
    again = store.read(layout.results_file(model_dir), records.ImpResults, model_dir)
    assert again == results
