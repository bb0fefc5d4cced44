"""Experiments as task graphs: planned from the config alone, run one task at a
time in any valid order with the same bits as the inline executor, refused
with one line when a dependency is missing, listed and reported by status."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests.conftest import parse_config, tiny_data, tiny_pipeline
from tf_lottery import experiments
from tf_lottery.config import config_from_json
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import imp
from tf_lottery.experiments import instability as analysis
from tf_lottery.models import registry
from tf_lottery.tasks import cli as tasks_cli
from tf_lottery.tasks import plan as plan_lib
from tf_lottery.tasks.graph import Graph
from tf_lottery.tasks.progress import Progress, describe
from tf_lottery.tasks.worker import MissingDependenciesError, Worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ("--train_steps=20", "--batch_size=20", "--eval_batch_size=50",
        "--train_eval_examples=100", "--steps_per_loop=10", "--checkpoint_every=10",
        "--log_every=10", "--eval_every=10")
INSTABILITY = ("--experiment=instability", *TINY, "--rewind_steps=0,10",
               "--interpolation_points=3")
IMP = ("--experiment=imp", *TINY, "--rewind_steps=0", "--imp_levels=2",
       "--imp_baselines=random_prune,random_reinit", "--imp_baseline_levels=2",
       "--instability", "--imp_instability_levels=0,2", "--interpolation_points=3",
       "--layerwise_barriers", "--layerwise_points=3")


def ids_and_deps(graph):
    return [(t.id, t.kind, list(t.deps)) for t in graph]


# -- the plan: a pure function of the config -------------------------------------------------

def test_instability_graph_ids_deps_and_order():
    c = parse_config(*INSTABILITY, "--replicates=2", "--children=2")
    graph = experiments.plan(c)
    p0, p1 = "replicate_0/parent", "replicate_1/parent"

    def point(k):
        tasks = []
        for r, parent in ((0, p0), (1, p1)):
            d = f"replicate_{r}/k_{k:09d}"
            tasks += [(f"{d}/child_0", "child", [parent]), (f"{d}/child_1", "child", [parent]),
                      (f"{d}/pair_0_1", "pair", [f"{d}/child_0", f"{d}/child_1"])]
        return [*tasks, (f"k_{k:09d}", "rewind_point", [t[0] for t in tasks])]

    assert ids_and_deps(graph) == [
        (p0, "parent", []), (p1, "parent", []),
        ("independent/pair_0_1", "independent_pair", [p0, p1]),
        *point(0), *point(10),
        ("results", "instability_results",
         [p0, p1, "independent/pair_0_1", "k_000000000", "k_000000010"])]
    assert graph["replicate_1/k_000000010/child_1"].args == (
        ("replicate", 1), ("k", 10), ("child", 1))
    # Costs: a child from k=10 trains half the steps of a parent.
    assert graph[p0].cost_steps > graph["replicate_0/k_000000010/child_0"].cost_steps > 10
    assert graph["k_000000010"].cost_steps == 0


def baseline_sparse(run):
    """The sparse-instability tasks of a baseline's run ``run`` (IMP below)."""
    d = f"{run}/instability"
    children = [f"{d}/child_0", f"{d}/child_1"]
    return [(children[0], "sparse_child", [run, "level_00"]),
            (children[1], "sparse_child", [run, "level_00"]),
            (f"{d}/pair_0_1", "sparse_pair", children),
            (f"{d}/layerwise_0_1", "layerwise_pair", children),
            (d, "sparse_instability", [run, *children, f"{d}/pair_0_1", f"{d}/layerwise_0_1"])]


def test_imp_graph_ids_deps_and_order():
    graph = experiments.plan(parse_config(*IMP))
    sparse = "level_00/instability"
    sparse2 = "level_02/instability"
    assert ids_and_deps(graph) == [
        ("level_00", "dense", []),
        ("level_01", "level", ["level_00"]),
        ("level_02", "level", ["level_01"]),
        ("level_02/random_prune", "baseline", ["level_02", "level_00"]),
        ("level_02/random_reinit", "baseline", ["level_02", "level_00"]),
        (f"{sparse}/child_0", "sparse_child", ["level_00"]),
        (f"{sparse}/child_1", "sparse_child", ["level_00"]),
        (f"{sparse}/pair_0_1", "sparse_pair", [f"{sparse}/child_0", f"{sparse}/child_1"]),
        (f"{sparse}/layerwise_0_1", "layerwise_pair",
         [f"{sparse}/child_0", f"{sparse}/child_1"]),
        (sparse, "sparse_instability",
         ["level_00", f"{sparse}/child_0", f"{sparse}/child_1", f"{sparse}/pair_0_1",
          f"{sparse}/layerwise_0_1"]),
        (f"{sparse2}/child_0", "sparse_child", ["level_02", "level_00"]),
        (f"{sparse2}/child_1", "sparse_child", ["level_02", "level_00"]),
        (f"{sparse2}/pair_0_1", "sparse_pair", [f"{sparse2}/child_0", f"{sparse2}/child_1"]),
        (f"{sparse2}/layerwise_0_1", "layerwise_pair",
         [f"{sparse2}/child_0", f"{sparse2}/child_1"]),
        (sparse2, "sparse_instability",
         ["level_02", f"{sparse2}/child_0", f"{sparse2}/child_1", f"{sparse2}/pair_0_1",
          f"{sparse2}/layerwise_0_1"]),
        # Level 2's baselines, each from its own run (its mask) and level 0's W_k.
        *baseline_sparse("level_02/random_prune"),
        *baseline_sparse("level_02/random_reinit"),
        ("results", "imp_results", [t.id for t in graph][:-1]),
    ]
    assert graph[f"{sparse2}/layerwise_0_1"].args == (("level", 2), ("k", 0), ("pair", (0, 1)))
    assert graph["level_02/random_reinit/instability/child_1"].args == (
        ("level", 2), ("branch", "random_reinit"), ("k", 0), ("child", 1))
    assert graph["level_02/random_prune/instability"].args == (
        ("level", 2), ("branch", "random_prune"))
    # Baselines at a level not analysed get no children: levels 1 and 2 run them, 0 and 2
    # are analysed.
    both = experiments.plan(parse_config(
        *(a for a in IMP if not a.startswith("--imp_baseline_levels")),
        "--imp_baseline_levels=1,2"))
    assert "level_01/random_prune" in both and "level_02/random_prune/instability" in both
    assert not [t.id for t in both if t.id.startswith("level_01/random_prune/instability")]
    # Without --layerwise_barriers the same graph, without the layer-wise tasks.
    plain = experiments.plan(parse_config(*IMP[:-2]))
    assert [t.id for t in plain if t.kind == "layerwise_pair"] == []
    assert [t.id for t in graph if t.kind != "layerwise_pair"] == [t.id for t in plain]
    train = experiments.plan(parse_config(*TINY))
    assert [(t.id, t.kind, t.deps) for t in train] == [("results", "train", ())]


@pytest.mark.parametrize("args", [INSTABILITY, IMP, TINY])
def test_the_graph_is_a_pure_function_of_the_config(args):
    a = parse_config(*args, model_dir="/tmp/a")
    again = parse_config(*args, model_dir="/tmp/b")
    through_json = config_from_json(a.to_json())
    graphs = [experiments.plan(c) for c in (a, again, through_json)]
    assert [[(t, t.to_json()) for t in g] for g in graphs[1:]] == [
        [(t, t.to_json()) for t in graphs[0]]] * 2
    # Every id is an output path under the model_dir, spelled by the layout module.
    for task in graphs[0]:
        out = plan_lib.output_file(experiments.get(a.experiment), a, task)
        assert out.startswith("/tmp/a/") and layout.task_id(out, "/tmp/a") in (
            task.id, os.path.join(task.id, "results"))


def test_a_different_recipe_gives_a_different_graph():
    base = experiments.plan(parse_config(*INSTABILITY))
    more = experiments.plan(parse_config(*INSTABILITY, "--children=3"))
    assert "replicate_0/k_000000000/pair_1_2" in more and "replicate_0/k_000000000/pair_1_2" \
        not in base


def test_progress_line_names_pieces_and_schedules_the_eta():
    graph = experiments.plan(parse_config(*INSTABILITY, "--replicates=2"))
    lines = []
    progress = Progress(graph, workers=2, log=lines.append)
    assert progress.rate is None and progress.eta_s() is None
    parent = graph["replicate_0/parent"]
    progress.finished(parent.id, seconds=parent.cost_steps / 100.0)  # 100 steps/s
    assert progress.rate == pytest.approx(100.0)
    rest = {t.id: t.cost_steps / 100.0 for t in graph}
    from tf_lottery.tasks.schedule import list_schedule
    assert progress.eta_s() == pytest.approx(
        list_schedule(graph, rest, 2, {parent.id}).makespan)
    (line,) = lines
    assert line.startswith(f"experiment 1/{len(graph)} tasks, {parent.cost_steps:,}/")
    assert "100.0 steps/s" in line and "on 2 workers" in line
    assert describe(graph["replicate_1/k_000000010/child_0"]) == \
        "child 0 of replicate 1, k=10"
    assert describe(graph["replicate_0/k_000000000/pair_0_1"]) == \
        "pair (0,1) of replicate 0, k=0"
    sparse = experiments.plan(parse_config(*IMP))
    assert describe(sparse["level_02/instability/pair_0_1"]) == "pair (0,1) of level 2, k=0"
    assert describe(sparse["level_02/instability/layerwise_0_1"]) == \
        "layer-wise barriers of pair (0,1) of level 2, k=0"
    assert describe(sparse["level_02/random_prune"]) == "random_prune of level 2"
    assert describe(sparse["level_02/random_prune/instability/child_1"]) == \
        "child 1 of random_prune, level 2, k=0"


def test_a_task_whose_dependencies_are_missing_is_refused_naming_them(tmp_path):
    c = parse_config(*INSTABILITY, model_dir=str(tmp_path))
    worker = Worker(experiments.get(c.experiment), c, tf.distribute.get_strategy(),
                    tiny_pipeline(c))
    with pytest.raises(MissingDependenciesError,
                       match=r"task k_000000000 needs 3 unfinished task\(s\) first: "
                             r"replicate_0/k_000000000/child_0, .*child_1, .*pair_0_1"):
        worker.run("k_000000000")
    assert worker.state("k_000000000") == "pending"
    assert worker.done_ids() == set()
    with pytest.raises(ConfigError, match="--task=nope is not a task"):
        worker.run("nope")
    assert not os.path.exists(tmp_path / "replicate_0")


# -- the same bits whatever order runs the tasks --------------------------------------------

def reverse_order(graph: Graph) -> list[str]:
    """A valid topological order far from the planner's: ties go to the last planned."""
    return Graph(list(reversed(graph.order()))).ids()


def run_one_by_one(c, order):
    """Each task in a fresh Worker (a new Trainer): nothing carries over."""
    for task_id in order:
        worker = Worker(experiments.get(c.experiment), c, tf.distribute.get_strategy(),
                        tiny_pipeline(c))
        worker.run(task_id)
        assert worker.state(task_id) == "done"


def without_wall_times(obj):
    if isinstance(obj, dict):
        return {k: without_wall_times(v) for k, v in obj.items() if not k.startswith("wall_time")}
    if isinstance(obj, list):
        return [without_wall_times(v) for v in obj]
    return obj


def checkpoints_and_masks(root):
    found = {}
    for index in glob.glob(os.path.join(root, "**", "ckpt.index"), recursive=True):
        prefix = index[:-len(".index")]
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            if name.startswith(("model/", "optimizer/")):
                found[(os.path.relpath(prefix, root), name)] = reader.get_tensor(name)
    for path in glob.glob(os.path.join(root, "**", layout.MASK_FILE), recursive=True):
        with np.load(path) as arrays:
            for name in arrays.files:
                found[(os.path.relpath(path, root), name)] = arrays[name]
    return found


def assert_same_bits(a, b):
    ours, theirs = checkpoints_and_masks(a), checkpoints_and_masks(b)
    assert ours.keys() == theirs.keys() and len(ours) > 20
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=str(key))
    records = sorted(os.path.relpath(p, a) for p in glob.glob(
        os.path.join(a, "**", "*.json"), recursive=True) if "leases" not in p)
    assert records == sorted(os.path.relpath(p, b) for p in glob.glob(
        os.path.join(b, "**", "*.json"), recursive=True) if "leases" not in p)
    for rel in records:
        if rel == layout.CONFIG_FILE:
            continue
        ours_json = json.loads(open(os.path.join(a, rel)).read())
        theirs_json = json.loads(open(os.path.join(b, rel)).read())
        assert without_wall_times(ours_json) == without_wall_times(theirs_json), rel
    assert not glob.glob(os.path.join(b, layout.LEASES_DIR, "**", layout.LEASE_FILE),
                         recursive=True)


@pytest.mark.slow
def test_instability_tasks_one_by_one_in_reverse_order_match_inline_bit_for_bit(tmp_path):
    args = (*INSTABILITY, "--replicates=2", "--bn_mode=recompute", "--bn_recompute_batches=2")
    inline = parse_config(*args, model_dir=str(tmp_path / "inline"))
    analysis.instability(inline, tf.distribute.get_strategy(), tiny_pipeline(inline))
    tasks = parse_config(*args, model_dir=str(tmp_path / "tasks"))
    graph = experiments.plan(tasks)
    order = reverse_order(graph)
    # Replicate 1 first, k=10 before k=0, child 1 before child 0.
    assert order[:3] == ["replicate_1/parent", "replicate_1/k_000000010/child_1",
                         "replicate_1/k_000000010/child_0"]
    run_one_by_one(tasks, order)
    assert_same_bits(str(tmp_path / "inline"), str(tmp_path / "tasks"))


@pytest.mark.slow
def test_imp_tasks_one_by_one_in_reverse_order_match_inline_bit_for_bit(tmp_path):
    inline = parse_config(*IMP, model_dir=str(tmp_path / "inline"))
    imp.imp(inline, tf.distribute.get_strategy(), tiny_pipeline(inline))
    tasks = parse_config(*IMP, model_dir=str(tmp_path / "tasks"))
    graph = experiments.plan(tasks)
    order = reverse_order(graph)
    assert order.index("level_00/instability/child_1") < order.index("level_01")
    run_one_by_one(tasks, order)
    assert_same_bits(str(tmp_path / "inline"), str(tmp_path / "tasks"))
    # A barrier per branch at the analysed level with baselines (level 2).
    root = str(tmp_path / "tasks")
    level = store.read(layout.results_file(root), records.ImpResults, root).levels[2]
    found = {"imp": level.instability, **{n: b.instability for n, b in level.baselines.items()}}
    assert sorted(found) == ["imp", "random_prune", "random_reinit"]
    assert all(r is not None and r.barrier["test"].n == 1 for r in found.values())


# -- the command line: --list_tasks, --task, --task_index, status ---------------------------

def cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300)


def listed(model_dir, *args):
    out = cli("tests.mock_main", *args, "--dataset=mnist", f"--model_dir={model_dir}",
              "--list_tasks")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = list(map(json.loads, out.stdout.splitlines()))
    # The total for a person goes to stderr: stdout stays one task per line.
    assert tasks_cli.total_line(lines) in out.stderr.splitlines()
    return {line["id"]: line for line in lines}


def test_list_tasks_total_counts_every_task_and_what_is_done():
    lines = [{"id": "a", "cost_steps": 24_000, "status": "done"},
             {"id": "b", "cost_steps": 24_000, "status": "running"},
             {"id": "c", "cost_steps": 1_500, "status": "pending"}]
    assert tasks_cli.total_line(lines) == (
        "total: 3 tasks, 49,500 estimated steps; done: 1 task, 24,000 steps")
    assert tasks_cli.total_line([]) == (
        "total: 0 tasks, 0 estimated steps; done: 0 tasks, 0 steps")


def error_line(out):
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ": error:" in ln]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    return lines[0]


@pytest.mark.slow
def test_cli_lists_runs_one_task_refuses_missing_deps_and_status_reports(tmp_path):
    run = tmp_path / "run"
    args = (*INSTABILITY, "--dataset=mnist", f"--model_dir={run}")
    before = listed(run, *INSTABILITY)
    assert list(before)[:2] == ["replicate_0/parent", "replicate_0/k_000000000/child_0"]
    assert {line["status"] for line in before.values()} == {"pending"}
    assert set(before["replicate_0/k_000000000/pair_0_1"]) == {
        "id", "deps", "kind", "cost_steps", "status"}
    assert not run.exists()  # listing writes nothing

    line = error_line(cli("tests.mock_main", *args, "--task=k_000000010"))
    assert ("task k_000000010 needs 3 unfinished task(s) first: "
            "replicate_0/k_000000010/child_0, replicate_0/k_000000010/child_1, "
            "replicate_0/k_000000010/pair_0_1") in line
    assert "--task=nope is not a task" in error_line(cli("tests.mock_main", *args,
                                                         "--task=nope"))
    assert "--task_index=99 is outside 0..9" in error_line(
        cli("tests.mock_main", *args, "--task_index=99"))

    out = cli("tests.mock_main", *args, "--task_index=0")  # the parent
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tf_lottery: task replicate_0/parent is complete." in out.stdout
    assert (run / "replicate_0" / "parent" / "results.json").exists()
    assert not (run / "replicate_0" / "k_000000000").exists()
    assert json.loads((run / "config.json").read_text())["experiment"] == "instability"
    after = listed(run, *INSTABILITY)
    assert after["replicate_0/parent"]["status"] == "done"
    assert [t for t, v in after.items() if v["status"] == "done"] == ["replicate_0/parent"]

    # A task another launch holds is 'running', with where and since when.
    child = "replicate_0/k_000000010/child_1"
    lease_dir = tmp_path / "run" / layout.LEASES_DIR / child
    lease_dir.mkdir(parents=True)
    holder = {"host": os.uname().nodename, "pid": os.getpid(), "started": time.time(),
              "token": "f" * 32}
    (lease_dir / layout.LEASE_FILE).write_text(json.dumps(holder))
    status = cli("tf_lottery.status", f"--model_dir={run}", "--workers=2", "--json")
    assert status.returncode == 0, status.stderr[-2000:]
    found = json.loads(status.stdout)
    assert found["counts"] == {"done": 1, "running": 1, "pending": 8}
    (running,) = [t for t in found["tasks"] if t["status"] == "running"]
    assert (running["id"], running["pid"], running["since"]) == (
        child, os.getpid(), holder["started"])
    assert found["steps_per_s"] > 0 and found["eta_s"] > 0 and found["workers"] == 2
    text = cli("tf_lottery.status", f"--model_dir={run}")
    assert text.returncode == 0, text.stderr[-2000:]
    assert "10 tasks: 1 done, 1 running, 8 pending" in text.stdout
    assert f"running  {child}  on {holder['host']} (pid {os.getpid()})" in text.stdout
    assert "ETA: " in text.stdout and "on 1 worker" in text.stdout
    assert "holds no experiment" in error_line(cli("tf_lottery.status",
                                                   f"--model_dir={tmp_path / 'none'}"))


def test_task_resources_parse_into_a_dict():
    from tf_lottery.main import parse_resources

    assert parse_resources("GPU:1,CPU:4") == {"GPU": 1.0, "CPU": 4.0}
    assert parse_resources("") == {}
    for bad in ("GPU", "GPU:x", "GPU:-1", "GPU:1,GPU:2"):
        with pytest.raises(ConfigError, match="--task_resources="):
            parse_resources(bad)


TINY_RESNET = "test_tasks_tiny_resnet"


@registry.register(TINY_RESNET)
def _tiny_resnet(num_classes, image_shape):
    """A CIFAR ResNet in miniature: conv-BN stem, one residual block, GAP, logits."""
    def conv_bn(x, name):
        x = tf_keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name=name)(x)
        return tf_keras.layers.BatchNormalization(name=f"{name}_bn")(x)

    inputs = tf_keras.Input(shape=image_shape)
    x = tf_keras.layers.ReLU()(conv_bn(inputs, "stem"))
    y = conv_bn(tf_keras.layers.ReLU()(conv_bn(x, "block_a")), "block_b")
    x = tf_keras.layers.ReLU()(tf_keras.layers.Add()([x, y]))
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(num_classes, name="logits")(x))


@pytest.mark.slow
def test_cifar_instability_tasks_one_by_one_match_inline_bit_for_bit(tmp_path):
    """BatchNorm, a residual add, CIFAR's crop-flip augmentation and statistics
    recomputed along the path: the same bits task by task as inline."""
    args = ("--experiment=instability", "--dataset=cifar10", "--augment=crop_flip",
            f"--model={TINY_RESNET}", "--train_steps=6", "--batch_size=8",
            "--eval_batch_size=16", "--train_eval_examples=16", "--steps_per_loop=3",
            "--checkpoint_every=3", "--log_every=3", "--eval_every=6", "--rewind_steps=0,3",
            "--interpolation_points=3", "--bn_mode=recompute", "--bn_recompute_batches=2")
    data = tiny_data(num_train=48, num_test=16, shape=(32, 32, 3))
    inline = parse_config(*args, model_dir=str(tmp_path / "inline"))
    analysis.instability(inline, tf.distribute.get_strategy(), tiny_pipeline(inline, data))
    tasks = parse_config(*args, model_dir=str(tmp_path / "tasks"))
    for task_id in reverse_order(experiments.plan(tasks)):
        worker = Worker(experiments.get(tasks.experiment), tasks, tf.distribute.get_strategy(),
                        tiny_pipeline(tasks, data))
        worker.run(task_id)
    assert_same_bits(str(tmp_path / "inline"), str(tmp_path / "tasks"))
