"""Onset search, layer-wise barriers and IMP level-to-level paths, end to end on tiny data."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import parse_config, tiny_pipeline
from tf_lottery import experiments as registry
from tf_lottery import report, rundir
from tf_lottery.config import experiments
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import imp, toolkit
from tf_lottery.experiments import instability as analysis
from tf_lottery.experiments import onset as onset_experiment
from tf_lottery.pruning import masks, wrappers
from tf_lottery.stability import layerwise
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.tasks import plan as plan_lib

COMMON = ("--train_steps=16", "--batch_size=20", "--eval_batch_size=50",
          "--train_eval_examples=100", "--interpolation_points=3", "--steps_per_loop=4",
          "--checkpoint_every=8", "--log_every=8", "--eval_every=0")


def config(model_dir, *extra):
    return parse_config(*COMMON, *extra, model_dir=str(model_dir))


def run(fn, c):
    rundir.claim(c)  # config.json, as main writes it
    return fn(c, tf.distribute.get_strategy(), tiny_pipeline(c))


def file_times(root):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, fs in os.walk(root) for f in fs}


def summary_scalars(run_dir):
    """tag -> {step: value} of a summary run's scalars (only its own events,
    not those of runs nested under it)."""
    found = {}
    for path in glob.glob(os.path.join(run_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                value = tf.make_ndarray(v.tensor)
                if value.ndim == 0 and value.dtype.kind == "f":  # not layouts nor images
                    found.setdefault(v.tag, {})[event.step] = float(value)
    return found


def image_steps(run_dir, tag):
    """The steps at which a summary run holds images under ``tag``, in order."""
    return sorted(event.step
                  for path in glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))
                  for event in tf.compat.v1.train.summary_iterator(path)
                  for v in event.summary.value if v.tag == tag)


def test_new_knobs_leave_existing_recipe_hashes_alone():
    base = ("--experiment=instability",)
    c = config("/tmp/unused", *base)
    assert c.recipe_hash() == config("/tmp/unused", *base, "--layerwise_points=5").recipe_hash()
    assert c.recipe_hash() != config("/tmp/unused", *base,
                                     "--layerwise_barriers").recipe_hash()
    i = config("/tmp/unused", "--experiment=imp")
    assert [s.section for s in i.sections] == ["pruning"]
    with_paths = config("/tmp/unused", "--experiment=imp", "--imp_level_barriers=1")
    assert [s.section for s in with_paths.sections] == ["pruning", "instability"]
    assert i.recipe_hash() != with_paths.recipe_hash()


@pytest.mark.parametrize("args,flag", [
    (("--onset_grid=0,99",), "onset_grid"),
    (("--onset_max_fraction=0.01",), "onset_max_fraction"),
    (("--onset_level=3", "--imp_levels=2"), "onset_level"),
    (("--onset_checks=-1",), "onset_checks"),
])
def test_bad_onset_flags_are_named(args, flag):
    with pytest.raises(ConfigError, match=flag):
        config("/tmp/unused", "--experiment=onset", *args)


def test_onset_experiment_is_registered():
    assert "onset" in experiments.names()
    assert registry.get("onset") is onset_experiment.EXPERIMENT


@pytest.mark.slow
def test_dense_onset_probes_like_the_sweep_and_resumes(tmp_path):
    # Threshold 1.0: every k is stable, so the search walks down to k=0 and
    # checks k=1: probes 2, 1, 0 of the grid (0, 1, 2, 4, 8), never 4 or 8.
    c = config(tmp_path / "onset", "--experiment=onset", "--onset_max_fraction=0.5",
               "--stability_threshold=0.999", "--layerwise_barriers")
    # Before anything is measured the graph holds the parent, the first probe
    # (the grid's middle, k=2) and the results: later probes are undecided.
    ids = [t.id for t in registry.plan(c)]
    assert [i for i in ids if i.endswith("/k_000000002") or i.startswith("k_")] == [
        "k_000000002"]
    assert ids[0] == "replicate_0/parent" and ids[-1] == "results"
    assert "replicate_0/k_000000002/layerwise_0_1" in ids
    result = run(onset_experiment.onset, c)
    assert result.grid == [0, 1, 2, 4, 8]
    planned = registry.plan(c)
    assert [t.id for t in planned if t.kind == "onset_rewind_point"] == [
        "k_000000002", "k_000000000", "k_000000001"]
    assert all(plan_lib.is_done(registry.get(c.experiment), c, t) for t in planned)
    assert [p.rewind_step for p in result.probes] == [2, 0, 1]
    assert result.bracket == [None, 0] and result.outcome == "stable_from_start"
    assert (result.child_runs, result.full_grid_child_runs) == (6, 10)
    stored = store.read(layout.results_file(str(tmp_path / "onset")), records.ExperimentResults,
                        str(tmp_path / "onset"))
    assert stored == result
    # The probe at k=2 is the instability analysis' rewind point k=2, bit for bit.
    sweep = config(tmp_path / "sweep", "--experiment=instability", "--rewind_steps=2",
                   "--stability_threshold=0.999")
    swept = run(analysis.instability, sweep).rewind_steps[0]
    assert swept.barrier == result.probes[0].barrier
    # Relaunched: nothing is recomputed, the same result comes back.
    before = file_times(tmp_path / "onset")
    again = run(onset_experiment.onset, c)
    assert again.probes == result.probes and again.bracket == result.bracket
    after = file_times(tmp_path / "onset")
    assert [p for p in before if before[p] != after[p] and "events" not in p] == []
    assert layout.ONSET_FIGURE in report.build(str(tmp_path / "onset")).figures
    # TensorBoard: the probes and the bracket in the summary run, nothing at the root.
    tb = summary_scalars(layout.summary_dir(str(tmp_path / "onset")))
    assert tb[layout.onset_tag("test")] == {
        p.rewind_step: pytest.approx(p.barrier["test"].mean) for p in result.probes}
    assert tb[layout.ONSET_BRACKET_HIGH] == {0: 0.0}
    assert sorted(tb[layout.layerwise_tag("test", "fc1")]) == [0, 1, 2]
    assert not glob.glob(str(tmp_path / "onset" / "events.out.tfevents.*"))
    # The onset figure is redrawn after each probe, its step the probes so far
    # (the end and the relaunch redraw the last one at its step).
    assert sorted(set(image_steps(layout.summary_dir(str(tmp_path / "onset")),
                                  layout.figure_tag(layout.ONSET_FIGURE)))) == [1, 2, 3]


def test_layerwise_barriers_in_the_instability_analysis(tmp_path):
    c = config(tmp_path, "--experiment=instability", "--rewind_steps=0",
               "--layerwise_barriers", "--layerwise_points=3")
    result = run(analysis.instability, c)
    (summary,) = result.layerwise
    assert summary.rewind_step == 0 and summary.groups == ["fc1", "fc2", "logits"]
    point = layout.rewind_point_dir(str(tmp_path), 0, 0)
    pair = store.read(layout.layerwise_file(point, 0, 1), records.LayerwiseRecord,
                      str(tmp_path))
    assert pair.alphas == [0.0, 0.5, 1.0]
    assert [g.parameters for g in pair.groups] == [784 * 300 + 300, 300 * 100 + 100,
                                                   100 * 10 + 10]
    # Every group's path starts at child 1 itself: the pair's own α=0.
    own = result.rewind_steps[0].replicates[0].pairs[0]
    for g in pair.groups:
        assert g.error["test"][0] == own.error["test"][0]
        assert summary.barrier[g.name]["test"].mean == g.barrier["test"]
    assert records.InstabilityResults.from_json(result.to_json(str(tmp_path)),
                                                str(tmp_path)) == result
    drawn = report.build(str(tmp_path))
    assert "layerwise_k0.png" in drawn.figures and "layerwise_k0.png" in drawn.markdown
    tb = summary_scalars(layout.summary_dir(str(tmp_path)))
    assert tb[layout.layerwise_tag("test", "fc2")] == {
        0: pytest.approx(summary.barrier["fc2"]["test"].mean)}


def test_imp_level_paths(tmp_path):
    c = config(tmp_path, "--experiment=imp", "--imp_levels=2", "--rewind_step=0",
               "--imp_level_barriers=1,2")
    result = run(imp.imp, c)
    assert [p.levels for p in result.level_paths] == [[0, 1], [0, 2], [1, 2]]
    for p in result.level_paths:
        a, b = result.levels[p.levels[0]], result.levels[p.levels[1]]
        assert p.densities == [a.density, b.density]
        # The path's ends are the levels' own networks: their test errors.
        assert p.pair.error["test"][0] == pytest.approx(a.test_error, abs=1e-6)
        assert p.pair.error["test"][-1] == pytest.approx(b.test_error, abs=1e-6)
        assert p.pair.barrier["test"] >= 0
    assert imp.level_pairs(3, (1,)) == [(0, 1), (1, 2), (2, 3)]
    before = file_times(tmp_path)
    assert run(imp.imp, c).level_paths == result.level_paths
    after = file_times(tmp_path)
    paths = [p for p in before if f"/{layout.LEVEL_PATHS_DIR}/" in p]
    assert paths and all(before[p] == after[p] for p in paths)
    written = report.write(report.build(str(tmp_path)), str(tmp_path / "report"))
    assert str(tmp_path / "report" / layout.LEVEL_BARRIERS_FIGURE) in written
    # TensorBoard: beside IMP's accuracy in its summary run, against L and
    # against the ppm pruned at L (steps that grow as pruning proceeds).
    tb = summary_scalars(layout.summary_run(str(tmp_path), "imp"))
    gap1 = {p.levels[0]: p for p in result.level_paths if p.gap == 1}
    assert tb[layout.level_barrier_tag("test", 1)] == {
        a: pytest.approx(p.pair.barrier["test"]) for a, p in gap1.items()}
    assert sorted(tb[layout.level_barrier_tag("train", 2, vs_pruned=True)]) == [0]


@pytest.mark.slow
def test_sparse_onset_at_an_imp_level(tmp_path):
    c = config(tmp_path, "--experiment=onset", "--onset_grid=0,4,8", "--onset_level=1",
               "--imp_levels=1", "--stability_threshold=0.999", "--onset_checks=0")
    result = run(onset_experiment.onset, c)
    assert result.level == 1 and result.outcome == "stable_from_start"
    assert [p.rewind_step for p in result.probes] == [4, 0]
    imp_results = store.read(layout.results_file(str(tmp_path / "imp")),
                             records.ImpResults, str(tmp_path / "imp"))
    assert [lv.level for lv in imp_results.levels] == [0, 1]
    child = layout.child_dir(layout.rewind_point_dir(str(tmp_path), 0, 4), 0)
    assert store.read_run(child).step == 16


def test_layerwise_barriers_of_imp_sparse_instability(tmp_path):
    c = config(tmp_path, "--experiment=imp", "--imp_levels=1", "--rewind_step=0",
               "--instability", "--imp_instability_levels=1", "--layerwise_barriers",
               "--layerwise_points=3")
    result = run(imp.imp, c)
    level = result.levels[1]
    assert level.instability is not None and result.levels[0].instability is None
    summary = level.instability.layerwise
    assert summary.rewind_step == 0 and summary.groups == ["fc1", "fc2", "logits"]
    point = layout.sparse_instability_dir(str(tmp_path), 1)
    stored = store.read(layout.layerwise_file(point, 0, 1), records.LayerwiseRecord,
                        str(tmp_path))
    assert stored.children == [0, 1] and stored.alphas == [0.0, 0.5, 1.0]
    # The groups' sizes are the dense network's: masks and thresholds not counted.
    assert [g.parameters for g in stored.groups] == [784 * 300 + 300, 300 * 100 + 100,
                                                     100 * 10 + 10]
    ends = [toolkit.run_record(layout.child_dir(point, i)).final_checkpoint for i in (0, 1)]
    assert stored.endpoints == ends
    for g in stored.groups:  # one pair: the level's mean is the pair's own
        assert summary.barrier[g.name]["test"].mean == g.barrier["test"]

    # The same two children, evaluated afresh in a masked model: the same
    # numbers, and every pruned weight is 0 at every point of every path.
    trainer = imp.make_trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    evaluator = PathEvaluator.for_config(trainer, c)
    mask = masks.load(layout.mask_file(layout.level_dir(str(tmp_path), 1)))
    assert 0 < masks.density(mask) < 1
    kernels = wrappers.pruning_vars(trainer.model)
    visited = []
    evaluate_point = evaluator.point

    def checked_point(w1, w2, alpha):
        metrics = evaluate_point(w1, w2, alpha)
        for name, (weight, held) in kernels.items():
            np.testing.assert_array_equal(held.numpy(), mask[name])
            assert not np.any(weight.numpy()[mask[name] == 0]), (name, alpha)
        visited.append(alpha)
        return metrics

    evaluator.point = checked_point
    w1, w2 = evaluator.endpoint(ends[0]), evaluator.endpoint(ends[1])
    direct = layerwise.evaluate(evaluator, w1, w2, 3)
    assert len(visited) == 1 + 3 * 2  # W1 once, then α = 0.5, 1 for each group
    for (group, curves), g in zip(direct, stored.groups, strict=True):
        assert group.name == g.name
        assert curves["test_error"] == g.error["test"]
        assert curves["train_loss"] == g.loss["train"]
        assert curves["barrier"] == g.barrier
    # Every group moving at once is the pair's own path, barrier and all.
    pair = level.instability.pairs[0]
    (everything,) = layerwise.curves(evaluator, w1, w2, [[True] * len(w1)], 3)
    assert everything["test_error"] == pair.error["test"]
    assert everything["barrier"] == pair.barrier

    # Stored with the level; an instability.json written before the field reads as None.
    again = store.read(layout.results_file(str(tmp_path)), records.ImpResults, str(tmp_path))
    assert again == result
    older = level.instability.to_json(str(tmp_path))
    del older["layerwise"]
    assert records.SparseInstabilityRecord.from_json(older, str(tmp_path)).layerwise is None
    # TensorBoard: beside the level's sparse barrier in IMP's summary run.
    tb = summary_scalars(layout.summary_run(str(tmp_path), "imp"))
    assert tb[layout.branch_tag(layout.layerwise_tag("test", "fc2"))] == {
        1: pytest.approx(summary.barrier["fc2"]["test"].mean)}
    assert tb[layout.branch_tag(layout.layerwise_tag("train", "logits"), vs_pruned=True)] == {
        layout.ppm_pruned(level.density): pytest.approx(summary.barrier["logits"]["train"].mean)}
    drawn = report.build(str(tmp_path))
    figure = layout.IMP_LAYERWISE_FIGURE.format(level=1)
    assert figure in drawn.figures and figure in drawn.markdown
    assert layout.IMP_LAYERWISE_FIGURE.format(level=0) not in drawn.figures


def test_onset_gives_the_same_bits_inline_and_task_by_task(tmp_path):
    """Executor equivalence for a graph that grows: one task at a time, each
    in a fresh Worker (which plans the graph from what is measured so far),
    always the first pending task of the current plan in reverse order,
    until none is pending; every checkpoint, mask and record equals the
    inline run's."""
    from tests.test_tasks import assert_same_bits, reverse_order, run_one_by_one

    args = ("--experiment=onset", "--onset_max_fraction=0.5", "--stability_threshold=0.999")
    inline = config(tmp_path / "inline", *args)
    run(onset_experiment.onset, inline)
    tasks = config(tmp_path / "tasks", *args)
    rundir.claim(tasks)
    onset = registry.get("onset")
    ran = []
    while True:
        graph = registry.plan(tasks)
        pending = [i for i in reverse_order(graph)
                   if not plan_lib.is_done(onset, tasks, graph[i])]
        if not pending:
            break
        run_one_by_one(tasks, pending[:1])
        ran.append(pending[0])
    assert [i for i in ran if i.startswith("k_")] == ["k_000000002", "k_000000000",
                                                       "k_000000001"]
    assert_same_bits(str(tmp_path / "inline"), str(tmp_path / "tasks"))
