"""Quadratic Bézier curves between two networks: the point, the fitted bend, the curve."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import test_bn
from tests.conftest import parse_config, tiny_pipeline
from tests.test_instability import chart_titles
from tests.test_instruments import file_times, summary_scalars
from tests.test_tasks import assert_same_bits, reverse_order, run_one_by_one
from tf_lottery import experiments as registry
from tf_lottery import report, rundir
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import instability
from tf_lottery.pruning import wrappers
from tf_lottery.reporting import console
from tf_lottery.stability import bn, curves, interpolation
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.tasks import plan as plan_lib
from tf_lottery.tasks.progress import describe
from tf_lottery.training.trainer import FromSeed, RunSpec, SgdNoise, Trainer

# float32's unit roundoff. The curve with the midpoint bend, W₁ + 2t(1−t)(θ−W₁) +
# t²(W₂−W₁) with θ = W₁ + ½(W₂−W₁), and the line W₁ + t(W₂−W₁) (or their forms
# from W₂ for t ≥ ½) are the same real number; the curve's float32 evaluation
# rounds at most 7 times (W₂−W₁, θ, θ−W₁, the two coefficients, two products,
# two sums), the line's 3 times, each an error of at most u times a value of
# magnitude ≤ |W₁| + |W₂|: 16u(|W₁| + |W₂|) bounds their difference.
U = 2.0 ** -24
NOISE = SgdNoise(3, 4)


def _arrays(seed, shape=(50, 7)):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, shape).astype(np.float32) * rng.choice([1e-3, 1.0, 30.0], shape)


def test_the_point_is_exact_at_the_ends_and_where_all_three_agree():
    w1, w2, bend = _arrays(0), _arrays(1), _arrays(2)
    assert curves.point(w1, bend, w2, 0.0).tobytes() == w1.tobytes()
    assert curves.point(w1, bend, w2, 1.0).tobytes() == w2.tobytes()
    w1[0, :3] = [0.0, -0.0, 5.0]  # a pruned weight (either sign of 0) and a shared one
    w2[0, :3], bend[0, :3] = w1[0, :3], w1[0, :3]
    for t in np.linspace(0, 1, 11):
        got = curves.point(w1, bend, w2, float(t))
        assert got[0, :3].tobytes() == w1[0, :3].tobytes()
        assert curves.point(w1, w1, w1, float(t)).tobytes() == w1.tobytes()


def test_the_midpoint_bend_is_the_line_up_to_rounding():
    w1, w2 = _arrays(3), _arrays(4)
    (mid,) = curves.midpoint([w1], [w2])
    bound = 16 * U * (np.abs(w1) + np.abs(w2))
    for t in np.linspace(0, 1, 31):
        diff = np.abs(curves.point(w1, mid, w2, float(t)).astype(np.float64)
                      - interpolation.lerp(w1, w2, float(t)))
        assert (diff <= bound).all(), float(t)


def test_t_is_a_pure_function_of_seed_and_step():
    drawn = [curves.draw_t(5, s) for s in range(2000)]
    assert drawn == [curves.draw_t(5, s) for s in range(2000)]
    assert drawn != [curves.draw_t(6, s) for s in range(2000)]
    assert 0.0 <= min(drawn) and max(drawn) < 1.0
    assert abs(np.mean(drawn) - 0.5) < 0.05  # uniform: sd of the mean is 0.0065


# -- in a model -------------------------------------------------------------------------------

def _config(tmp_path, model="lenet_300_100", *extra):
    return parse_config(f"--model={model}", "--train_steps=40", "--batch_size=20",
                        "--eval_batch_size=50", "--train_eval_examples=120",
                        "--steps_per_loop=10", *extra, model_dir=str(tmp_path))


def _trainer(tmp_path, model="lenet_300_100", hooks=None, *extra):
    c = _config(tmp_path, model, *extra)
    return Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), hooks=hooks)


def _trained(trainer, run_dir, seed, steps=40):
    trainer.train(RunSpec(str(run_dir), steps, SgdNoise(seed, seed), FromSeed(seed)))
    return interpolation.snapshot(interpolation.path_variables(trainer.model))


def _settings(steps=12, every=4, lr=1e-3):
    return curves.FitSettings(steps=steps, learning_rate=lr, checkpoint_every=every,
                              noise=NOISE, steps_per_loop=4, log_every=4)


def test_a_curve_with_the_midpoint_bend_is_the_linear_path(tmp_path):
    t = _trainer(tmp_path)
    w1, w2 = _trained(t, tmp_path / "a", 0, 10), _trained(t, tmp_path / "b", 1, 10)
    evaluator = PathEvaluator(t, 5)
    line = evaluator.curves(w1, w2)
    curve = curves.evaluate(evaluator, w1, curves.midpoint(w1, w2), w2)
    assert curve["alphas"] == line["alphas"]
    for split in ("test", "train"):
        # Weights within 16u(|W₁|+|W₂|) (above): the loss moves by rounding only,
        # and a prediction flips only on an example within rounding of a tie.
        np.testing.assert_allclose(curve[f"{split}_loss"], line[f"{split}_loss"], rtol=1e-4)
        examples = 100 if split == "test" else 120
        assert np.max(np.abs(np.subtract(curve[f"{split}_error"],
                                         line[f"{split}_error"]))) <= 1 / examples + 1e-12
    # The ends are the networks themselves, bit for bit.
    for i in (0, -1):
        assert curve["test_error"][i] == line["test_error"][i]
        assert curve["test_loss"][i] == line["test_loss"][i]


def test_a_curve_between_a_network_and_itself_is_the_point(tmp_path):
    t = _trainer(tmp_path)
    w = _trained(t, tmp_path / "a", 0, 10)
    fit = curves.BendFitter(t, _settings()).fit(w, [x.copy() for x in w], str(tmp_path / "c"))
    assert fit.steps == 0
    assert all(b.tobytes() == a.tobytes() for a, b in zip(w, fit.bend, strict=True))
    found = curves.evaluate(PathEvaluator(t, 4), w, fit.bend, w)
    assert found["barrier"] == {"test": 0.0, "train": 0.0}
    assert found["loss_barrier"] == {"test": 0.0, "train": 0.0}
    assert len(set(found["test_loss"])) == 1


def test_a_fit_killed_in_the_middle_resumes_to_the_same_bend(tmp_path, monkeypatch):
    t = _trainer(tmp_path)
    w1, w2 = _trained(t, tmp_path / "a", 0, 10), _trained(t, tmp_path / "b", 1, 10)
    whole = curves.BendFitter(t, _settings()).fit(w1, w2, str(tmp_path / "whole"))
    assert whole.steps == 12 and len(whole.losses) == 3

    class Killed(Exception):
        pass

    resume = curves.checkpoints.resume

    def killed_after_step_8(checkpoint, out_dir, keep):
        manager, restored = resume(checkpoint, out_dir, keep)
        save = manager.save

        def save_then_die(checkpoint_number):
            save(checkpoint_number=checkpoint_number)
            if checkpoint_number == 8:
                raise Killed

        manager.save = save_then_die
        return manager, restored

    monkeypatch.setattr(curves.checkpoints, "resume", killed_after_step_8)
    with pytest.raises(Killed):
        curves.BendFitter(t, _settings()).fit(w1, w2, str(tmp_path / "killed"))
    monkeypatch.setattr(curves.checkpoints, "resume", resume)
    # Another fitter (new variables, new optimizer) picks the fit up at step 8.
    resumed = curves.BendFitter(t, _settings()).fit(w1, w2, str(tmp_path / "killed"))
    assert [b.tobytes() for b in resumed.bend] == [b.tobytes() for b in whole.bend]
    assert resumed.losses == whole.losses
    # The bend moved off the midpoint (else the test above proves little).
    mid = curves.midpoint(w1, w2)
    assert any(not np.array_equal(a, b) for a, b in zip(mid, whole.bend, strict=True))
    # A finished fit is returned as it is, without training.
    again = curves.BendFitter(t, _settings()).fit(w1, w2, str(tmp_path / "whole"))
    assert [b.tobytes() for b in again.bend] == [b.tobytes() for b in whole.bend]


def test_a_sparse_curve_keeps_pruned_weights_exactly_zero(tmp_path):
    t = _trainer(tmp_path, hooks=wrappers.masked_training())
    rng = np.random.default_rng(0)
    masks = {name: (rng.random(w.shape) < 0.3).astype(np.float32)
             for name, w in wrappers.weight_values(t.model).items()}
    ends = []
    for seed in (0, 1):
        t.train(RunSpec(str(tmp_path / f"s{seed}"), 10, SgdNoise(seed, seed),
                        FromSeed(seed, then=lambda tr: wrappers.set_masks(tr.model, masks))))
        ends.append(interpolation.snapshot(interpolation.path_variables(t.model)))
    w1, w2 = ends
    fitter = curves.BendFitter(t, _settings(steps=8, lr=1e-2))
    fit = fitter.fit(w1, w2, str(tmp_path / "c"))
    pruned = {v.ref(): masks[name] == 0 for name, (v, _) in
              wrappers.pruning_vars(t.model).items()}
    variables = fitter.variables
    checked = 0
    for s in np.linspace(0, 1, 7):
        for v, a, th, b in zip(variables, w1, fit.bend, w2, strict=True):
            if v.ref() in pruned:
                zero = pruned[v.ref()]
                assert (th[zero] == 0).all() and (curves.point(a, th, b, float(s))[zero] == 0).all()
                checked += int(zero.sum())
    assert checked > 0
    # ... and where unpruned, the bend did move.
    mid = curves.midpoint(w1, w2)
    assert any(not np.array_equal(m, b) for m, b in zip(mid, fit.bend, strict=True))


def test_a_curve_of_a_batchnorm_network_recomputes_its_statistics(tmp_path):
    t = _trainer(tmp_path, test_bn.TINY_BN)
    w1, w2 = _trained(t, tmp_path / "a", 0, 10), _trained(t, tmp_path / "b", 1, 10)
    fit = curves.BendFitter(t, _settings(steps=4)).fit(w1, w2, str(tmp_path / "c"))
    evaluator = curves.curve_evaluator(t, 3, test_bn.BATCHES, NOISE)
    assert evaluator.bn_mode == "recompute"
    assert isinstance(evaluator.prepare, bn.BatchNormRecompute)
    found = curves.evaluate(evaluator, w1, fit.bend, w2)
    assert len(found["test_error"]) == 3
    # The model holds W(1) = W₂ with statistics re-estimated there, not W₂'s own.
    stats = bn.moving_statistics(t.model)
    held = interpolation.snapshot(stats)
    curves.assign(evaluator.variables, w1, fit.bend, w2, 1.0)
    recomputed = bn.BatchNormRecompute(t, test_bn.BATCHES, NOISE)
    recomputed()
    again = interpolation.snapshot(stats)
    assert all(np.array_equal(a, b) for a, b in zip(held, again, strict=True))
    own = [w2[i] for i, v in enumerate(evaluator.variables)
           if any(v is s for s in stats)]
    assert any(not np.array_equal(a, b) for a, b in zip(held, own, strict=True))
    # A network without BatchNorm is evaluated as the line is.
    assert curves.curve_evaluator(_trainer(tmp_path / "l"), 3, 2, NOISE).prepare is None


def test_a_fitted_curve_has_a_lower_loss_at_its_middle_than_the_line(tmp_path):
    """Two networks trained from different inits: the line's middle is worse
    than its ends; the fitted curve's middle is lower."""
    t = _trainer(tmp_path)
    w1, w2 = _trained(t, tmp_path / "a", 0), _trained(t, tmp_path / "b", 1)
    evaluator = PathEvaluator(t, 3)
    line = evaluator.curves(w1, w2)
    fit = curves.BendFitter(t, _settings(steps=60, every=60, lr=1e-3)).fit(
        w1, w2, str(tmp_path / "c"))
    curve = curves.evaluate(evaluator, w1, fit.bend, w2)
    assert line["train_loss"][1] > max(line["train_loss"][0], line["train_loss"][2])
    assert curve["train_loss"][1] < line["train_loss"][1]
    assert fit.losses[-1][1] < fit.losses[0][1]  # the loss along the curve fell


# -- the curve task in the instability analysis -----------------------------------------------

ANALYSIS = ("--experiment=instability", "--rewind_steps=0", "--train_steps=16",
            "--batch_size=20", "--eval_batch_size=50", "--train_eval_examples=100",
            "--interpolation_points=3", "--steps_per_loop=4", "--checkpoint_every=8",
            "--log_every=8", "--eval_every=0")
CURVE = ("--curve", "--curve_steps=8", "--curve_checkpoint_every=4")


def test_new_knobs_leave_existing_recipes_alone():
    plain = parse_config(*ANALYSIS)
    assert [s.section for s in plain.sections] == ["instability", "surface"]
    assert plain.recipe_hash() == parse_config(*ANALYSIS, "--curve_steps=5").recipe_hash()
    with_curve = parse_config(*ANALYSIS, *CURVE)
    assert [s.section for s in with_curve.sections] == ["instability", "surface", "curve"]
    assert with_curve.curve.rate(with_curve.schedule.learning_rate) == \
        0.25 * with_curve.schedule.learning_rate
    assert parse_config(*ANALYSIS, *CURVE, "--curve_learning_rate=0.5").curve.rate(0.1) == 0.5
    assert with_curve.recipe_hash() != plain.recipe_hash()
    with pytest.raises(ConfigError, match="--curve in IMP .* add --instability$"):
        parse_config("--experiment=imp", "--train_steps=16", *CURVE)
    sparse = parse_config("--experiment=imp", "--train_steps=16", "--instability", *CURVE)
    assert [s.section for s in sparse.sections] == ["pruning", "instability", "curve"]
    graph = registry.plan(with_curve)
    assert describe(graph["replicate_0/k_000000000/curve_0_1"]) == \
        "fitted curve of pair (0,1) of replicate 0, k=0"


def test_a_finished_analysis_relaunched_with_curve_computes_only_the_curves(tmp_path):
    root = str(tmp_path / "relaunched")
    plain = parse_config(*ANALYSIS, model_dir=root)
    rundir.claim(plain)
    instability.instability(plain, tf.distribute.get_strategy(), tiny_pipeline(plain))
    before = file_times(root)
    c = parse_config(*ANALYSIS, *CURVE, model_dir=root)
    rundir.claim(c, reopen=lambda added: plan_lib.reopen(instability.EXPERIMENT, c))
    assert "curve" in rundir.recorded_config(root).recipe_dict()
    result = instability.instability(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    after = file_times(root)
    point = layout.rewind_point_dir(root, 0, 0)
    kept = [p for p in before if "/child_" in p or "/pair_" in p or "/parent" in p]
    assert kept and all(after[p] == before[p] for p in kept)  # nothing trained again
    curve = store.read(layout.curve_file(point, 0, 1), records.CurveRecord, root)
    assert curve.steps == 8 and len(curve.fit_loss) == 8 and curve.alphas == [0.0, 0.5, 1.0]
    pair = result.rewind_steps[0].replicates[0].pairs[0]
    assert curve.line_barrier == pair.barrier
    assert [curve.error["test"][i] for i in (0, -1)] == [pair.error["test"][i] for i in (0, -1)]
    assert result.rewind_steps[0].curve_barrier["test"].mean == curve.barrier["test"]
    assert result.rewind_steps[0].replicates[0].curves == [curve]
    assert "curve test barrier" in console.summary(result, root)
    assert records.InstabilityResults.from_json(result.to_json(root), root) == result
    assert any(".superseded-" in p for p in after)  # the old aggregates, set aside
    tb = summary_scalars(layout.summary_run(root, layout.CURVE_RUN))
    assert tb[layout.paper_barrier_tag("test")] == {
        0: pytest.approx(100 * curve.barrier["test"])}
    # The barrier chart, written again by the relaunch, names the curve it now draws.
    titles = chart_titles(root)
    drawn = "test error barrier (%) vs rewind step k: {}, and the 2 % stability threshold"
    assert drawn.format("dense") in titles[0] and drawn.format("dense") not in titles[-1]
    assert drawn.format("dense line, fitted curve") in titles[-1]
    drawn = report.build(root)
    assert layout.CURVES_FIGURE in drawn.figures and layout.CURVES_FIGURE in drawn.markdown
    # The same analysis with --curve from the start, task by task in reverse
    # order, each in a fresh worker: the same bits.
    tasks = parse_config(*ANALYSIS, *CURVE, model_dir=str(tmp_path / "tasks"))
    rundir.claim(tasks)
    graph = registry.plan(tasks)
    assert sorted(t.kind for t in graph if t.kind == "curve") == ["curve"]
    curve_task = next(t for t in graph if t.kind == "curve")
    assert curve_task.cost_steps == 8 + plan_lib.plan(instability.EXPERIMENT, tasks)[
        curve_task.deps[-1]].cost_steps
    run_one_by_one(tasks, reverse_order(graph))
    assert_same_bits(root, str(tmp_path / "tasks"))
    bends = [tf.train.load_checkpoint(layout.final_checkpoint(layout.curve_dir(
        layout.curve_file(layout.rewind_point_dir(r, 0, 0), 0, 1))))
        for r in (root, str(tmp_path / "tasks"))]
    names = [n for n in bends[0].get_variable_to_shape_map() if n.startswith("bend/")]
    assert names
    for n in names:
        np.testing.assert_array_equal(bends[0].get_tensor(n), bends[1].get_tensor(n))


# -- the command line -------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def curve_cli(*args):
    return subprocess.run([sys.executable, "-m", "tests.mock_curve", "--dataset=mnist",
                           "--train_steps=10", "--batch_size=20", "--eval_batch_size=50",
                           "--train_eval_examples=100", "--interpolation_points=3", *args],
                          cwd=ROOT, text=True, capture_output=True)


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    out = curve_cli(f"--checkpoint_a={tmp_path / 'nothing'}",
                    f"--checkpoint_b={tmp_path / 'nothing'}")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1:] == [
        f"tf_lottery.curve: error: --checkpoint_a={tmp_path / 'nothing'}: no such checkpoint "
        "(give its prefix, e.g. <run>/final/ckpt, whose .index file exists)"]


@pytest.mark.slow
def test_cli_fits_a_curve_between_two_checkpoints_and_resumes_finished(tmp_path):
    from tf_lottery.models import registry

    ends = []
    for seed in (0, 1):
        model = registry.build_model("lenet_300_100", 10, (28, 28, 1), init_seed=seed)
        ends.append(tf.train.Checkpoint(model=model).write(str(tmp_path / f"n{seed}" / "ckpt")))
    args = (f"--checkpoint_a={ends[0]}", f"--checkpoint_b={ends[1]}", "--curve_steps=6",
            "--curve_checkpoint_every=3", f"--curve_out={tmp_path / 'out'}")
    out = curve_cli(*args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "line barrier: test" in out.stdout and "curve barrier: test" in out.stdout
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["curve"]["steps"] == 6
    record = store.read(str(tmp_path / "out" / "curve.json"), records.CurveRecord,
                        str(tmp_path / "out"))
    assert record.barrier == summary["curve"]["barrier"] and record.bend
    again = curve_cli(*args)  # finished: printed again, nothing recomputed
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1]) == summary


@pytest.mark.slow
def test_curves_of_imp_sparse_instability_keep_the_level_mask(tmp_path):
    from tests.test_instruments import config as instruments_config
    from tests.test_instruments import run as run_experiment
    from tf_lottery.experiments import imp
    from tf_lottery.pruning import masks

    c = instruments_config(tmp_path, "--experiment=imp", "--imp_levels=1", "--rewind_step=0",
                           "--instability", "--imp_instability_levels=1", *CURVE)
    result = run_experiment(imp.imp, c)
    level = result.levels[1]
    point = layout.sparse_instability_dir(str(tmp_path), 1)
    curve = store.read(layout.curve_file(point, 0, 1), records.CurveRecord, str(tmp_path))
    assert level.instability.curves == [curve]
    assert level.instability.curve_barrier["test"].mean == curve.barrier["test"]
    # The bend keeps the level's zeros, so every point of the curve does.
    mask = masks.load(layout.mask_file(layout.level_dir(str(tmp_path), 1)))
    assert 0 < masks.density(mask) < 1
    bend = tf.train.load_checkpoint(curve.bend)
    trainer = imp.make_trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    zeros = 0
    for name, (weight, _) in wrappers.pruning_vars(trainer.model).items():
        index = next(i for i, v in enumerate(trainer.model.trainable_variables) if v is weight)
        theta = bend.get_tensor(f"bend/{index}/.ATTRIBUTES/VARIABLE_VALUE")
        pruned = mask[name] == 0
        assert (theta[pruned] == 0).all() and (theta[~pruned] != 0).any()
        zeros += int(pruned.sum())
    assert zeros > 0
