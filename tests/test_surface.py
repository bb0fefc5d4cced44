"""Planes through three networks and centroids of N (issue 26, items 2 and 3)."""

import json
import os
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import test_bn
from tests.conftest import parse_config, tiny_pipeline
from tests.test_instability import FLAGS
from tf_lottery import experiments, main, rundir
from tf_lottery.core import layout, records, store
from tf_lottery.experiments import instability, surface, toolkit
from tf_lottery.models import permutation
from tf_lottery.stability import aligned_paths, alignment, bn, centroid, interpolation, plane
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.tasks import cli as tasks_cli
from tf_lottery.tasks.worker import Worker
from tf_lottery.training.trainer import SgdNoise, Trainer

F32_ULP = 2.0 ** -23  # float32's relative spacing


def _random_networks(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(7, 5), (5,), (5, 3)]
    return [[rng.normal(0, 0.3, s).astype(np.float32) for s in shapes] for _ in range(3)]


def test_plane_basis_is_orthonormal_and_places_the_three_networks():
    nets = _random_networks()
    found = plane.through(*nets)

    def dot(a, b):
        return sum(float(np.vdot(x, y)) for x, y in zip(a, b, strict=True))

    # Gram-Schmidt in float64: unit, orthogonal to float64 rounding.
    assert dot(found.u, found.u) == pytest.approx(1.0, abs=1e-12)
    assert dot(found.v, found.v) == pytest.approx(1.0, abs=1e-12)
    assert abs(dot(found.u, found.v)) < 1e-12
    assert found.coordinates[0].tolist() == [0.0, 0.0] and found.coordinates[1][1] == 0.0
    assert found.coordinates[2][1] > 0
    # Each network at its own coordinates: a float64 value within a few
    # float64 ulps of the float32 weight, rounded to float32, so at most one
    # float32 ulp off (the weights here are far from 0).
    for net, (x, y) in zip(nets, found.coordinates, strict=True):
        for got, want in zip(found.point(x, y), net, strict=True):
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=F32_ULP, atol=0)
    xs, ys = plane.grid(found.coordinates, 5, 0.25)
    span = found.coordinates.max(axis=0) - found.coordinates.min(axis=0)
    assert xs[0] == pytest.approx(-0.25 * span[0]) and len(xs) == len(ys) == 5
    assert ys[-1] == pytest.approx(found.coordinates[2][1] + 0.25 * span[1])


def test_collinear_networks_span_no_plane():
    a, b, _ = _random_networks()
    middle = [(x + y) / 2 for x, y in zip(a, b, strict=True)]
    with pytest.raises(ValueError, match="on the line"):
        plane.through(a, b, middle)
    with pytest.raises(ValueError, match="the same"):
        plane.through(a, a, b)


def _trainer(tmp_path, model="lenet_300_100", seed=0, *extra):
    c = parse_config(f"--model={model}", "--train_steps=10", "--batch_size=20",
                     "--eval_batch_size=50", "--train_eval_examples=60", *extra,
                     model_dir=str(tmp_path))
    return c, Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), init_seed=seed)


def _weights(t):
    return interpolation.snapshot(interpolation.path_variables(t.model))


def test_the_plane_evaluated_at_the_networks_gives_their_own_errors(tmp_path):
    _, t = _trainer(tmp_path)
    nets = [_weights(t)]
    rng = np.random.default_rng(1)
    nets += [[w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in nets[0]]
             for _ in range(2)]
    evaluator = PathEvaluator(t, 2)
    found = plane.through(*nets)
    xs, ys = plane.grid(found.coordinates, 2, 0.1)
    out = plane.evaluate(evaluator, found, xs, ys)
    assert np.shape(out["test_error"]) == (2, 2)
    for net, metrics in zip(nets, out["networks"], strict=True):
        own = evaluator.at(net)
        # At most a float32 ulp per weight: a prediction flips only at a
        # near tie, so the errors agree; losses to float32 evaluation noise.
        assert metrics["test_error"] == own["test_error"]
        assert metrics["train_error"] == own["train_error"]
        assert metrics["test_loss"] == pytest.approx(own["test_loss"], rel=1e-5)


def test_the_centroid_of_identical_networks_is_that_network_with_gap_zero(tmp_path):
    _, t = _trainer(tmp_path)
    net = _weights(t)
    # N float32 copies sum exactly in float64 and divide back to the value.
    for got, want in zip(centroid.average([net] * 4), net, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    ckpt = t.checkpoint.write(str(tmp_path / "w" / "ckpt"))
    evaluator = PathEvaluator(t, 2)
    own = evaluator.at(net)
    found = centroid.evaluate(evaluator, [ckpt] * 3, aligned=True, recompute=None)
    assert found["raw"] == own and found["aligned"] == own
    assert [m["objective"][0] == m["objective"][-1] for m in found["matching"]] == [True] * 2


def test_the_aligned_centroid_of_a_network_and_its_permuted_copy_is_the_network(tmp_path):
    _, t = _trainer(tmp_path)
    spec = permutation.permutation_spec(t.model)
    a = permutation.get_weights(t.model)
    b = alignment.apply_permutation(a, spec, alignment.random_permutations(spec, 3))
    assert any(not np.array_equal(a[n], b[n]) for n in a)
    moved, matchings = centroid.align_to_first(spec, [a, b])
    assert len(matchings) == 1
    for name in a:
        np.testing.assert_array_equal(moved[1][name], a[name])
    arrays = [aligned_paths.path_arrays(t, n) for n in moved]
    for got, want in zip(centroid.average(arrays), aligned_paths.path_arrays(t, a),
                         strict=True):
        np.testing.assert_array_equal(got, want)


def test_the_centroid_of_a_batchnorm_network_recomputes_its_statistics(tmp_path):
    c, t = _trainer(tmp_path, test_bn.TINY_BN)
    ends = []
    for seed in (0, 1, 2):
        _, other = _trainer(tmp_path / f"n{seed}", test_bn.TINY_BN, seed)
        # Stored statistics far from any batch's: a centroid keeping their
        # average would show it.
        for v in bn.moving_statistics(other.model):
            v.assign(tf.fill(v.shape, 3.0 + seed))
        ends.append(other.checkpoint.write(str(tmp_path / f"w{seed}" / "ckpt")))
    noise = SgdNoise(c.train.data_order_seed, c.train.augment_seed)
    evaluator = PathEvaluator(t, 2)
    found = centroid.evaluate(evaluator, ends, aligned=False,
                              recompute=bn.BatchNormRecompute(t, 2, noise))
    statistics = bn.moving_statistics(t.model)
    held = interpolation.snapshot(statistics)
    assert not any(np.allclose(h, 4.0) for h in held)  # not the stored ones' average
    bn.BatchNormRecompute(t, 2, noise)()  # the centroid's own, recomputed again
    for a, b in zip(held, interpolation.snapshot(statistics), strict=True):
        np.testing.assert_array_equal(a, b)
    assert found["aligned"] is None and 0 <= found["raw"]["test_error"] <= 1


# -- the task kinds in the instability analysis ---------------------------------------------

SURFACE = ("--rewind_steps=10", "--children=3", "--plane=parent", "--plane_grid=3",
           "--centroid")


def _config(model_dir, *extra):
    return parse_config(*FLAGS, *SURFACE, *extra, model_dir=str(model_dir))


def test_the_grid_cost_is_listed_before_it_runs(tmp_path):
    c = _config(tmp_path / "run")
    lines = {line["id"]: line for line in tasks_cli.list_tasks(instability.EXPERIMENT, c)}
    plane_line = lines["replicate_0/k_000000010/plane_parent"]
    assert plane_line["kind"] == "plane" and plane_line["status"] == "pending"
    per_point = toolkit.eval_steps(c)
    assert plane_line["cost_steps"] == int(np.ceil((3 * 3 + 3) * per_point))
    bigger = _config(tmp_path / "run", "--plane_grid=9")
    assert surface.plane_steps(bigger) == int(np.ceil((9 * 9 + 3) * per_point))
    assert lines["replicate_0/k_000000010/centroid"]["deps"] == [
        f"replicate_0/k_000000010/child_{i}" for i in range(3)]
    assert not (tmp_path / "run").exists()


def test_the_surface_section_leaves_the_recipe_alone(tmp_path):
    plain = parse_config(*FLAGS, model_dir=str(tmp_path))
    c = parse_config(*FLAGS, "--plane=aligned", "--centroid", model_dir=str(tmp_path))
    assert c.recipe_hash() == plain.recipe_hash() and c.recipe_dict() == plain.recipe_dict()
    from tf_lottery.config import config_from_json, recipe_changes
    assert config_from_json(c.to_json()) == c  # round trip: what --task launches read
    assert recipe_changes(json.loads(plain.to_json()), c) == []


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny analysis run without the surface, then relaunched with it."""
    root = tmp_path_factory.mktemp("surface")
    plain = parse_config(*FLAGS, "--rewind_steps=10", "--children=3",
                         model_dir=str(root / "inline"))
    rundir.claim(plain)  # config.json, as a launch writes it (the report reads it)
    instability.instability(plain, tf.distribute.get_strategy(), tiny_pipeline(plain))
    shutil.copytree(root / "inline", root / "tasks")
    c = _config(root / "inline")
    assert main._asks_for_more(c) and not main._asks_for_more(plain)
    before = {p: os.stat(p).st_mtime_ns for p in map(str, (root / "inline").rglob("*"))}
    results = instability.instability(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    assert not main._asks_for_more(c)
    return root, c, before, results


def test_a_finished_run_relaunched_with_them_computes_only_the_new_pieces(finished):
    root, c, before, results = finished
    point = root / "inline" / "replicate_0" / "k_000000010"
    changed = sorted(os.path.relpath(p, root / "inline") for p in before
                     if os.path.isfile(p) and os.stat(p).st_mtime_ns != before[p])
    assert changed == ["results.json"]  # children, pairs, k's record untouched
    assert (point / "plane_parent.json").exists() and (point / "centroid.json").exists()
    (summary,) = results.centroid
    one = store.read(str(point / "centroid.json"), records.CentroidRecord, str(root / "inline"))
    assert summary.gap["test"].mean == one.raw.gap["test"]
    assert one.raw.gap["test"] == pytest.approx(one.raw.error["test"]
                                                - one.children_error["test"])
    assert len(one.matching) == 2 and not one.bn_recomputed
    found = store.read(str(point / "plane_parent.json"), records.PlaneRecord,
                       str(root / "inline"))
    assert found.networks == ["W_k", "child 0", "child 1"]
    assert np.shape(found.error["test"]) == (3, 3)
    # W_k's and the children's errors at their own coordinates are theirs.
    child = toolkit.run_record(str(point / "child_1"))
    assert found.network_error["test"][2] == pytest.approx(child.metrics.error("test"),
                                                           abs=0.011)


def test_a_finished_piece_is_not_recomputed_and_tasks_give_the_same_bits(finished,
                                                                          monkeypatch):
    root, c, _, results = finished
    calls = []
    monkeypatch.setattr(plane, "evaluate", lambda *a, **kw: calls.append(1))
    again = instability.instability(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    assert again == results and calls == []
    monkeypatch.undo()
    tasks = _config(root / "tasks")
    order = [t.id for t in experiments.plan(tasks).order()
             if t.kind in ("plane", "centroid", "instability_results")]
    for task_id in order:  # each in a fresh worker: nothing carries over
        worker = Worker(instability.EXPERIMENT, tasks, tf.distribute.get_strategy(),
                        tiny_pipeline(tasks))
        worker.run(task_id)
    for rel in ("replicate_0/k_000000010/plane_parent.json",
                "replicate_0/k_000000010/centroid.json"):
        ours, theirs = (json.loads((root / d / rel).read_text()) for d in ("inline", "tasks"))
        for d in (ours, theirs):
            d.pop("wall_time_s")
            for m in d.get("matching") or []:
                m.pop("wall_time_s")
        assert ours == theirs, rel
    theirs = store.read(layout.results_file(str(root / "tasks")), records.InstabilityResults,
                        str(root / "tasks"))
    assert theirs.centroid == results.centroid


def test_the_report_console_and_tensorboard_show_them(finished):
    from tests.test_instability import chart_titles, scalars
    from tf_lottery import report
    from tf_lottery.reporting import console

    root, _, _, results = finished
    built = report.build(str(root / "inline"))
    assert {"plane_parent_k10.png", "barrier_matrix_k10.png", "centroid.png"} <= set(
        built.figures)
    table = console.summary(results, str(root / "inline"))
    assert "centroid test gap (raw / aligned)" in table.splitlines()[1]
    (summary,) = results.centroid
    found, _ = scalars(layout.summary_run(str(root / "inline"), layout.ALIGNED_CENTROID_RUN))
    assert found[layout.centroid_gap_tag("test")] == {
        10: pytest.approx(100 * summary.aligned_gap["test"].mean, rel=1e-6)}
    # The relaunch wrote the layout again, now with the centroid's chart per
    # split (the run's first layout, without --centroid, had none).
    first, *_, last = chart_titles(root / "inline")
    gap = ("{} error of the centroid of all children minus their mean (percentage points) "
           "vs k: raw, and aligned to child 0")
    assert [t for t in last if t not in first] == [gap.format("test"), gap.format("train")]


def test_results_are_current_unless_they_lack_what_is_asked(tmp_path):
    plain = parse_config(*FLAGS, model_dir=str(tmp_path))
    asked = _config(tmp_path)
    old = {"settings": {}, "centroid": None}  # a results.json from before issue 26
    assert surface.results_current(plain, old) and not surface.results_current(asked, old)
    done = {"settings": {"plane": "parent"}, "centroid": [{}]}
    assert surface.results_current(asked, done) and surface.results_current(plain, done)
    assert not surface.results_current(_config(tmp_path, "--plane=aligned"), done)


def test_the_curve_plane_spans_the_children_and_their_fitted_bend(tmp_path):
    from tf_lottery.errors import ConfigError
    with pytest.raises(ConfigError, match="curve"):
        _config(tmp_path / "refused", "--plane=curve")  # no curve to take the bend of
    c = _config(tmp_path / "run", "--plane=curve", "--curve", "--curve_steps=6",
                "--curve_checkpoint_every=3")
    point_id = "replicate_0/k_000000010"
    lines = {line["id"]: line for line in tasks_cli.list_tasks(instability.EXPERIMENT, c)}
    assert f"{point_id}/curve_0_1" in lines[f"{point_id}/plane_curve"]["deps"]
    instability.instability(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    root = str(tmp_path / "run")
    point = os.path.join(root, point_id)
    found = store.read(layout.plane_file(point, "curve"), records.PlaneRecord, root)
    curve = store.read(layout.curve_file(point, 0, 1), records.CurveRecord, root)
    assert found.networks == ["child 0", "child 1", "bend"]
    assert found.endpoints[2] == curve.bend and curve.steps == 6
    # A fitted bend is off the line between the children: the three span a plane.
    assert found.coordinates[2][1] > 0


def test_a_plane_asked_for_on_another_grid_sets_the_old_one_aside(finished, tmp_path):
    root, _, _, _ = finished
    shutil.copytree(root / "inline", tmp_path / "run")
    c = _config(tmp_path / "run", "--plane_grid=2")
    instability.instability(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    point = tmp_path / "run" / "replicate_0" / "k_000000010"
    found = store.read(str(point / "plane_parent.json"), records.PlaneRecord,
                       str(tmp_path / "run"))
    assert found.grid == 2 and np.shape(found.error["test"]) == (2, 2)
    (old,) = point.glob(f"plane_parent.json.{layout.SUPERSEDED}-*")
    assert json.loads(old.read_text())["grid"] == 3  # kept, not overwritten


@pytest.mark.slow
def test_tensorboard_serves_the_relaunchs_layout_with_the_centroid_chart(finished):
    """TensorBoard, served on 127.0.0.1, shows the summary run's latest
    layout: the one the relaunch with --centroid wrote, not the first."""
    from tests.test_tensorboard_view import TensorBoard

    root, *_ = finished
    board = TensorBoard(root / "inline")
    try:
        deadline, titles = time.monotonic() + 120, set()
        while time.monotonic() < deadline:
            titles = {chart["title"] for category in board.get(
                "plugin/custom_scalars/layout").get("category", [])
                for chart in category["chart"]}
            if titles:
                break
            time.sleep(1)
        assert {f"{s} error of the centroid of all children minus their mean (percentage "
                "points) vs k: raw, and aligned to child 0" for s in ("test", "train")} <= titles
    finally:
        board.stop()
