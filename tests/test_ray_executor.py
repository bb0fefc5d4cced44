"""The Ray executor: resources, dispatch order, faults, loopback-only local Ray.

The scheduling and fault tests run the real executor on a local Ray instance
with ``tests.fake_worker.FakeWorker`` in the worker processes (no
TensorFlow there: seconds, not minutes); tests/test_ray_e2e.py runs real
LeNet tasks.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from tests import fake_worker
from tests.fake_worker import fake_config
from tf_lottery.tasks import ray_executor
from tf_lottery.tasks.dispatch import Dispatcher
from tf_lottery.tasks.graph import Graph, Task

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAKE = "tests.fake_worker:FakeWorker"


_graph = fake_worker.diamond


# -- pure parts ------------------------------------------------------------------


def test_task_resources_defaults_and_refuses_nonpositive():
    assert ray_executor.task_resources(None) == {"CPU": 1.0}
    assert ray_executor.task_resources({"GPU": 0.5}) == {"GPU": 0.5}
    for bad in (0, -1, float("nan"), "2"):
        with pytest.raises(ray_executor.RayExecutorError, match="--task_resources: GPU"):
            ray_executor.task_resources({"GPU": bad})


def test_actor_options_and_how_many_workers_fit():
    assert ray_executor.actor_options({"GPU": 1, "CPU": 4}) == {"num_cpus": 4, "num_gpus": 1}
    assert ray_executor.actor_options({"TPU": 4}) == {"num_cpus": 0.0,
                                                      "resources": {"TPU": 4}}
    cluster = {"CPU": 16.0, "GPU": 8.0, "memory": 1e11}
    assert ray_executor.workers_that_fit(cluster, {"GPU": 1}) == 8
    assert ray_executor.workers_that_fit(cluster, {"GPU": 0.5}) == 16  # two runs per GPU
    assert ray_executor.workers_that_fit(cluster, {"GPU": 1, "CPU": 4}) == 4
    assert ray_executor.workers_that_fit(cluster, {"TPU": 4}) == 0
    assert ray_executor.workers_that_fit({"GPU": 0.3 * 10}, {"GPU": 0.3}) == 10  # float sums


def test_dispatcher_starts_the_longest_chain_first_and_defers():
    d = Dispatcher(_graph())
    # 'short' is ready too, but the parent heads the longest chain.
    assert d.next(0.0) == "parent"
    d.start("parent")
    assert d.next(0.0) == "short"
    d.start("short")
    assert d.next(0.0) is None
    d.complete("parent")
    # Children by bottom level: k1's (90 + 5 + 1) before k2's (50 + 1).
    assert d.next(0.0) in ("k1/child_0", "k1/child_1")
    d.start("k1/child_0")
    d.start("k1/child_1")
    assert d.next(0.0) == "k2/child_0"
    d.defer("k2/child_0", until=10.0)
    assert d.next(5.0) is None and d.wake_time() == 10.0
    assert d.next(10.0) == "k2/child_0"
    assert d.pending() == [t for t in _graph().ids() if t != "parent"]
    assert not d.finished()
    # A relaunch: what is done is never offered again.
    again = Dispatcher(_graph(), done={"parent", "short", "k1/child_0", "gone"})
    assert again.done == {"parent", "short", "k1/child_0"}
    assert again.next(0.0) == "k1/child_1"


def test_task_runner_reports_outcomes_instead_of_raising(tmp_path):
    graph = _graph()
    fake_worker.write_spec(str(tmp_path), graph, steps=1, step_s=0.0, fail="short")
    config = fake_config(str(tmp_path))
    runner = ray_executor.TaskRunner(config.to_json(), FAKE)
    missing = runner.run("k1/child_0")
    assert missing["status"] == "error"
    assert missing["message"] == "ConfigError: task k1/child_0 needs parent done first"
    assert runner.run("parent")["status"] == "done"
    broke = runner.run("short")
    assert broke["status"] == "error"
    assert broke["message"] == "RuntimeError: short broke on purpose"  # first line only
    assert runner.done_ids() == ["parent"]


# -- on a local Ray instance ---------------------------------------------------


class RayWatch:
    """Samples the Ray processes under this test: their PIDs and listening sockets."""

    def __init__(self, root_pid: int | None = None):
        self.root = psutil.Process(root_pid or os.getpid())
        self.pids: set[int] = set()
        self.listening: set[tuple[int, str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _watch(self):
        while not self._stop.wait(0.2):
            try:
                children = {p.pid for p in self.root.children(recursive=True)}
            except psutil.NoSuchProcess:
                return
            self.pids |= children
            for c in psutil.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN and c.pid in children:
                    self.listening.add((c.pid, c.laddr.ip, c.laddr.port))

    def alive(self) -> list[int]:
        out = []
        for pid in self.pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.NoSuchProcess:
                pass
        return out

    def stop_leftovers(self) -> None:
        """Ends, by PID, what a SIGKILLed driver left behind."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.alive():
                os.kill(pid, sig)
            time.sleep(1.0)


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _values(model_dir) -> dict[str, int]:
    return {tid: fake_worker._read(os.path.join(model_dir, tid, "done.json"))["value"]
            for tid in _graph().ids()}


def _inline_values(tmp_path_factory, steps: int) -> dict[str, int]:
    """The results of the graph run in order in this process."""
    model_dir = str(tmp_path_factory.mktemp("inline"))
    fake_worker.write_spec(model_dir, _graph(), steps=steps, step_s=0.0)
    worker = fake_worker.FakeWorker(fake_config(model_dir))
    for task in _graph():
        worker.run(task.id)
    return _values(model_dir)


def _attempts(model_dir, task_id) -> list[dict]:
    path = pathlib.Path(model_dir, task_id, "attempts.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_runs_the_graph_on_two_workers_in_dependency_order_on_loopback_only(
        tmp_path, tmp_path_factory):
    model_dir = str(tmp_path)
    fake_worker.write_spec(model_dir, _graph(), steps=1, step_s=0.2)
    config = fake_config(model_dir)
    with RayWatch() as watch:
        ray_executor.execute(config, resources={"CPU": 1}, workers=2, planner=_graph,
                             worker=FAKE, num_cpus=2)
    assert watch.listening, "saw no Ray server: the check below would prove nothing"
    assert all(_loopback(ip) for _, ip, _ in watch.listening), watch.listening
    assert watch.alive() == [], "Ray processes outlived run()"
    assert _values(model_dir) == _inline_values(tmp_path_factory, steps=1)
    # Each task ran once, after its dependencies finished, on two processes.
    completions = pathlib.Path(model_dir, fake_worker.COMPLETIONS).read_text().split()
    assert sorted(completions) == sorted(_graph().ids())
    pids = set()
    for task in _graph():
        (attempt,) = _attempts(model_dir, task.id)
        pids.add(attempt["pid"])
        for dep in task.deps:
            assert attempt["time"] >= fake_worker._read(
                os.path.join(model_dir, dep, "done.json"))["time"]
    assert len(pids) == 2
    # Relaunched when all is done: nothing runs again.
    ray_executor.execute(config, workers=2, planner=_graph, worker=FAKE, num_cpus=2)
    assert len(pathlib.Path(model_dir, fake_worker.COMPLETIONS).read_text().split()) == 7


@pytest.mark.slow
def test_a_worker_killed_mid_task_is_replaced_and_the_task_resumes(tmp_path,
                                                                  tmp_path_factory):
    model_dir = str(tmp_path)
    fake_worker.write_spec(model_dir, _graph(), steps=10, step_s=0.15)
    config = fake_config(model_dir)
    killed = {}
    # The killer watches until the executor returns, not for a fixed time:
    # starting Ray on a loaded 2-core machine can take longer than any
    # deadline that was chosen for the parent's 1.5 s of steps (a CI run
    # beside other jobs lost its 60 s to the cluster's start).
    finished = threading.Event()

    def kill_parent_mid_run():
        checkpoint = pathlib.Path(model_dir, "parent", "checkpoint.json")
        while not finished.is_set():
            state = fake_worker._read(str(checkpoint)) if checkpoint.exists() else None
            if state and state["step"] >= 3:
                killed["pid"] = _attempts(model_dir, "parent")[0]["pid"]
                os.kill(killed["pid"], signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_parent_mid_run, daemon=True)
    killer.start()
    try:
        ray_executor.execute(config, workers=2, planner=_graph, worker=FAKE, num_cpus=2)
    finally:
        finished.set()
    killer.join()
    assert killed, "the parent finished before it could be killed"
    first, second = _attempts(model_dir, "parent")
    assert first["pid"] == killed["pid"] != second["pid"]
    assert first["from_step"] == 0 and second["from_step"] >= 3  # its own checkpoint
    assert _values(model_dir) == _inline_values(tmp_path_factory, steps=10)


@pytest.mark.slow
def test_a_killed_driver_relaunched_finishes_without_recomputing(tmp_path, tmp_path_factory):
    model_dir = str(tmp_path)
    fake_worker.write_spec(model_dir, _graph(), steps=10, step_s=0.1)
    command = [sys.executable, "-m", "tests.fake_ray_driver", model_dir]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        with RayWatch(driver.pid) as watch:
            child = pathlib.Path(model_dir, "k1/child_0", "checkpoint.json")
            deadline = time.time() + 300  # generous: a loaded CI machine starts Ray slowly
            while not (child.exists() and fake_worker._read(str(child))["step"] >= 2):
                assert driver.poll() is None, "the driver ended early"
                assert time.time() < deadline, "k1/child_0 never got to step 2"
                time.sleep(0.02)
            driver.send_signal(signal.SIGKILL)
            driver.wait()
            time.sleep(1.0)
        watch.stop_leftovers()
        assert watch.alive() == []
        before = pathlib.Path(model_dir, fake_worker.COMPLETIONS).read_text().split()
        assert "parent" in before and "results" not in before
        relaunch = subprocess.run(command, cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=120)
        assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    after = pathlib.Path(model_dir, fake_worker.COMPLETIONS).read_text().split()
    assert sorted(after) == sorted(_graph().ids())  # each once: nothing recomputed
    # The child killed at step >= 2 resumed from there (unless its process
    # outlived the driver long enough to finish it).
    assert (_attempts(model_dir, "k1/child_0")[-1]["from_step"] >= 2
            or "k1/child_0" in before)
    assert _values(model_dir) == _inline_values(tmp_path_factory, steps=10)


@pytest.mark.slow
def test_a_graph_that_grows_is_planned_again_until_it_stops_growing(tmp_path):
    """As tasks.inline: a search's next probe, planned once what it depends on is
    measured, runs on the same workers, which get the new plan from the driver."""
    model_dir = str(tmp_path)
    fake_worker.write_spec(model_dir, _graph(), steps=1, step_s=0.0)
    probe = Task("k3/child_0", "child", ("results",), 10)
    plans = []

    def growing() -> Graph:
        done = os.path.exists(os.path.join(model_dir, "results", "done.json"))
        plans.append(done)
        return Graph([*_graph(), probe]) if done else _graph()

    ray_executor.execute(fake_config(model_dir), workers=2, planner=growing, worker=FAKE,
                         num_cpus=2)
    assert plans == [False, True, True]  # planned, grown once, then the same
    completions = pathlib.Path(model_dir, fake_worker.COMPLETIONS).read_text().split()
    assert sorted(completions) == sorted([*_graph().ids(), probe.id])
    assert completions[-1] == probe.id


@pytest.mark.slow
def test_a_task_leased_by_another_launch_is_offered_again_later(tmp_path, tmp_path_factory,
                                                                caplog):
    """Another launch holds k2/child_0's lease: the task is put back, the rest
    goes on, and once the lease is gone it runs, once, to the same result."""
    model_dir = str(tmp_path)
    fake_worker.write_spec(model_dir, _graph(), steps=1, step_s=0.0, busy="k2/child_0")
    held = pathlib.Path(model_dir, "k2/child_0", fake_worker.HELD)
    held.parent.mkdir(parents=True)
    held.touch()
    busy_log = pathlib.Path(model_dir, fake_worker.BUSY_LOG)

    def release_after_two_refusals():
        deadline = time.time() + 120
        while time.time() < deadline:
            if busy_log.exists() and len(busy_log.read_text().splitlines()) >= 2:
                held.unlink()
                return
            time.sleep(0.02)

    releaser = threading.Thread(target=release_after_two_refusals, daemon=True)
    releaser.start()
    with caplog.at_level(logging.WARNING, logger="absl"):
        ray_executor.execute(fake_config(model_dir), workers=2, planner=_graph, worker=FAKE,
                             num_cpus=2, lease_retry_s=0.5)
    releaser.join()
    refusals = busy_log.read_text().splitlines()
    assert len(refusals) >= 2 and not held.exists()
    warnings = [r.getMessage() for r in caplog.records
                if "leased by another launch" in r.getMessage()]
    assert len(warnings) == len(refusals)
    assert warnings[0].startswith("Ray: k2/child_0 is leased by another launch; "
                                  "offered again in 0 s. task k2/child_0 is leased by pid 1")
    # Refused before it started: one attempt, after the refusals.
    (attempt,) = _attempts(model_dir, "k2/child_0")
    assert attempt["time"] > float(refusals[-1].split()[-1])
    completions = pathlib.Path(model_dir, fake_worker.COMPLETIONS).read_text().split()
    assert sorted(completions) == sorted(_graph().ids())
    assert _values(model_dir) == _inline_values(tmp_path_factory, steps=1)


@pytest.mark.slow
def test_a_failing_task_stops_the_run_with_one_line(tmp_path):
    model_dir = str(tmp_path)
    fake_worker.write_spec(model_dir, _graph(), steps=1, step_s=0.0, fail="k2/child_0")
    config = fake_config(model_dir)
    with pytest.raises(ray_executor.RayExecutorError) as e:
        ray_executor.execute(config, workers=2, planner=_graph, worker=FAKE, num_cpus=2)
    message = str(e.value)
    assert message.startswith("task k2/child_0 failed on ") and "\n" not in message
    assert message.endswith("RuntimeError: k2/child_0 broke on purpose")


@pytest.mark.slow
def test_resources_the_local_cluster_lacks_are_refused_with_one_line(tmp_path):
    fake_worker.write_spec(str(tmp_path), _graph())
    config = fake_config(str(tmp_path))
    with pytest.raises(ray_executor.RayExecutorError,
                       match=r"^--task_resources=GPU:1: no worker fits in this Ray cluster, "
                             r"which has CPU:2"):
        ray_executor.execute(config, resources={"GPU": 1}, planner=_graph, worker=FAKE,
                             num_cpus=2)
