"""The instability experiment: children, resume, results and TensorBoard output."""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from tests.conftest import parse_config, tiny_pipeline
from tf_lottery import config as config_lib
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import instability as analysis
from tf_lottery.experiments import toolkit
from tf_lottery.stability import interpolation
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.training import checkpoints
from tf_lottery.training.trainer import SgdNoise, Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ("--experiment=instability", "--train_steps=20", "--batch_size=20",
         "--eval_batch_size=50", "--train_eval_examples=100", "--rewind_steps=0,10",
         "--interpolation_points=5", "--steps_per_loop=10", "--checkpoint_every=10",
         "--log_every=10", "--eval_every=10")


def config(model_dir, *extra):
    return parse_config(*FLAGS, *extra, model_dir=str(model_dir))


def run(c):
    return analysis.instability(c, tf.distribute.get_strategy(), tiny_pipeline(c))


def weights_at(c, checkpoint):
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    return interpolation.load(t.model, checkpoint)


def file_times(root):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, fs in os.walk(root) for f in fs}


def test_child_seeds_are_distinct_and_deterministic():
    parent = SgdNoise(0, 0)
    seeds = [toolkit.child_noise(parent, i) for i in range(4)]
    assert seeds == [toolkit.child_noise(SgdNoise(0, 0), i) for i in range(4)]
    flat = [s for noise in seeds for s in (noise.data_order_seed, noise.augment_seed)]
    assert len(set(flat)) == len(flat) and 0 not in flat
    other = [toolkit.child_noise(SgdNoise(1, 1), i) for i in range(4)]
    assert not set(seeds) & set(other)
    c = config("/tmp/unused", "--replicates=3")
    assert [toolkit.replicate_noise(c, r) for r in range(3)] == [
        SgdNoise(r, r) for r in range(3)]
    specs = [toolkit.child_run(c, "W_k", SgdNoise(0, 0), "out", i) for i in range(2)]
    assert [s.noise for s in specs] == seeds[:2]
    assert {s.start.path for s in specs} == {"W_k"} and not specs[0].start.reset_optimizer
    assert toolkit.child_run(config("/tmp/unused", "--child_optimizer_state=reset"),
                              "W_k", SgdNoise(0, 0), "out", 0).start.reset_optimizer
    assert toolkit.pairs(3) == [(0, 1), (0, 2), (1, 2)]


def test_flagfile_is_the_lenet_recipe_plus_the_analysis():
    c = parse_config("--flagfile=flags/lenet_fashion_mnist_instability.cfg")
    recipe = parse_config("--flagfile=flags/lenet_fashion_mnist.cfg").recipe_dict()
    ours = c.recipe_dict()
    assert ours.pop("experiment") == "instability"
    recipe.pop("experiment")
    assert ours.pop("instability") == dataclasses.asdict(c.instability)
    assert ours == recipe
    assert c.train.rewind_steps == (0, 25, 100, 500, 2000)
    assert dataclasses.asdict(c.instability) == {
        "children": 3, "interpolation_points": 30, "stability_threshold": 0.02,
        "bn_mode": "interpolate", "bn_recompute_batches": 100, "replicates": 3,
        "child_optimizer_state": "restore", "align": "none", "child_noise": "both",
        "layerwise_barriers": False, "layerwise_points": 5}
    assert config_lib.config_from_json(c.to_json()) == c


@pytest.mark.parametrize("flag", ["--children=1", "--interpolation_points=1",
                                  "--replicates=0", "--stability_threshold=-0.1",
                                  "--bn_recompute_batches=0"])
def test_bad_instability_flags_are_named(flag):
    with pytest.raises(ConfigError, match=flag.split("=")[0]):
        parse_config("--experiment=instability", "--train_steps=100", flag)


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def resumed_analysis(tmp_path_factory):
    """An analysis killed while evaluating k=10's pair, then relaunched."""
    model_dir = tmp_path_factory.mktemp("instability")
    c = config(model_dir)
    real = PathEvaluator.curves
    calls = []

    def dies_on_second_path(*args, **kwargs):
        calls.append(kwargs.get("label"))
        if len(calls) == 2:
            raise Killed
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PathEvaluator, "curves", dies_on_second_path)
        with pytest.raises(Killed):
            run(c)
    before = file_times(model_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PathEvaluator, "curves",
                   lambda *a, **kw: calls.append(kw.get("label")) or real(*a, **kw))
        results = run(c)
    return c, model_dir, results, before, file_times(model_dir), calls


def test_relaunch_recomputes_nothing_that_was_finished(resumed_analysis):
    _, model_dir, results, before, after, calls = resumed_analysis
    assert calls == ["k=0 pair (0,1)", "k=10 pair (0,1)", "k=10 pair (0,1)"]
    # Only the killed pair's partial TensorBoard curves were replaced.
    killed_pair = os.path.join(str(model_dir), "replicate_0", "k_000000010", "pair_0_1")
    assert [p for p in before if before[p] != after.get(p)
            and not p.startswith(killed_pair + os.sep)] == []
    assert len([p for p in after if p.startswith(killed_pair + os.sep)]) == 1
    finished = [p for p in before if p.endswith("results.json")]
    assert len(finished) == 5  # the parent and all four children had finished
    assert os.path.join(str(model_dir), "replicate_0", "k_000000000", "pair_0_1.json") in before
    assert results == store.read(os.path.join(str(model_dir), "results.json"),
                                 records.InstabilityResults, str(model_dir))
    assert results.status == "complete"


def test_results_hold_curves_barriers_and_children(resumed_analysis):
    c, _, results, *_ = resumed_analysis
    assert [r.rewind_step for r in results.rewind_steps] == [0, 10]
    assert results.independent is None
    for record in results.rewind_steps:
        (replicate,) = record.replicates
        (pair,) = replicate.pairs
        assert pair.alphas == [0.0, 0.25, 0.5, 0.75, 1.0]
        for split in ("test", "train"):
            curve = pair.error[split]
            assert pair.barrier[split] == max(curve) - (curve[0] + curve[-1]) / 2
            assert record.barrier[split].mean == pair.barrier[split]
            loss = np.asarray(pair.loss[split])  # the same pass's loss curve
            assert pair.loss_barrier is not None and record.loss_barrier is not None
            assert pair.loss_barrier[split] == loss.max() - 0.5 * (loss[0] + loss[-1])
            assert record.loss_barrier[split].mean == pair.loss_barrier[split]
            # The path's endpoints are the separately evaluated children.
            for end, child in ((0, 0), (-1, 1)):
                metrics = replicate.children[child].metrics
                assert curve[end] == getattr(metrics, f"{split}_error")
                assert pair.loss[split][end] == getattr(metrics, f"{split}_loss")
        assert record.stable == (record.barrier["test"].mean < 0.02)
        assert "k" in results.table and str(record.rewind_step) in results.table


def test_children_with_same_seeds_are_identical_and_differ_otherwise(resumed_analysis,
                                                                     tmp_path):
    c, model_dir, results, *_ = resumed_analysis
    children = results.rewind_steps[1].replicates[0].children
    parent_dir = results.parents[0].run_dir
    again = toolkit.child_run(c, checkpoints.rewind_prefix(parent_dir, 10), SgdNoise(0, 0),
                               str(tmp_path), 0)
    assert again.noise == SgdNoise(children[0].data_order_seed, children[0].augment_seed)
    trainer = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    repeat = trainer.train(dataclasses.replace(again, run_dir=str(tmp_path / "repeat")))
    first, second, repeated = (weights_at(c, path) for path in (
        children[0].final_checkpoint, children[1].final_checkpoint,
        repeat.final_checkpoint))
    for a, b in zip(first, repeated, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def scalars(run_dir):
    acc = event_accumulator.EventAccumulator(
        run_dir, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    out = {tag: {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}
           for tag in acc.Tags()["tensors"]
           if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"}
    return out, acc


def chart_titles(model_dir):
    """The custom-scalars chart titles of each layout written into
    ``model_dir``'s summary run, oldest first (TensorBoard shows the last)."""
    acc = event_accumulator.EventAccumulator(
        layout.summary_dir(str(model_dir)), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    found = []
    for event in acc.Tensors("custom_scalars__config__"):
        written = layout_pb2.Layout()
        written.ParseFromString(tf.make_ndarray(event.tensor_proto).item())
        found.append([chart.title for category in written.category
                      for chart in category.chart])
    return found


def test_cli_end_to_end_writes_summary_and_tensorboard(tmp_path):
    model_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "tests.mock_main", *FLAGS, "--dataset=fashion_mnist",
           "--replicates=2", f"--model_dir={model_dir}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MOCK_EXAMPLES": "200"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # One final table, on stdout; the log does not repeat it.
    assert "stable (test < 2%)" in proc.stdout
    assert (proc.stdout + proc.stderr).count("stable (test <") == 1
    results = json.loads((model_dir / "results.json").read_text())
    assert results["status"] == "complete" and results["settings"]["replicates"] == 2
    records = results["rewind_steps"]
    assert [len(r["replicates"]) for r in records] == [2, 2]
    assert results["parents"][0]["init_seed"] != results["parents"][1]["init_seed"]
    assert len(results["independent"]["pairs"]) == 1

    # The summary table ends the run, with the independent networks' row.
    table = proc.stdout[proc.stdout.index("Instability analysis of"):].splitlines()
    assert [line.split()[0] for line in table[2:]] == ["0", "10", "independent"]
    assert "test loss barrier" in table[1] and "train loss barrier" in table[1]

    # Loss barriers: every pair's agrees with NumPy on its recorded loss curve,
    # and each k's (and the independent pairs') is their mean.
    for pairs, aggregate in [([p for rep in r["replicates"] for p in rep["pairs"]],
                              r["loss_barrier"]) for r in records] + [
            (results["independent"]["pairs"], results["independent"]["loss_barrier"])]:
        for split in ("test", "train"):
            recomputed = [np.max(p[f"{split}_loss"])
                          - 0.5 * (p[f"{split}_loss"][0] + p[f"{split}_loss"][-1])
                          for p in pairs]
            # The same float64 operations on the same recorded values: equal bits.
            assert [p["loss_barrier"][split] for p in pairs] == recomputed
            # A mean of replicate means vs one mean of one pair each: a few ulps.
            assert aggregate[split]["mean"] == pytest.approx(np.mean(recomputed), rel=1e-12)

    root, acc = scalars(str(model_dir / "summary"))
    independent, _ = scalars(str(model_dir / "summary" / "independent"))
    for split in ("test", "train"):
        assert independent[f"barrier/{split}"] == pytest.approx(
            {r["rewind_step"]: results["independent"]["barrier"][split]["mean"]
             for r in records})
        assert root[f"barrier/{split}"] == pytest.approx(
            {r["rewind_step"]: r["barrier"][split]["mean"] for r in records})
        assert root[f"barrier/{split}_std"] == pytest.approx(
            {r["rewind_step"]: r["barrier"][split]["std"] for r in records})
        assert set(root[f"children/{split}_error"]) == {0, 10}
        assert root[f"loss_barrier/{split}"] == pytest.approx(
            {r["rewind_step"]: r["loss_barrier"][split]["mean"] for r in records})
        assert root[f"independent/loss_barrier/{split}"] == pytest.approx(
            {0: results["independent"]["loss_barrier"][split]["mean"]})
    plugins = acc.PluginTagToContent
    assert plugins("custom_scalars") and plugins("hparams")

    pair = records[1]["replicates"][1]["pairs"][0]
    path, _ = scalars(str(model_dir / "replicate_1" / "k_000000010" / "pair_0_1"))
    assert path["interpolation/k_000000010/test_error"] == pytest.approx(
        dict(enumerate(pair["test_error"])))
    assert path["interpolation/k_000000010/alpha"] == pytest.approx(
        dict(enumerate(pair["alphas"])))
    assert path["interpolation/k_000000010/train_loss"] == pytest.approx(
        dict(enumerate(pair["train_loss"])))
    independent, _ = scalars(str(model_dir / "independent" / "pair_0_1"))
    assert len(independent["interpolation/independent/train_error"]) == 5


def test_path_endpoints_are_the_evaluated_ema_weights(tmp_path):
    """With --ema_decay the path runs between the averaged weights that the
    children's results report, not between their raw trained weights."""
    c = config(tmp_path, "--ema_decay=0.9", "--rewind_steps=0")
    results = run(c)
    (record,) = results.rewind_steps
    (replicate,) = record.replicates
    (pair,) = replicate.pairs
    for split in ("test", "train"):
        for end, child in ((0, 0), (-1, 1)):
            metrics = replicate.children[child].metrics
            assert pair.loss[split][end] == getattr(metrics, f"{split}_loss")
            assert pair.error[split][end] == getattr(metrics, f"{split}_error")


# -- --child_noise: which SGD noise differs between children ---------------------------

@pytest.mark.parametrize("sources, own_order, own_augment", [
    ("both", True, True), ("data_order", True, False), ("augmentation", False, True),
    ("none", False, False)])
def test_child_noise_holds_the_other_source_at_child_0s(sources, own_order, own_augment):
    parent = SgdNoise(3, 4)
    both = [toolkit.child_noise(parent, i) for i in range(3)]
    held = [toolkit.child_noise(parent, i, sources) for i in range(3)]
    assert held[0] == both[0]  # child 0 is the same child in every mode
    for noise, free in zip(held, both, strict=True):
        assert noise.data_order_seed == (free if own_order else both[0]).data_order_seed
        assert noise.augment_seed == (free if own_augment else both[0]).augment_seed
    c = config("/tmp/unused", f"--child_noise={sources}")
    assert [toolkit.child_run(c, "W_k", parent, "out", i).noise for i in range(3)] == held


def test_data_order_children_share_augmentation_and_differ_in_order():
    """The batches themselves, from the pipeline's pure batch-at-step function,
    with crop-and-flip augmentation on: 'data_order' children see other
    examples, augmented with the same draws; 'augmentation' children see the
    same examples differently augmented; without augmentation those see
    identical batches, as 'none' children do."""
    from tf_lottery.data.pipeline import global_batch_at

    c = config("/tmp/unused")
    parent = SgdNoise(0, 0)

    def batches(sources, augment, step=7):
        pipeline = tiny_pipeline(c, augment=augment)
        return [global_batch_at(pipeline, step, n.data_order_seed, n.augment_seed)
                for n in (toolkit.child_noise(parent, i, sources) for i in range(2))]

    (x0, y0), (x1, y1) = batches("data_order", "crop_flip")
    assert not np.array_equal(y0, y1) and not np.array_equal(x0, x1)
    (x0, y0), (x1, y1) = batches("augmentation", "crop_flip")
    assert np.array_equal(y0, y1) and not np.array_equal(x0, x1)
    for sources in ("augmentation", "none"):
        (x0, y0), (x1, y1) = batches(sources, "none")
        assert np.array_equal(x0, x1) and np.array_equal(y0, y1)


def test_a_bad_child_noise_is_refused_by_the_flag_parser_naming_it():
    # absl's one line on the command line: "FATAL Flags parsing error: flag
    # --child_noise=order: value should be one of <both|...>", exit 1.
    with pytest.raises(flags.IllegalFlagValueError,
                       match=r"--child_noise=order.*<both\|data_order\|augmentation\|none>"):
        config("/tmp/unused", "--child_noise=order")


def test_child_noise_stays_out_of_the_recipe_hash_at_its_default():
    default = config("/tmp/unused")
    assert config("/tmp/unused", "--child_noise=both").recipe_hash() == default.recipe_hash()
    # The hash a recipe had before the knob existed: the recipe without it
    # (and without the other late knobs at their defaults).
    recipe = default.recipe_dict()
    assert recipe["instability"]["child_noise"] == "both"  # in config.json all the same
    for knob in ("align", "layerwise_barriers", "layerwise_points", "child_noise"):
        recipe["instability"].pop(knob)
    before = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    assert default.recipe_hash() == before
    hashes = {config("/tmp/unused", f"--child_noise={v}").recipe_hash()
              for v in ("data_order", "augmentation", "none")}
    assert len(hashes) == 3 and default.recipe_hash() not in hashes


def test_none_gives_identical_children_and_zero_barriers(tmp_path):
    """Children with identical SGD noise from one W_k train to the same bits
    (the ops are deterministic on CPU), so every point of their path is the
    same network (``lerp`` of equal arrays is exact) and both barriers are 0."""
    c = config(tmp_path, "--child_noise=none", "--rewind_steps=10")
    results = run(c)
    (record,) = results.rewind_steps
    (replicate,) = record.replicates
    assert {ch.child_noise for ch in replicate.children} == {"none"}
    assert results.settings.child_noise == "none"
    first, second = (weights_at(c, ch.final_checkpoint) for ch in replicate.children)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    (pair,) = replicate.pairs
    assert pair.child_noise == "none"
    for split in ("test", "train"):
        assert pair.barrier[split] == 0.0 and pair.loss_barrier == {"test": 0.0, "train": 0.0}
        assert len(set(pair.error[split])) == 1 and len(set(pair.loss[split])) == 1
