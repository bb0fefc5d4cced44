"""benchmarks/plan_cluster.py: hours, critical path and makespans of a planned graph."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from tf_lottery.tasks.graph import Graph, Task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module():
    spec = importlib.util.spec_from_file_location(
        "plan_cluster", os.path.join(ROOT, "benchmarks", "plan_cluster.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _graph() -> Graph:
    """A parent of 3600 steps, two children of 1800 and a pair; a free summary."""
    return Graph([
        Task("parent", "parent", (), 3600),
        Task("child_0", "child", ("parent",), 1800),
        Task("child_1", "child", ("parent",), 1800),
        Task("pair", "pair", ("child_0", "child_1"), 360),
        Task("results", "summary", ("pair",), 0),
    ])


def test_plan_graph_sums_hours_and_schedules_on_each_worker_count():
    plan = _module().plan_graph(_graph(), seconds_per_step=1.0, workers=[1, 2, 8])
    assert plan["tasks"] == 5 and plan["total_steps"] == 7560
    assert plan["accelerator_hours"] == pytest.approx(2.1)
    assert plan["critical_path_hours"] == pytest.approx(1.6)  # parent, a child, the pair
    assert plan["makespan_hours"] == pytest.approx({"1": 2.1, "2": 1.6, "8": 1.6})


def test_task_overhead_counts_once_per_task_that_trains():
    plan = _module().plan_graph(_graph(), 1.0, [1], task_overhead_s=36.0)
    assert plan["accelerator_hours"] == pytest.approx(2.1 + 4 * 0.01)  # not the summary


def test_step_times_say_where_each_figure_comes_from_and_can_be_overridden(tmp_path):
    module = _module()
    with open(module.STEP_TIMES) as f:
        table = json.load(f)
    for accelerator, models in table.items():
        if accelerator.startswith("_"):
            continue
        for model, entry in models.items():
            assert entry["seconds_per_step"] > 0, (accelerator, model)
            assert entry["source"].split(":")[0] in ("measured", "assumption")
    times = module.load_step_times(module.STEP_TIMES, "gpu", ["resnet20=0.5"])
    assert times["resnet20"] == {"seconds_per_step": 0.5, "source": "given: --step_time"}
    assert times["vgg16"]["source"].startswith("assumption")
    with pytest.raises(SystemExit, match="--accelerator=abacus is not in"):
        module.load_step_times(module.STEP_TIMES, "abacus", [])
    with pytest.raises(SystemExit, match="expected MODEL=SECONDS"):
        module.load_step_times(module.STEP_TIMES, "gpu", ["resnet20=fast"])


def test_markdown_has_a_row_per_planned_recipe():
    module = _module()
    row = {"recipe": "toy", "experiment": "instability", "seconds_per_step": 1.0,
           "source": "assumption: a guess", **module.plan_graph(_graph(), 1.0, [1, 8])}
    table = module.markdown([row, {"recipe": "x", "skipped": "no time"}], [1, 8]).splitlines()
    assert len(table) == 3
    assert table[2] == ("| toy | instability | 5 | 2.1 h | 1.6 h | 2.1 h | 1.6 h "
                        "| 1 (assumption) |")


def test_cli_plans_a_table_1_flagfile_through_the_real_planner(capsys):
    module = _module()
    assert module.main(["--recipes=resnet20", "--experiments=instability,imp",
                        "--workers=1,8", "--step_time=resnet20=0.5"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["recipe"], r["experiment"]) for r in rows] == [
        ("resnet20", "instability"), ("resnet20", "imp")]
    for row in rows:
        assert row["source"] == "given: --step_time" and row["seconds_per_step"] == 0.5
        assert row["makespan_hours"]["1"] == pytest.approx(row["accelerator_hours"])
        assert row["critical_path_hours"] <= row["makespan_hours"]["8"] < \
            row["accelerator_hours"]
        assert row["accelerator_hours"] == pytest.approx(row["total_steps"] * 0.5 / 3600)
    # The paper's counts: 3 parents, 3 independent pairs, at each of 7 rewind
    # steps 3 x (3 children + 3 pairs) and a record, the results.
    assert rows[0]["tasks"] == 3 + 3 + 7 * (3 * 6 + 1) + 1 == 140
