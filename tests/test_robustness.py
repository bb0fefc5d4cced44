"""Damage, concurrency and a machine that is not what the flags say, met as a
user meets them: truncated files of real short runs, two launches on one
model_dir, a TPU that is not there. Each ends with one line, a non-zero exit
and nothing lost, or, where the run can go on safely, goes on."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.test_main import ROOT, SMALL, checkpoint_tensors, cli, one_error_line
from tf_lottery import files, lease
from tf_lottery.errors import CorruptFileError
from tf_lottery.pruning import masks as masks_lib

RUN = [*SMALL, "--train_steps=60", "--checkpoint_every=10", "--steps_per_loop=10",
       "--keep_checkpoints=3", "--eval_every=30"]
INSTABILITY = [*SMALL[:4], "--experiment=instability", "--train_steps=20",
               "--rewind_steps=0,10", "--interpolation_points=5", "--steps_per_loop=10",
               "--checkpoint_every=10", "--eval_every=10"]
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def snapshot(root):
    """Every file under ``root``, relative path -> bytes."""
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
            for d, _, fs in os.walk(root) for f in fs}


def truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)
    return path.read_bytes()


def copy_of(run, tmp_path):
    return shutil.copytree(run, tmp_path / "run")


def set_aside_copy(path):
    (found,) = path.parent.glob(path.name + ".*-20*")
    return found


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 60-step run with resume checkpoints at 40, 50 and 60."""
    run = tmp_path_factory.mktemp("finished") / "run"
    out = cli(*RUN, f"--model_dir={run}")
    assert out.returncode == 0, out.stderr[-2000:]
    return run


@pytest.fixture(scope="module")
def analysis_run(tmp_path_factory):
    """A finished instability analysis: a parent, two children at k=0 and k=10."""
    run = tmp_path_factory.mktemp("instability") / "run"
    out = cli(*INSTABILITY, f"--model_dir={run}")
    assert out.returncode == 0, out.stderr[-2000:]
    return run


# -- 1. damaged resume checkpoints -------------------------------------------------

@pytest.mark.slow
def test_damaged_newest_checkpoints_are_set_aside_and_the_run_ends_bit_identical(
        finished, tmp_path):
    run = copy_of(finished, tmp_path)
    # As if killed right after saving its resume checkpoint at step 60 ...
    shutil.rmtree(run / "final")
    for name in ("final.json", "results.json"):
        (run / name).unlink()
    # ... with the two newest damaged by a full disk, and a save's leftover.
    ckpts = run / "checkpoints"
    damaged = {"ckpt-60.index": truncate(ckpts / "ckpt-60.index", 100),
               "ckpt-50.data-00000-of-00001":
                   truncate(ckpts / "ckpt-50.data-00000-of-00001", 1000)}
    (ckpts / "ckpt-70_temp").mkdir()
    (ckpts / "ckpt-70_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")

    out = cli(*RUN, f"--model_dir={run}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"checkpoints/ckpt-60 cannot be read \(not an sstable.*set aside",
                     out.stderr)
    assert re.search(r"checkpoints/ckpt-50 cannot be read .*set aside", out.stderr)
    assert "Resuming" in out.stderr and "from step 40" in out.stderr
    for name, data in damaged.items():  # renamed, not deleted
        assert set_aside_copy(ckpts / name).read_bytes() == data
    assert not (ckpts / "ckpt-70_temp").exists()
    state = (ckpts / "checkpoint").read_text()
    assert re.findall(r'all_model_checkpoint_paths: "(.*)"', state) == [
        "ckpt-40", "ckpt-50", "ckpt-60"]
    a = checkpoint_tensors(str(finished / "final" / "ckpt"))
    b = checkpoint_tensors(str(run / "final" / "ckpt"))
    assert a.keys() == b.keys() and len(a) > 6
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# -- 2. damaged summaries ----------------------------------------------------------------

def without_volatile(results, *roots):
    """``results`` without wall times, paths under any of ``roots`` re-rooted."""
    text = json.dumps({k: v for k, v in results.items() if not k.startswith("wall_time")})
    for root in roots:
        text = text.replace(str(root), "<model_dir>")
    return json.loads(text)


@pytest.mark.slow
def test_damaged_results_json_of_a_finished_run_is_recomputed_without_training(
        finished, tmp_path):
    run = copy_of(finished, tmp_path)
    damaged = truncate(run / "results.json", 100)
    before = snapshot(run)
    out = cli(*RUN, f"--model_dir={run}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"results.json is damaged \(truncated or garbled JSON.*\): set aside as "
                     r".*results.json.corrupt-", out.stderr)
    assert "from step 60" in out.stderr
    assert not re.search(r"step \d+/60", out.stderr), "it trained again"
    assert set_aside_copy(run / "results.json").read_bytes() == damaged
    recomputed = json.loads((run / "results.json").read_text())
    original = json.loads((finished / "results.json").read_text())
    assert without_volatile(recomputed, run) == without_volatile(original, finished)
    after = snapshot(run)
    assert {f: after[f] for f in before if f != "results.json"} == {
        f: before[f] for f in before if f != "results.json"}


@pytest.mark.slow
def test_damaged_piece_summaries_of_an_analysis_are_recomputed_from_checkpoints(
        analysis_run, tmp_path):
    run = copy_of(analysis_run, tmp_path)
    pieces = ["results.json", "k_000000010.json", "replicate_0/k_000000010/pair_0_1.json",
              "replicate_0/k_000000010/child_1/results.json"]
    damaged = {p: truncate(run / p, 40) for p in pieces}
    before = snapshot(run)
    out = cli(*INSTABILITY, f"--model_dir={run}")
    assert out.returncode == 0, out.stderr[-2000:]
    for p in pieces:
        assert f"{run / p} is damaged" in out.stderr
        assert set_aside_copy(run / p).read_bytes() == damaged[p]
    assert not re.search(r"step \d+/20", out.stderr), "a run was trained again"
    recomputed = json.loads((run / "results.json").read_text())
    original = json.loads((analysis_run / "results.json").read_text())
    for r in (recomputed, original):
        for rec in r["rewind_steps"]:
            for rep in rec["replicates"]:
                for pair in rep["pairs"]:
                    pair.pop("wall_time_s")
    # (What was not recomputed still names the copied run's original directory.)
    assert (without_volatile(recomputed, run, analysis_run)
            == without_volatile(original, analysis_run))
    # Only the damaged files and the redrawn curves of the damaged pair changed.
    redrawn = os.path.join("replicate_0", "k_000000010", "pair_0_1") + os.sep
    after = snapshot(run)
    assert [f for f in before if f not in damaged and not f.startswith(redrawn)
            and after.get(f) != before[f]] == []


@pytest.mark.slow
def test_the_report_names_damaged_summaries_and_changes_nothing(analysis_run, tmp_path):
    run = copy_of(analysis_run, tmp_path)
    truncate(run / "results.json", 40)
    truncate(run / "replicate_0" / "k_000000010" / "pair_0_1.json", 40)
    truncate(run / "k_000000010.json", 0)
    before = snapshot(run)
    out = subprocess.run([sys.executable, "-m", "tf_lottery.report", f"--model_dir={run}",
                          f"--out={tmp_path / 'report'}"], cwd=ROOT, text=True,
                         capture_output=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    missing = [line for line in out.stdout.splitlines() if "is damaged" in line]
    assert len(missing) == 3, out.stdout
    assert any("k_000000010.json is damaged (empty file)" in m for m in missing)
    assert any("pair_0_1.json is damaged (truncated or garbled JSON" in m for m in missing)
    assert all("relaunch the experiment's command" in m for m in missing)
    assert snapshot(run) == before


# -- 3. a damaged config.json --------------------------------------------------------------

@pytest.mark.slow
def test_damaged_config_json_is_one_line_and_changes_nothing(finished, tmp_path):
    run = copy_of(finished, tmp_path)
    truncate(run / "config.json", 50)
    before = snapshot(run)
    line = one_error_line(cli(*RUN, f"--model_dir={run}"))
    assert f"{run / 'config.json'} is damaged (truncated or garbled JSON" in line
    assert "restore it from a copy" in line
    assert snapshot(run) == before  # no lease.json left behind either
    report = subprocess.run([sys.executable, "-m", "tf_lottery.report", f"--model_dir={run}",
                             f"--out={tmp_path / 'report'}"], cwd=ROOT, text=True,
                            capture_output=True)
    assert report.returncode == 2 and "Traceback" not in report.stderr
    assert "config.json is damaged" in report.stderr


def test_damaged_mask_file_is_named(tmp_path):
    path = str(tmp_path / "mask.npz")
    masks_lib.save(path, {"dense/kernel": np.ones((3, 4))})
    truncate(tmp_path / "mask.npz", 30)
    with pytest.raises(CorruptFileError, match=r"mask.npz is damaged \(not a readable .npz"):
        masks_lib.load(path)


def test_read_json_names_the_file_and_read_summary_sets_it_aside(tmp_path):
    path = tmp_path / "pair_0_1.json"
    path.write_text('{"status": "compl')
    with pytest.raises(CorruptFileError, match="pair_0_1.json is damaged"):
        files.read_json(str(path))
    assert files.read_summary(str(path)) is None
    assert not path.exists()
    assert set_aside_copy(path).read_text() == '{"status": "compl'


# -- 4. one writer per model_dir -------------------------------------------------------------

@pytest.mark.slow
def test_a_second_launch_on_a_busy_model_dir_is_refused_and_changes_nothing(tmp_path):
    run = tmp_path / "run"
    long_run = [*SMALL, "--train_steps=100000", "--checkpoint_every=20", "--steps_per_loop=10"]
    first = subprocess.Popen([sys.executable, "-m", "tests.mock_main", *long_run,
                              f"--model_dir={run}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints" / "checkpoint").exists() and time.time() < deadline:
            assert first.poll() is None, "the first launch stopped"
            time.sleep(0.1)
        first.send_signal(signal.SIGSTOP)  # hold its files still while the second tries
        before = snapshot(run)
        line = one_error_line(cli(*long_run, f"--model_dir={run}"))
        assert f"--model_dir={run} is in use by pid {first.pid} on host " in line
        assert "--force_unlock" in line
        assert snapshot(run) == before
    finally:
        first.kill()
        first.wait()


@pytest.mark.slow
def test_two_launches_at_once_one_runs_and_the_other_is_refused(tmp_path):
    run = tmp_path / "run"
    # Long enough that the slower launch reaches the lease before the other ends.
    args = [*SMALL, "--train_steps=600", "--checkpoint_every=100", "--steps_per_loop=20"]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.mock_main", *args,
                               f"--model_dir={run}"], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], [o[1][-2000:] for o in outs]
    winner = procs[codes.index(0)]
    (line,) = [ln for ln in outs[codes.index(2)][1].splitlines()
               if ln.startswith("tf_lottery: error")]
    assert f"is in use by pid {winner.pid}" in line
    assert not (run / "lease.json").exists()
    assert json.loads((run / "results.json").read_text())["status"] == "complete"
    assert "already complete" in cli(*args, f"--model_dir={run}").stdout


@pytest.mark.slow
def test_force_unlock_takes_over_the_lease_of_a_machine_that_is_gone(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = {"host": "tpu-vm-preempted", "pid": 4242, "started": time.time() - 60,
              "token": "0" * 32}
    (run / "lease.json").write_text(json.dumps(holder))
    short = [*SMALL, "--train_steps=10", "--rewind_steps=0"]
    line = one_error_line(cli(*short, f"--model_dir={run}"))
    assert "is in use by pid 4242 on host tpu-vm-preempted" in line
    assert os.listdir(run) == ["lease.json"]
    out = cli(*short, "--force_unlock", f"--model_dir={run}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Taking over the lease" in out.stderr and "--force_unlock" in out.stderr
    assert not (run / "lease.json").exists()
    assert json.loads((run / "results.json").read_text())["status"] == "complete"


def test_leases_are_per_directory_so_sibling_run_dirs_lock_independently(tmp_path):
    with lease.Lease(str(tmp_path / "k_0" / "child_0")) as a, \
            lease.Lease(str(tmp_path / "k_0" / "child_1")):
        with pytest.raises(lease.LeaseHeldError, match=f"pid {os.getpid()}"):
            lease.Lease(str(tmp_path / "k_0" / "child_0")).acquire()
        assert json.loads((tmp_path / "k_0" / "child_0" / "lease.json").read_text())[
            "token"] == a.token
    assert not (tmp_path / "k_0" / "child_0" / "lease.json").exists()


def test_stale_leases_are_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    same_host_dead = {"host": socket.gethostname(), "pid": gone.pid, "started": 0,
                      "token": "a" * 32}
    other_host_silent = {"host": "elsewhere", "pid": 1, "started": 0, "token": "b" * 32}
    for holder, age in ((same_host_dead, 0), (other_host_silent, lease.STALE_AFTER_S + 5)):
        path = tmp_path / "lease.json"
        path.write_text(json.dumps(holder))
        os.utime(path, (time.time() - age, time.time() - age))
        with lease.Lease(str(tmp_path)) as held:
            assert json.loads(path.read_text())["token"] == held.token
        assert not path.exists()


@pytest.mark.parametrize("exclusive_create", [True, False])
def test_a_holder_notices_when_its_lease_is_taken_over(tmp_path, exclusive_create):
    lost = threading.Event()
    first = lease.Lease(str(tmp_path), heartbeat_s=0.05, settle_s=0.05,
                        on_lost=lost.set, exclusive_create=exclusive_create).acquire()
    with pytest.raises(lease.LeaseHeldError):
        lease.Lease(str(tmp_path), settle_s=0.05, exclusive_create=exclusive_create).acquire()
    second = lease.Lease(str(tmp_path), force=True, settle_s=0.05,
                         exclusive_create=exclusive_create).acquire()
    assert lost.wait(5) and first.lost
    first.release()  # must not remove the new holder's lease
    assert json.loads((tmp_path / "lease.json").read_text())["token"] == second.token
    second.release()
    assert os.listdir(tmp_path) == []


# -- 5. the environment is checked before anything is written ------------------------------

@pytest.mark.slow
def test_tpu_strategy_without_a_tpu_is_one_line_and_writes_nothing(tmp_path):
    line = one_error_line(cli("--strategy=tpu", "--tpu=local", "--train_steps=5",
                              f"--model_dir={tmp_path / 'run'}"))
    assert "--strategy=tpu --tpu=local: no TPU could be reached" in line
    assert not (tmp_path / "run").exists()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_errors_are_one_line_and_write_nothing(tmp_path):
    line = one_error_line(cli("--strategy=multi_worker_mirrored", "--train_steps=5",
                              f"--model_dir={tmp_path / 'run'}",
                              env={"TF_CONFIG": '{"cluster": {"worker": ['}))
    assert "TF_CONFIG environment variable is not a JSON cluster spec" in line
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    tf_config = json.dumps({"cluster": {"worker": workers},
                            "task": {"type": "worker", "index": 0}})
    out = cli("--strategy=multi_worker_mirrored", "--train_steps=5",
              f"--model_dir={tmp_path / 'run'}",
              env={"TF_CONFIG": tf_config, "MOCK_WORKER_WAIT_S": "3"}, timeout=120)
    # TensorFlow waits for the missing worker holding the GIL: a watchdog
    # process says why and ends the launch with SIGKILL.
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("tf_lottery: error")]
    assert f"the workers of TF_CONFIG ({', '.join(workers)}) did not all join within 3 s" in line
    assert not (tmp_path / "run").exists()


# -- 6. a damaged file in --tfds_manual_dir ------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST),
                    reason="needs Debian's dataset-fashion-mnist")
def test_damaged_manual_file_is_named_not_an_intact_one(tmp_path):
    manual = shutil.copytree(FASHION_MNIST, tmp_path / "manual")
    truncate(manual / "train-images-idx3-ubyte.gz", 1_000_000)
    before = snapshot(manual)
    line = one_error_line(cli("--dataset=fashion_mnist", "--train_steps=5",
                              f"--data_dir={tmp_path / 'data'}",
                              f"--tfds_manual_dir={manual}",
                              f"--model_dir={tmp_path / 'run'}", mock=False))
    assert "train-images-idx3-ubyte.gz is damaged (1000000 bytes; an intact copy has" in line
    assert "t10k" not in line and "replace it with an intact copy" in line
    assert snapshot(manual) == before
    assert not (tmp_path / "run").exists()


# -- 7. minor --------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_stray_positional_argument_is_one_line_without_usage(tmp_path):
    out = cli("--train_steps=5", "oops", f"--model_dir={tmp_path / 'run'}")
    line = one_error_line(out)
    assert "unexpected argument(s) 'oops'" in line
    assert "USAGE" not in out.stderr and "Try --helpfull" not in out.stderr
    assert not (tmp_path / "run").exists()
