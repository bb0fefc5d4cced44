"""Real LeNet tasks on a local Ray instance: the same bits as the inline executor.

A tiny instability analysis (2 replicates, k = 0 and 10, 2 children each)
runs once inline through the CLI (tests.mock_main) and then on Ray
(tests.mock_worker: the same mock data in the worker processes), through
the CLI with ``--executor=ray`` and through ``ray_executor.run`` with two
workers: results.json, every run's final weights and every record must be
equal, also when a worker process is SIGKILLed in the middle of a child.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import parse_config
from tests.test_instability import FLAGS
from tests.test_main import checkpoint_tensors
from tf_lottery import experiments as registry
from tf_lottery.core import layout, records, store
from tf_lottery.tasks import ray_executor

ROOT = pathlib.Path(__file__).resolve().parents[1]
E2E = (*FLAGS, "--dataset=fashion_mnist", "--replicates=2")
MOCK = "tests.mock_worker:MockDataWorker"
EXAMPLES = "200"


def _cli(model_dir, *extra) -> subprocess.CompletedProcess:
    """``tf_lottery.main`` over mock data, in the worker processes too."""
    env = {**os.environ, "MOCK_EXAMPLES": EXAMPLES, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "tests.mock_main", *E2E, f"--model_dir={model_dir}", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def inline_cli(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("inline") / "run"
    return model_dir, _cli(model_dir)


@pytest.fixture(scope="module")
def inline_run(inline_cli):
    return inline_cli[0]


def _records(root: pathlib.Path) -> dict[str, object]:
    """Every JSON record under ``root`` but leases and config, without wall times
    and with paths re-rooted."""
    out = {}
    for path in sorted(root.rglob("*.json")):
        rel = str(path.relative_to(root))
        if path.name in ("lease.json", "config.json") or "/leases/" in f"/{rel}":
            continue
        text = path.read_text().replace(str(root), "<model_dir>")
        out[rel] = _without_times(json.loads(text))
    return out


def _without_times(value):
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items()
                if not (k.startswith("wall_time") or k.endswith("seconds"))}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _final_weights(root: pathlib.Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(root)): checkpoint_tensors(str(p / "ckpt"))
            for p in sorted(root.rglob("final")) if p.is_dir()}


def assert_same_bits(a: pathlib.Path, b: pathlib.Path) -> None:
    ra, rb = _records(a), _records(b)
    assert ra.keys() == rb.keys() and "results.json" in ra
    for name in ra:
        assert ra[name] == rb[name], name
    wa, wb = _final_weights(a), _final_weights(b)
    assert wa.keys() == wb.keys() and len(wa) >= 6  # 2 parents, 8 children
    for run in wa:
        assert wa[run].keys() == wb[run].keys()
        for name in wa[run]:
            np.testing.assert_array_equal(wa[run][name], wb[run][name],
                                          err_msg=f"{run}: {name}")


def _table(done: subprocess.CompletedProcess, model_dir) -> str:
    """The summary table the CLI prints at the end, its model_dir re-rooted."""
    out = done.stdout
    return out[out.index("Instability analysis of"):].replace(str(model_dir), "<model_dir>")


def _figure_events(root: pathlib.Path) -> dict[str, int]:
    """How many times each report figure was drawn into the summary run."""
    counts: dict[str, int] = {}
    for path in (root / "summary").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                if v.tag.startswith("figures/"):
                    counts[v.tag] = counts.get(v.tag, 0) + 1
    return counts


@pytest.mark.slow
def test_the_cli_with_executor_ray_gives_the_inline_bits_and_table(inline_cli,
                                                                   tmp_path_factory):
    """The driver builds no strategy and loads no data; tasks run on Ray
    workers, and the driver redraws the figures after each rewind point as
    the inline executor does, then prints the table from the returned record."""
    inline_dir, inline = inline_cli
    model_dir = tmp_path_factory.mktemp("ray") / "run"
    done = _cli(model_dir, "--executor=ray")
    assert "Ray: " in done.stderr and "tasks to run on" in done.stderr
    assert _table(done, model_dir) == _table(inline, inline_dir)
    assert_same_bits(inline_dir, model_dir)
    # The same figures, and the instability figure drawn as often (after each
    # rewind point by the driver, last by the results task); a rewind point's
    # own figure counts the refreshes after it, which depend on the order.
    ray_figures, inline_figures = _figure_events(model_dir), _figure_events(inline_dir)
    assert ray_figures.keys() == inline_figures.keys()
    assert ray_figures["figures/instability"] == inline_figures["figures/instability"] == 3
    # Relaunched when complete: nothing runs, the table again.
    again = _cli(model_dir, "--executor=ray")
    assert "already complete" in again.stdout
    assert _table(again, model_dir) == _table(done, model_dir)


def _ray(model_dir, monkeypatch) -> records.Results:
    monkeypatch.setenv("MOCK_EXAMPLES", EXAMPLES)  # inherited by the Ray workers
    config = parse_config(*E2E, model_dir=str(model_dir))
    return ray_executor.run(config, experiment=registry.get(config.experiment), workers=2,
                            worker=MOCK, num_cpus=2)


@pytest.mark.slow
def test_a_worker_killed_mid_child_resumes_it_to_the_same_bits(inline_run, tmp_path,
                                                                monkeypatch, capfd):
    model_dir = tmp_path / "run"
    child = "replicate_0/k_000000000/child_0"
    state = pathlib.Path(layout.resume_state_file(layout.task_run_dir(str(model_dir), child)))
    lease_file = pathlib.Path(layout.lease_file(layout.task_lease_dir(str(model_dir), child)))
    killed = {}

    def kill_after_first_checkpoint():
        deadline = time.time() + 600
        while time.time() < deadline:
            if state.exists() and f"{layout.CHECKPOINT_NAME}-10" in state.read_text():
                killed["pid"] = json.loads(lease_file.read_text())["pid"]
                os.kill(killed["pid"], signal.SIGKILL)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    killer.start()
    results = _ray(model_dir, monkeypatch)
    killer.join()
    assert killed, "the child finished before it could be killed"
    # The retry (in a new process) resumed from the child's own checkpoint;
    # Ray forwards its workers' logs to this process.
    logs = capfd.readouterr()
    run_dir = re.escape(layout.task_run_dir(str(model_dir), child))
    assert re.search(rf"Resuming {run_dir} from step [1-9]", logs.out + logs.err)
    assert_same_bits(inline_run, model_dir)
    # run() returns the experiment's record, as read from results.json.
    assert results == store.read(layout.results_file(str(model_dir)),
                                 records.ExperimentResults, str(model_dir))
    assert layout.is_complete(results)
