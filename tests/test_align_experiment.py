"""--align=weights in the instability analysis: every pair gets its aligned
path and the matching's cost, aggregated like the raw barrier; the knob at its
default changes no recipe hash; resume never redoes a finished aligned pair."""

import dataclasses
import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import parse_config, tiny_data, tiny_pipeline
from tests.test_align_cli import permuted_copy, save
from tests.test_instability import FLAGS, scalars
from tf_lottery import config as config_lib
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import instability as analysis
from tf_lottery.models import permutation
from tf_lottery.stability import aligned_paths, barrier
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.training.trainer import Trainer

SPLITS = ("test", "train")


def config(model_dir, *extra):
    return parse_config(*FLAGS, *extra, model_dir=str(model_dir))


# -- the knob -------------------------------------------------------------------------

def test_align_none_keeps_recipes_hashes_and_run_dirs():
    plain = config("/tmp/unused")
    aligned = config("/tmp/unused", "--align=weights")
    assert plain.instability.align == "none"
    # The hash of a recipe at --align=none is the hash it had before the knob.
    recipe = plain.recipe_dict()
    # Every late knob at its default is left out, align and those added since.
    for knob in ("align", "layerwise_barriers", "layerwise_points", "child_noise"):
        recipe["instability"].pop(knob)
    before = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    assert plain.recipe_hash() == before
    assert aligned.recipe_hash() != plain.recipe_hash()
    # A config.json written before the knob: unchanged at none, a change at weights.
    recorded = json.loads(plain.to_json())
    recorded["instability"].pop("align")
    assert config_lib.recipe_changes(recorded, plain) == []
    assert config_lib.recipe_changes(recorded, aligned) == ["instability.align"]
    assert config_lib.config_from_json(json.dumps(recorded)) == plain
    with pytest.raises(ConfigError, match="instability.align"):
        dataclasses.replace(plain.instability, align="activations")


# -- the experiment ---------------------------------------------------------------------

def write_config(c):
    """What ``main`` writes before the analysis (the report looks for it)."""
    with open(layout.config_file(c.runtime.model_dir), "w") as f:
        f.write(c.to_json())


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def aligned_analysis(tmp_path_factory):
    """Two replicates with --align=weights, killed while aligning the second
    pair it evaluates (k=0, replicate 0), then relaunched."""
    model_dir = tmp_path_factory.mktemp("aligned")
    c = config(model_dir, "--align=weights", "--replicates=2")
    write_config(c)
    real = PathEvaluator.curves
    calls = []

    def dies_on_fourth_path(*args, **kwargs):
        calls.append(kwargs.get("label"))
        if len(calls) == 4:
            raise Killed
        return real(*args, **kwargs)

    pipeline = tiny_pipeline(c)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PathEvaluator, "curves", dies_on_fourth_path)
        with pytest.raises(Killed):
            analysis.instability(c, tf.distribute.get_strategy(), pipeline)
    first = list(calls)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PathEvaluator, "curves",
                   lambda *a, **kw: calls.append(kw.get("label")) or real(*a, **kw))
        results = analysis.instability(c, tf.distribute.get_strategy(), pipeline)
    return c, model_dir, results, first, calls[len(first):]


def all_pairs(results):
    for point in results.rewind_steps:
        for rep in point.replicates:
            yield from rep.pairs
    yield from results.independent.pairs


def test_every_pair_has_its_aligned_path_and_matching_cost(aligned_analysis):
    c, _, results, *_ = aligned_analysis
    assert results.settings.align == "weights"
    pairs = list(all_pairs(results))
    assert len(pairs) == 2 * 2 + 1  # (k=0, k=10) x 2 replicates + the independent pair
    for pair in pairs:
        aligned = pair.aligned
        assert aligned is not None
        m = aligned.matching
        assert m.groups == 2 and m.iterations >= 1 and m.wall_time_s >= 0
        assert m.converged and len(m.objective) == m.iterations + 1
        assert (np.diff(m.objective) >= 0).all()  # never worsens
        for split in SPLITS:
            curve = aligned.error[split]
            assert len(curve) == len(pair.alphas) == c.instability.interpolation_points
            assert aligned.barrier[split] == barrier.error_barrier(curve)
            # Both paths start at network 1 itself ...
            assert curve[0] == pair.error[split][0]
            assert aligned.loss[split][0] == pair.loss[split][0]
            # ... and end at network 2 and its permutation, the same function
            # up to float summation order.
            assert aligned.loss[split][-1] == pytest.approx(pair.loss[split][-1], rel=1e-5)
            assert abs(curve[-1] - pair.error[split][-1]) <= 0.011  # one example of 100


def test_aligned_barriers_are_aggregated_like_the_raw_ones(aligned_analysis):
    _, _, results, *_ = aligned_analysis
    for point in results.rewind_steps:
        for split in SPLITS:
            per_rep = [[p.aligned.barrier[split] for p in rep.pairs]
                       for rep in point.replicates]
            expected = records.Aggregate.from_json(barrier.aggregate(per_rep))
            assert point.aligned_barrier[split] == expected
            for rep, values in zip(point.replicates, per_rep, strict=True):
                assert rep.aligned_barrier[split].mean == np.mean(values)
    independent = results.independent
    for split in SPLITS:
        (pair,) = independent.pairs
        assert independent.aligned_barrier[split].mean == pair.aligned.barrier[split]


def test_relaunch_does_not_redo_finished_aligned_pairs(aligned_analysis):
    _, _, _, first, second = aligned_analysis
    assert first == ["independent parents (0,1)", "independent parents (0,1) aligned",
                     "replicate 0 k=0 pair (0,1)", "replicate 0 k=0 pair (0,1) aligned"]
    finished = set(first[:2])
    assert not finished & set(second)
    # The killed pair (raw and aligned) is redone, then the other three.
    assert second[:2] == first[2:]
    assert len(second) == 2 * 4


def test_results_round_trip_and_older_results_still_load(aligned_analysis):
    _, model_dir, results, *_ = aligned_analysis
    path = layout.results_file(str(model_dir))
    assert store.read(path, records.InstabilityResults, str(model_dir)) == results
    obj = results.to_json(str(model_dir))

    def strip(node):  # what a results.json written before --align holds
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items()
                    if k not in ("aligned", "aligned_barrier", "align")}
        return [strip(v) for v in node] if isinstance(node, list) else node

    old = records.InstabilityResults.from_json(strip(obj), str(model_dir))
    assert old.settings.align == "none" and old.independent.aligned_barrier is None
    assert all(p.aligned is None for p in all_pairs(old))
    assert [r.aligned_barrier for r in old.rewind_steps] == [None, None]
    assert old == dataclasses.replace(
        results, settings=dataclasses.replace(results.settings, align="none"),
        independent=records.IndependentRecord(
            pairs=old.independent.pairs, barrier=results.independent.barrier,
            loss_barrier=results.independent.loss_barrier),
        rewind_steps=old.rewind_steps)


def test_tensorboard_has_raw_and_aligned_side_by_side(aligned_analysis):
    _, model_dir, results, *_ = aligned_analysis
    root, acc = scalars(layout.summary_dir(str(model_dir)))
    independent, _ = scalars(layout.summary_run(str(model_dir), layout.INDEPENDENT_RUN))
    for split in SPLITS:
        assert independent[layout.aligned_barrier_tag(split)] == pytest.approx(
            {r.rewind_step: results.independent.aligned_barrier[split].mean
             for r in results.rewind_steps})
        assert root[layout.aligned_barrier_tag(split)] == pytest.approx(
            {r.rewind_step: r.aligned_barrier[split].mean for r in results.rewind_steps})
        assert root[layout.independent_barrier_tag(split, aligned=True)] == pytest.approx(
            {0: results.independent.aligned_barrier[split].mean})
        assert root[layout.independent_barrier_tag(split)] == pytest.approx(
            {0: results.independent.barrier[split].mean})
    pair = results.rewind_steps[1].replicates[1].pairs[0]
    path, _ = scalars(os.path.join(str(model_dir), "replicate_1", "k_000000010", "pair_0_1"))
    assert path[layout.aligned_path_tag(10, "test_error")] == pytest.approx(
        dict(enumerate(pair.aligned.error["test"])))
    assert path[layout.path_tag(10, "test_error")] == pytest.approx(
        dict(enumerate(pair.error["test"])))


# -- aligned_pair on known pairs ----------------------------------------------------------

def evaluator_for(tmp_path, *extra, data=None):
    c = parse_config("--experiment=instability", "--train_steps=10", "--batch_size=16",
                     "--eval_batch_size=32", "--train_eval_examples=32",
                     "--interpolation_points=3", "--align=weights", *extra,
                     model_dir=str(tmp_path))
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c, data))
    return c, t, PathEvaluator.for_config(t, c)


def test_a_network_aligned_with_itself_keeps_the_raw_path(tmp_path):
    _, t, evaluator = evaluator_for(tmp_path)
    a = save(t.model, str(tmp_path / "a" / "ckpt"))
    raw = evaluator.between(a, a)
    aligned = aligned_paths.aligned_pair(evaluator, a, a, label="self")
    for split in SPLITS:
        assert aligned.error[split] == raw[f"{split}_error"]
        assert aligned.loss[split] == raw[f"{split}_loss"]
    assert aligned.matching.iterations == 1 and aligned.matching.converged


def test_none_adds_nothing(tmp_path):
    _, t, _ = evaluator_for(tmp_path)
    a = save(t.model, str(tmp_path / "a" / "ckpt"))
    plain = PathEvaluator(t, 3)
    assert aligned_paths.aligned_pair(plain, a, a, label="x") is None


def test_cifar_resnet_with_batchnorm_aligns_a_permuted_copy_under_recompute(tmp_path):
    """ResNet-20 (BatchNorm, projection shortcuts) with --bn_mode=recompute:
    the aligned path between a network and a permuted copy of it stays at
    that network (every point's statistics re-estimated), barrier exactly 0."""
    data = tiny_data(num_train=64, num_test=32, shape=(32, 32, 3))
    _, t, evaluator = evaluator_for(
        tmp_path, "--dataset=cifar10", "--model=resnet20", "--augment=none",
        "--bn_mode=recompute", "--bn_recompute_batches=2", data=data)
    assert evaluator.bn_mode == "recompute"
    rng = np.random.default_rng(0)  # BatchNorm statistics that matter
    weights = permutation.get_weights(t.model)
    permutation.set_weights(t.model, {
        n: (rng.uniform(0.5, 2.0, w.shape) if n.endswith("moving_variance")
            else rng.normal(0, 0.3, w.shape) if n.endswith("moving_mean") else w)
        for n, w in weights.items()})
    a, b, _ = permuted_copy(t, tmp_path)
    aligned = aligned_paths.aligned_pair(evaluator, a, b, label="resnet")
    assert aligned.matching.converged and aligned.matching.groups > 3
    for split in SPLITS:
        assert aligned.barrier[split] == 0.0
        assert len(set(aligned.error[split])) == 1
        assert len(set(aligned.loss[split])) == 1


# -- the report -----------------------------------------------------------------------------

def test_report_draws_and_tabulates_raw_vs_aligned(aligned_analysis, tmp_path):
    from tf_lottery import report

    _, model_dir, results, *_ = aligned_analysis
    built = report.build(str(model_dir))
    assert layout.ALIGNED_BARRIER_FIGURE in built.figures
    rows = built.tables["aligned_barriers"]
    assert [r["k"] for r in rows] == [0, 10, None]
    for row, point in zip(rows, results.rewind_steps, strict=False):
        for split in SPLITS:
            assert row["raw"][split]["mean"] == point.barrier[split].mean
            assert row["aligned"][split]["mean"] == point.aligned_barrier[split].mean
        assert row["pairs"] == 2
    assert rows[-1]["aligned"]["test"]["mean"] == \
        results.independent.aligned_barrier["test"].mean
    assert "Barriers modulo permutation" in built.markdown
    # An experiment that is the model_dir itself goes by its folder's name.
    assert f"| {os.path.basename(model_dir)} | independent | 1 |" in built.markdown
    written = report.write(built, str(tmp_path / "out"))
    assert str(tmp_path / "out" / layout.ALIGNED_BARRIER_FIGURE) in written


def test_report_of_an_unaligned_run_adds_nothing(tmp_path):
    from tf_lottery import report
    from tf_lottery.reporting import alignment_figures

    c = config(tmp_path, "--rewind_steps=0", "--train_steps=10")
    write_config(c)
    analysis.instability(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    built = report.build(str(tmp_path))
    assert layout.ALIGNED_BARRIER_FIGURE not in built.figures
    assert built.tables["aligned_barriers"] == []
    assert "Barriers modulo permutation" not in built.markdown
    assert alignment_figures.rows([]) == []


def test_imp_sparse_instability_pairs_are_aligned_too(tmp_path):
    """IMP's sparse instability evaluates its pairs with the same function:
    the pruned children's pair gets its aligned path, and the level's record
    its aligned barrier."""
    from tests.test_imp import config as imp_config
    from tf_lottery.experiments import imp

    c = imp_config(tmp_path, "--imp_levels=1", "--instability", "--imp_instability_levels=1",
                   "--interpolation_points=3", "--align=weights")
    results = imp.imp(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    record = results.levels[1].instability
    (pair,) = record.pairs
    assert pair.aligned is not None and pair.aligned.matching.groups == 2
    assert record.aligned_barrier == aligned_paths.over_pairs([pair])
    for split in SPLITS:
        assert pair.aligned.error[split][0] == pair.error[split][0]
        assert record.aligned_barrier[split].mean == pair.aligned.barrier[split]
    marker = layout.sparse_instability_file(str(tmp_path), 1)
    assert store.read(marker, records.SparseInstabilityRecord, str(tmp_path)) == record
