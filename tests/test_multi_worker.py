"""--strategy=multi_worker_mirrored writes from the chief alone.

Two worker processes on 127.0.0.1 (TF_CONFIG, CPU) train one LeNet run: it
matches one process with the same replicas bit for bit, every file of
--model_dir exists once, the other worker's scratch directory is outside
--model_dir and gone when it ends, and a worker killed mid-run is resumed
from the chief's checkpoints by relaunching both. Workers are stopped by
their own PIDs, each wait bounded, so a hung collective cannot hang CI.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from tests.test_main import ROOT, SMALL, checkpoint_tensors, cli
from tf_lottery import chief, files
from tf_lottery.core import layout
from tf_lottery.errors import ConfigError
from tf_lottery.training import checkpoints

RUN = [*SMALL, "--train_steps=60", "--checkpoint_every=10", "--steps_per_loop=10",
       "--eval_every=30", "--keep_checkpoints=2"]
TIMEOUT_S = 300


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_workers(model_dir, tmp, logs):
    """Starts workers 0 (the chief) and 1 of a fresh 127.0.0.1 cluster.

    TMPDIR puts each worker's scratch directory under ``tmp``, to be checked.
    """
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": addresses},
                                "task": {"type": "worker", "index": index}})
        log = open(logs / f"worker{index}-{time.monotonic_ns()}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.mock_main", *RUN,
             "--strategy=multi_worker_mirrored", f"--model_dir={model_dir}"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CONFIG": tf_config, "TMPDIR": str(tmp)}))
        procs[-1].log = log
    return procs


def stop(procs):
    """SIGKILLs each worker still running, by its own PID."""
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.log.close()


def wait_all(procs, timeout_s=TIMEOUT_S):
    """Exit statuses of ``procs``; past ``timeout_s`` they are killed and the
    test fails (a collective waiting for a dead peer never returns)."""
    deadline = time.monotonic() + timeout_s
    try:
        for proc in procs:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        pytest.fail(f"workers still running after {timeout_s} s: {log_tails(procs)}")
    finally:
        stop(procs)
    return [proc.returncode for proc in procs]


def log_tails(procs):
    return "\n".join(open(p.log.name).read()[-2000:] for p in procs)


def tree(root):
    """Relative paths of the files under ``root``; events files (one per
    launch, named by its process) counted as one."""
    out = set()
    for d, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(d, name), root)
            out.add(os.path.join(os.path.dirname(rel), "events.out.tfevents")
                    if name.startswith("events.out.tfevents") else rel)
    return sorted(out)


def event_writers(root):
    """PIDs of the processes that wrote the events files under ``root``
    (``events.out.tfevents.<time>.<host>.<pid>.<n>.v2``)."""
    return {int(p.name.split(".")[-3]) for p in root.rglob("events.out.tfevents.*")}


def scratch_left(scratch_parent, run):
    """Scratch directories of ``run``'s workers left under ``scratch_parent``
    (TFDS's mock data keeps its own temporary folders there too)."""
    names = {os.path.basename(chief.scratch_dir(str(run), "worker", i)) for i in range(2)}
    return [p.name for p in scratch_parent.iterdir() if p.name in names]


def records_equal(a, b):
    """results.json of two runs, the wall time aside."""
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    for r in (ra, rb):
        r.pop("wall_time_s_last_session")
    return ra == rb


def assert_same_tensors(a, b):
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert ta.keys() == tb.keys()
    for name in ta:
        assert np.array_equal(ta[name], tb[name]), name


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """An uninterrupted two-worker run: (model_dir, scratch parent)."""
    base = tmp_path_factory.mktemp("two_workers")
    (base / "tmp").mkdir()
    procs = launch_workers(base / "run", base / "tmp", base)
    codes = wait_all(procs)
    assert codes == [0, 0], log_tails(procs)
    scratch = os.path.join(base / "tmp", os.path.basename(
        chief.scratch_dir(str(base / "run"), "worker", 1)))
    assert f"is not the chief: it writes {scratch}" in open(procs[1].log.name).read()
    assert "is not the chief" not in open(procs[0].log.name).read()
    assert event_writers(base / "run") == {procs[0].pid}
    return base / "run", base / "tmp"


@pytest.mark.slow
def test_two_workers_match_one_process_and_write_each_file_once(two_workers, tmp_path):
    run, scratch_parent = two_workers
    # One process with the same two replicas (2 logical CPUs), same global batch.
    mirrored = tmp_path / "mirrored"
    out = cli(*RUN, "--strategy=mirrored", "--cpu_devices=2", f"--model_dir={mirrored}",
              timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-2000:]
    # Bit-identical: weights and optimizer state at T and at every W_k.
    assert_same_tensors(layout.final_checkpoint(str(run)),
                        layout.final_checkpoint(str(mirrored)))
    for k in (0, 30):
        assert_same_tensors(layout.rewind_checkpoint(str(run), k),
                            layout.rewind_checkpoint(str(mirrored), k))
    assert records_equal(run, mirrored)
    # Each file once: the same files as one process, one events file, no
    # lease left, and the non-chief's scratch gone (it was outside run).
    assert tree(run) == tree(mirrored)
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # the chief's (fixture)
    assert not (run / layout.LEASE_FILE).exists()
    assert scratch_left(scratch_parent, run) == []


@pytest.mark.slow
def test_two_workers_match_one_replica_to_float_rounding(two_workers, tmp_path):
    run, _ = two_workers
    single = tmp_path / "single"
    out = cli(*RUN, f"--model_dir={single}", timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-2000:]
    ta = checkpoint_tensors(layout.final_checkpoint(str(run)))
    tb = checkpoint_tensors(layout.final_checkpoint(str(single)))
    # One replica sums the global batch's gradients in another order than
    # the all-reduce of two halves: equal to float rounding (7e-7 measured).
    for name in ta:
        np.testing.assert_allclose(ta[name], tb[name], rtol=0, atol=1e-5, err_msg=name)


@pytest.mark.slow
def test_killed_worker_then_relaunch_of_both_resumes_to_the_same_weights(
        two_workers, tmp_path):
    uninterrupted, _ = two_workers
    run, scratch_parent = tmp_path / "run", tmp_path / "tmp"
    scratch_parent.mkdir()
    procs = launch_workers(run, scratch_parent, tmp_path)
    chief_pids = {procs[0].pid}
    state = run / layout.RESUME_DIR / layout.RESUME_STATE_FILE
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline and all(p.poll() is None for p in procs):
            if state.exists() and f"{layout.CHECKPOINT_NAME}-20" in state.read_text():
                break
            time.sleep(0.01)
        assert all(p.poll() is None for p in procs), log_tails(procs)
        # Worker 1 dies; the chief, stuck in a collective, is stopped too.
        os.kill(procs[1].pid, signal.SIGKILL)
    finally:
        stop(procs)
    assert procs[1].returncode == -signal.SIGKILL
    assert not (run / "results.json").exists()
    # Relaunching both resumes from the chief's last checkpoint.
    procs = launch_workers(run, scratch_parent, tmp_path)
    chief_pids.add(procs[0].pid)
    assert wait_all(procs) == [0, 0], log_tails(procs)
    logs = [open(p.log.name).read() for p in procs]
    assert all("Resuming" in log for log in logs), log_tails(procs)
    assert_same_tensors(layout.final_checkpoint(str(run)),
                        layout.final_checkpoint(str(uninterrupted)))
    assert records_equal(run, uninterrupted)
    assert tree(run) == tree(uninterrupted)
    assert event_writers(run) <= chief_pids  # one events file per launch of the chief
    assert scratch_left(scratch_parent, run) == []


# -- the path overlay of a non-chief worker, in process ----------------------------------

def non_chief(task_id=1):
    resolver = SimpleNamespace(task_type="worker", task_id=task_id)
    return SimpleNamespace(extended=SimpleNamespace(should_checkpoint=False),
                           cluster_resolver=resolver)


def test_a_non_chief_writes_its_scratch_and_reads_its_own_writes_first(tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    model_dir = str(tmp_path / "run")
    os.makedirs(model_dir)
    files.write_json_atomic(os.path.join(model_dir, "chief.json"), {"by": "chief"})
    files.write_json_atomic(os.path.join(model_dir, "both.json"), {"by": "chief"})
    before = sorted(os.listdir(model_dir))
    with chief.writing_as(non_chief(), model_dir):
        scratch = chief.scratch_dir(model_dir, "worker", 1)
        assert not chief.is_chief()
        assert not scratch.startswith(model_dir)
        files.ensure_writable_dir(model_dir)
        files.write_json_atomic(os.path.join(model_dir, "both.json"), {"by": "worker"})
        files.write_json_atomic(os.path.join(model_dir, "a", "b.json"), {"by": "worker"})
        chief.makedirs(os.path.join(model_dir, "c"))
        # Own writes first, the chief's files otherwise.
        assert files.read_json(os.path.join(model_dir, "both.json")) == {"by": "worker"}
        assert files.read_json(os.path.join(model_dir, "chief.json")) == {"by": "chief"}
        assert chief.glob(os.path.join(model_dir, "*.json")) == [
            os.path.join(model_dir, "both.json"), os.path.join(model_dir, "chief.json")]
        assert chief.exists(os.path.join(model_dir, "a", "b.json"))
        # The chief's file is the chief's to set aside; events are not written.
        assert files.set_aside(os.path.join(model_dir, "chief.json")) == os.path.join(
            model_dir, "chief.json")
        assert isinstance(chief.summary_writer(model_dir),
                          type(tf.summary.create_noop_writer()))
        files.remove_tree(os.path.join(model_dir, "c"))
        assert not os.path.exists(os.path.join(scratch, "c"))
        assert os.path.isfile(os.path.join(scratch, "a", "b.json"))
        # Paths outside --model_dir are not remapped.
        assert chief.write_path(str(tmp_path / "elsewhere")) == str(tmp_path / "elsewhere")
    assert chief.is_chief() and not os.path.exists(scratch)
    assert sorted(os.listdir(model_dir)) == before
    assert files.read_json(os.path.join(model_dir, "both.json")) == {"by": "chief"}


def test_a_non_chief_saves_checkpoints_in_scratch_and_restores_the_chiefs(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    model_dir = str(tmp_path / "run")
    v = tf.Variable(1.0)
    checkpoint = tf.train.Checkpoint(v=v, step=tf.Variable(0, dtype=tf.int64))
    checkpoints.save_rewind(checkpoint, model_dir, 0)  # the chief's W_0
    manager, _ = checkpoints.resume(checkpoint, model_dir, 2)
    manager.save(checkpoint_number=10)  # the chief's resume checkpoint
    before = sorted(tree(model_dir))
    v.assign(5.0)
    with chief.writing_as(non_chief(), model_dir):
        manager, restored = checkpoints.resume(checkpoint, model_dir, 2)
        assert restored == os.path.join(layout.resume_dir(model_dir),
                                        f"{layout.CHECKPOINT_NAME}-10")
        assert float(v.numpy()) == 1.0  # from the chief's checkpoint
        v.assign(2.0)
        manager.save(checkpoint_number=20)
        checkpoints.save_rewind(checkpoint, model_dir, 0)  # committed: no-op
        checkpoints.save_rewind(checkpoint, model_dir, 20)
        assert checkpoints.rewind_steps_saved(model_dir) == [0, 20]
        v.assign(7.0)
        checkpoints.restore(checkpoint, checkpoints.rewind_prefix(model_dir, 20))
        assert float(v.numpy()) == 2.0  # its own W_20, in scratch
    assert sorted(tree(model_dir)) == before
    assert checkpoints.rewind_steps_saved(model_dir) == [0]


def test_the_chief_and_a_single_process_write_model_dir_itself(tmp_path):
    chief_strategy = SimpleNamespace(extended=SimpleNamespace(should_checkpoint=True))
    path = str(tmp_path / "run" / "x.json")
    with chief.writing_as(chief_strategy, str(tmp_path / "run")):
        assert chief.is_chief() and chief.write_path(path) == path
        chief.makedirs(os.path.dirname(path))
        files.write_json_atomic(path, {"a": 1})
    assert json.loads(open(path).read()) == {"a": 1}


def test_a_worker_that_cannot_see_the_chiefs_model_dir_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(chief, "barrier", lambda strategy: None)
    model_dir = str(tmp_path / "run")
    with chief.writing_as(non_chief(), model_dir), \
            pytest.raises(ConfigError, match="worker worker:1 does not see the chief's "
                          "config.json there; every worker must read the same"):
        chief.check_shared(non_chief(), layout.config_file(model_dir))
