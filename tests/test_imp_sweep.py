"""IMP across rewind steps (--experiment=imp_sweep): one graph with a shared
dense run and a chain per k, which trains what separate single-k IMP runs train."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import parse_config, tiny_pipeline
from tests.test_tasks import (
    TINY,
    checkpoints_and_masks,
    reverse_order,
    run_one_by_one,
    without_wall_times,
)
from tf_lottery import experiments as registry
from tf_lottery import report
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import imp, imp_sweep
from tf_lottery.reporting import collect

COMMON = (*TINY, "--imp_levels=2", "--imp_baselines=random_prune", "--imp_baseline_levels=2",
          "--instability", "--imp_instability_levels=0,2", "--interpolation_points=3")
SWEEP = ("--experiment=imp_sweep", "--rewind_steps=0,10", *COMMON)


def test_the_sweep_plans_one_dense_run_and_a_chain_per_k():
    graph = registry.plan(parse_config(*SWEEP))
    assert [t.id for t in graph if t.kind == "dense"] == ["level_00"]
    for k in (0, 10):
        chain = f"k_{k:09d}"
        assert graph[f"{chain}/level_01"].deps == ("level_00",)
        assert graph[f"{chain}/level_01"].args == (("chain", k), ("level", 1))
        assert graph[f"{chain}/level_02/random_prune"].deps == (f"{chain}/level_02", "level_00")
        # The dense network's children at k are the chain's own.
        assert graph[f"{chain}/level_00/instability/child_0"].deps == ("level_00",)
        assert graph[f"{chain}/level_00/instability/child_0"].args == (
            ("chain", k), ("level", 0), ("k", k), ("child", 0))
        assert graph[f"{chain}/level_02/random_prune/instability"].kind == "sparse_instability"
        assert graph[f"{chain}/results"].kind == "imp_results"
    results = graph["results"]
    assert results.kind == "imp_sweep_results"
    assert set(results.deps) == {t.id for t in graph} - {"results"}
    # Each chain plans what a separate run at that k plans, under k_<k>/.
    single = registry.plan(parse_config("--experiment=imp", "--rewind_steps=10",
                                        "--rewind_step=10", *COMMON))
    assert sorted(t.id for t in single if t.id != "level_00") == sorted(
        t.id.removeprefix("k_000000010/") for t in graph if t.id.startswith("k_000000010/"))


def test_the_sweep_refuses_one_rewind_step():
    with pytest.raises(ConfigError, match="rewind_step"):
        parse_config(*SWEEP, "--rewind_step=10")


def _normalized(path, roots):
    """A record's JSON without wall times, its paths relative to ``roots``."""
    text = open(path).read()
    for root in roots:
        text = text.replace(root.rstrip("/") + "/", "")
    return without_wall_times(json.loads(text))


def _chain_files(root):
    """(checkpoints and masks, JSON records) of one chain's networks: every
    file under ``root`` but the dense run's own (its analyses included)."""
    def ours(rel):
        return (not rel.startswith("level_00/") or "/instability" in rel) and not rel.startswith(
            (layout.LEASES_DIR, layout.SUMMARY_DIR)) and rel != layout.CONFIG_FILE
    arrays = {key: v for key, v in checkpoints_and_masks(root).items() if ours(key[0])}
    jsons = sorted(rel for rel in (os.path.relpath(p, root) for p in glob.glob(
        os.path.join(root, "**", "*.json"), recursive=True)) if ours(rel))
    return arrays, jsons


def _assert_chain_is_the_separate_run(sweep, k, separate):
    chain = layout.chain_dir(sweep, k)
    ours, our_jsons = _chain_files(chain)
    theirs, their_jsons = _chain_files(separate)
    assert ours.keys() == theirs.keys() and len(ours) > 20
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"k={k} {key}")
    assert our_jsons == their_jsons and layout.RESULTS_FILE in our_jsons
    for rel in our_jsons:
        assert (_normalized(os.path.join(chain, rel), [chain, sweep])
                == _normalized(os.path.join(separate, rel), [separate])), (k, rel)
    # The dense run: the same W_T, and the same W_k.
    for sub in ("final/ckpt", f"rewind/{layout.step_name(k)}/ckpt"):
        a = tf.train.load_checkpoint(os.path.join(sweep, "level_00", sub))
        b = tf.train.load_checkpoint(os.path.join(separate, "level_00", sub))
        for name in a.get_variable_to_shape_map():
            if name.startswith("model/"):
                np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name))


@pytest.mark.slow
def test_sweep_chains_match_separate_single_k_runs_bit_for_bit(tmp_path):
    """Each chain's level and baseline checkpoints, masks, children, pairs and
    records are those of --experiment=imp --rewind_step=k with the same seeds
    (run here, in the same test); the sweep trains the dense network once.
    Task by task in fresh Workers, the sweep writes the same bits again."""
    sweep = str(tmp_path / "sweep")
    c = parse_config(*SWEEP, model_dir=sweep)
    results = imp_sweep.imp_sweep(c, tf.distribute.get_strategy(), tiny_pipeline(c))
    assert [chain.rewind_step for chain in results.chains] == [0, 10]
    assert all(len(chain.levels) == 3 for chain in results.chains)
    for k in (0, 10):
        separate = str(tmp_path / f"k{k}")
        single = parse_config("--experiment=imp", f"--rewind_steps={k}", f"--rewind_step={k}",
                              *COMMON, model_dir=separate)
        imp.imp(single, tf.distribute.get_strategy(), tiny_pipeline(single))
        _assert_chain_is_the_separate_run(sweep, k, separate)
    assert store.read(layout.results_file(sweep), records.ImpSweepResults, sweep) == results
    assert not glob.glob(os.path.join(sweep, "k_*", "level_00", "final"))  # trained once
    # The report reads each chain as an IMP run of the same recipe but k.
    found = collect.find_experiments(sweep)
    assert found == [layout.chain_dir(sweep, 0), layout.chain_dir(sweep, 10)]
    runs = [collect.load(path, os.path.basename(path)) for path in found]
    assert [r.config.pruning.rewind_step for r in runs] == [0, 10]
    assert all(r.complete and sorted(r.levels) == [0, 1, 2] for r in runs)
    # The paper's figure against k: the sparsest level measured at every k (2).
    built = report.build(sweep)
    accuracy_ax, barrier_ax = built.figures[layout.IMP_REWIND_FIGURE].axes[:2]
    accuracy_line, barrier_line = accuracy_ax.get_lines()[0], barrier_ax.get_lines()[0]
    assert list(accuracy_line.get_xdata()) == list(barrier_line.get_xdata()) == [0, 10]
    assert list(accuracy_line.get_ydata()) == [
        100 * chain.levels[2].test_accuracy for chain in results.chains]
    assert list(barrier_line.get_ydata()) == [
        100 * chain.levels[2].instability.barrier["test"].mean for chain in results.chains]

    tasks = str(tmp_path / "tasks")
    by_task = parse_config(*SWEEP, model_dir=tasks)
    run_one_by_one(by_task, reverse_order(registry.plan(by_task)))
    for k in (0, 10):
        _assert_chain_is_the_separate_run(tasks, k, str(tmp_path / f"k{k}"))
