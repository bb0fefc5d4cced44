"""The CLI end to end: a run, its resume after SIGKILL, and its error lines."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import launch_and_kill_after_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--dataset=mnist", "--batch_size=20", "--eval_batch_size=50",
         "--train_eval_examples=100", "--rewind_steps=0,30"]


def cli(*args, mock=True, env=None, **kw):
    module = "tests.mock_main" if mock else "tf_lottery.main"
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, **kw)


def checkpoint_tensors(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name)
            for name in reader.get_variable_to_shape_map()
            if name.startswith("model/") or name.startswith("optimizer/")}


def test_end_to_end_run_writes_results_events_and_rewind_points(tmp_path):
    out = cli(*SMALL, "--train_steps=60", "--eval_every=30", f"--model_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "complete" and results["step"] == 60
    assert sorted(results["rewind_checkpoints"]) == ["0", "30"]
    assert 0.0 <= results["metrics"]["test_accuracy"] <= 1.0
    assert results["metrics"]["test_examples"] == 300
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["train_steps"] == 60 and config["recipe_hash"]
    tags = set()
    for path in tf.io.gfile.glob(str(tmp_path / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"train/loss", "train/learning_rate", "train/batch_accuracy",
            "eval/test_accuracy", "eval/train_accuracy"} <= tags

    # Running a finished run again says so and changes nothing.
    before = {f: os.stat(os.path.join(d, f)).st_mtime_ns
              for d, _, fs in os.walk(tmp_path) for f in fs}
    again = cli(*SMALL, "--train_steps=60", "--eval_every=30", f"--model_dir={tmp_path}")
    assert again.returncode == 0
    assert "already complete" in again.stdout
    after = {f: os.stat(os.path.join(d, f)).st_mtime_ns
             for d, _, fs in os.walk(tmp_path) for f in fs}
    assert before == after


@pytest.mark.slow
def test_sigkill_then_rerun_is_bitwise_identical_to_uninterrupted(tmp_path):
    args = [*SMALL, "--train_steps=1500", "--checkpoint_every=100", "--steps_per_loop=20",
            "--optimizer=adam", "--eval_every=500"]
    whole = cli(*args, f"--model_dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-2000:]

    killed_dir = tmp_path / "killed"
    launch_and_kill_after_checkpoint(args, killed_dir, 300, timeout_s=120)
    assert not (killed_dir / "results.json").exists()

    resumed = cli(*args, f"--model_dir={killed_dir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming" in resumed.stderr
    a = checkpoint_tensors(str(tmp_path / "whole" / "final" / "ckpt"))
    b = checkpoint_tensors(str(killed_dir / "final" / "ckpt"))
    assert a.keys() == b.keys() and len(a) > 6
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def one_error_line(out):
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("tf_lottery: error")]
    assert len(lines) == 1, out.stderr[-2000:]
    return lines[0]


def test_unknown_model_is_one_line_and_writes_nothing(tmp_path):
    line = one_error_line(cli("--model=resnet9000", "--train_steps=5",
                              f"--model_dir={tmp_path / 'run'}"))
    assert "--model=resnet9000" in line and "lenet_300_100" in line
    assert not (tmp_path / "run").exists()


def test_missing_data_says_how_to_provide_it(tmp_path):
    line = one_error_line(cli("--dataset=mnist", "--train_steps=5",
                              f"--data_dir={tmp_path / 'empty'}",
                              f"--model_dir={tmp_path / 'run'}", mock=False))
    assert "not prepared" in line and "--tfds_manual_dir" in line


def test_manual_dir_without_the_files_names_them(tmp_path):
    (tmp_path / "manual").mkdir()
    line = one_error_line(cli("--dataset=fashion_mnist", "--train_steps=5",
                              f"--data_dir={tmp_path / 'empty'}",
                              f"--tfds_manual_dir={tmp_path / 'manual'}",
                              f"--model_dir={tmp_path / 'run'}", mock=False))
    assert "train-images-idx3-ubyte.gz" in line


def test_existing_run_with_a_different_config_is_refused_untouched(tmp_path):
    ok = cli(*SMALL, "--train_steps=30", f"--model_dir={tmp_path}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    before = (tmp_path / "results.json").read_text(), (tmp_path / "config.json").read_text()
    line = one_error_line(cli(*SMALL, "--train_steps=30", "--learning_rate=0.1",
                              f"--model_dir={tmp_path}"))
    assert "schedule.learning_rate" in line
    assert before == ((tmp_path / "results.json").read_text(),
                      (tmp_path / "config.json").read_text())


def test_unwritable_model_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = one_error_line(cli("--train_steps=5", f"--model_dir={blocker / 'run'}"))
    assert "--model_dir" in line and "not writable" in line


@pytest.mark.parametrize("flag", ["--batch_size=-3", "--learning_rate=0"])
def test_invalid_numbers(tmp_path, flag):
    line = one_error_line(cli("--train_steps=5", flag, f"--model_dir={tmp_path / 'r'}"))
    assert flag.split("=")[0] in line
