"""Start-up milestones: marked once, reported once, and read back by benchmarks/startup.py."""

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tf_lottery import startup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "startup_benchmark", os.path.join(ROOT, "benchmarks", "startup.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fresh(monkeypatch):
    """A process that has reached no milestone yet."""
    monkeypatch.setattr(startup, "_marks", {})
    monkeypatch.setattr(startup, "_notes", {})
    monkeypatch.setattr(startup, "_reported", False)


def test_first_loop_is_timed_and_reported_once(fresh, caplog):
    calls = []

    def loop(iterator, num_steps):
        calls.append(int(num_steps))
        return tf.constant([1.0, 2.0]), tf.constant(0.1)

    startup.mark("main")
    startup.mark("main")  # the first time counts
    first_main = startup.marks()["main"]
    startup.note("data_source", "cache")
    timed = startup.timed_first_loop(loop)
    # absl's own logger: an earlier test in this process may have raised its level.
    with caplog.at_level(logging.INFO, logger="absl"):
        totals, _ = timed(None, tf.constant(25, tf.int64))
        timed(None, tf.constant(100, tf.int64))
    assert calls == [25, 100] and totals.numpy().tolist() == [1.0, 2.0]
    lines = [r.getMessage() for r in caplog.records if startup.LOG_PREFIX in r.getMessage()]
    assert len(lines) == 1
    reported = json.loads(lines[0].split(startup.LOG_PREFIX, 1)[1])
    since = reported["since_start_s"]
    assert list(since) == ["main", "first_loop", "first_loop_done"]
    assert since["main"] == first_main <= since["first_loop"] <= since["first_loop_done"]
    assert reported["first_loop_steps"] == 25 and reported["data_source"] == "cache"
    assert reported["process_start"] == round(startup.PROCESS_START, 3)


def test_process_start_precedes_this_test():
    assert 0.0 <= time.time() - startup.PROCESS_START < 24 * 3600


def test_benchmark_splits_the_line_into_parts():
    bench = load_benchmark()
    stderr = ("I1130 noise\nI1130 12:00:00 startup.py:75] startup: " + json.dumps({
        "since_start_s": {"main": 3.0, "experiment": 3.1, "strategy": 3.15, "data": 3.2,
                          "claimed": 3.25, "model": 3.5, "first_loop": 4.0,
                          "first_loop_done": 4.5},
        "process_start": 100.0, "first_loop_steps": 25}) + "\nmore\n")
    line = bench.parse_startup(stderr)
    parts = bench.parts_of(line, launch=99.9)
    assert parts["interpreter_and_imports"] == pytest.approx(3.1)
    assert parts["data_load"] == pytest.approx(0.05)
    assert parts["first_loop"] == pytest.approx(0.5)
    assert parts["to_first_step"] == pytest.approx(4.1)
    assert set(parts) == {p for p, _, _ in bench.PARTS}
    with pytest.raises(ValueError, match="no startup line"):
        bench.parse_startup("I1130 nothing here\n")


@pytest.mark.slow
def test_benchmark_measures_a_launch_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, "benchmarks/startup.py", "--module=tests.mock_main",
         "--flagfile_of_run=flags/lenet_mnist.cfg", "--train_steps=40", "--repeats=1",
         "--warmup=0", "--", "--rewind_steps=0", "--batch_size=20", "--eval_batch_size=50",
         "--train_eval_examples=100", "--eval_every=40"],
        cwd=ROOT, text=True, capture_output=True, env={**os.environ, "MOCK_EXAMPLES": "200"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    (launch,) = result["checkouts"][ROOT]["launches"]
    bench = load_benchmark()
    assert set(launch["parts_s"]) == {p for p, _, _ in bench.PARTS}
    assert launch["first_loop_steps"] == 40 and launch["data_source"] == "tfds"
    assert all(v >= 0 for v in launch["parts_s"].values())
    assert len(result["load_average_before"]) == 3
