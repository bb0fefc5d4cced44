"""Builds the sdist and wheel, installs the wheel as a user would, runs the quickstart.

What the test suite cannot see, because it runs from the checkout: a file
the package needs at run time but the wheel leaves out (a subpackage without
``__init__.py``, a data file without package_data), a console script that
points nowhere, a dependency only the checkout's environment happened to
hold (Ray, which is now the ``[ray]`` extra). So:

1. ``uv build``: the sdist, then the wheel built from the sdist (a file the
   sdist drops is missing from the wheel too). Every file under
   ``tf_lottery/`` in the checkout must be in the wheel.
2. A fresh venv; ``pip install`` of the wheel with only ``--lock`` as
   constraints (pip's cache holds what ``make install`` downloaded, so
   TensorFlow is not fetched again). Ray must not be installed.
3. From a folder outside the checkout, with the installed console scripts:
   ``tf-lottery --help``; a 200-step LeNet run on TFDS mock data (a launcher
   wraps the installed ``tf_lottery.main`` in ``tfds.testing.mock_data``,
   as tests/mock_main.py does); ``--executor=ray``, which must say in one
   line which extra to install; ``tf-lottery-status``;
   ``tf-lottery-report``; ``tf-lottery-export`` to a ``.keras`` file that
   plain tf_keras then loads, without tf_lottery.

Usage: python tools/wheel_smoke.py --lock=locks/cpu-linux-py3.11.txt [--keep DIR]
Prints one JSON line per step (seconds, ok); exits 1 at the first failure.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 200
# The installed package under TFDS mock data: the data-prepared check and the
# array cache are bypassed as in tests/mock_main.py (mock data is not on disk).
LAUNCHER = """\
import runpy, sys
from unittest import mock
import tf_lottery
import tensorflow_datasets as tfds
from tf_lottery.data import cache, sources
assert "site-packages" in tf_lottery.__file__, tf_lottery.__file__
with tfds.testing.mock_data(num_examples=300), \\
        mock.patch.object(sources, "is_prepared", lambda builder: True), \\
        mock.patch.object(cache, "load", lambda *args: None):
    runpy.run_module("tf_lottery.main", run_name="__main__", alter_sys=True)
"""
LOAD_KERAS = """\
import sys
import tf_keras
model = tf_keras.models.load_model(sys.argv[1])
assert "tf_lottery" not in sys.modules
print(model.count_params())
"""
RUN_FLAGS = ["--dataset=mnist", "--batch_size=20", "--eval_batch_size=50",
             "--train_eval_examples=100", f"--train_steps={STEPS}", "--eval_every=100"]


class SmokeFailure(Exception):
    """A step failed; the message says which and why."""


class Smoke:
    """Runs the steps in ``work`` (outside the checkout), one JSON line each."""

    def __init__(self, work: pathlib.Path):
        self.work = work
        self.venv = work / "venv"
        self.home = work / "home"   # the user's cwd: no tf_lottery/ beside it
        self.home.mkdir(parents=True, exist_ok=True)

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def step(self, name: str, command: list[str], expect_rc: int = 0,
             cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
        start = time.monotonic()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        done = subprocess.run(command, cwd=cwd or self.home, text=True, capture_output=True,
                              env=env, timeout=1800)
        ok = done.returncode == expect_rc
        print(json.dumps({"step": name, "ok": ok, "rc": done.returncode,
                          "seconds": round(time.monotonic() - start, 1)}), flush=True)
        if not ok:
            raise SmokeFailure(f"{name}: exit {done.returncode} (expected {expect_rc}): "
                               f"{(done.stderr or done.stdout)[-3000:]}")
        return done


def build(smoke: Smoke) -> pathlib.Path:
    """The wheel, built from the sdist; checks it holds every file of the package."""
    dist = smoke.work / "dist"
    uv = shutil.which("uv") or str(pathlib.Path(sys.executable).parent / "uv")
    smoke.step("build sdist and wheel", [uv, "build", "--quiet", "--out-dir", str(dist),
                                         str(ROOT)], cwd=ROOT)
    wheel = next(dist.glob("*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    source = {str(p.relative_to(ROOT)) for p in (ROOT / "tf_lottery").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    missing = sorted(source - shipped)
    if missing:
        raise SmokeFailure(f"the wheel leaves out {missing}: a package needs an "
                           "__init__.py, a data file needs [options.package_data]")
    return wheel


def install(smoke: Smoke, wheel: pathlib.Path, lock: pathlib.Path) -> None:
    smoke.step("fresh venv", [sys.executable, "-m", "venv", str(smoke.venv)])
    smoke.step("pip install the wheel with the lock as constraints",
               [smoke.bin("python"), "-m", "pip", "install", "-q", "-c", str(lock),
                str(wheel)])
    smoke.step("ray is not installed without [ray]",
               [smoke.bin("python"), "-c", "import importlib.util, sys; "
                "sys.exit(importlib.util.find_spec('ray') is not None)"])


def quickstart(smoke: Smoke) -> None:
    """The user's commands, from ``home``, with the installed scripts."""
    launcher = smoke.home / "launch_on_mock_data.py"
    launcher.write_text(LAUNCHER)
    run_dir = smoke.home / "runs" / "lenet"
    done = smoke.step("tf-lottery --help", [smoke.bin("tf-lottery"), "--help"])
    if "--experiment" not in done.stdout:
        raise SmokeFailure("tf-lottery --help does not list --experiment")
    python = smoke.bin("python")
    done = smoke.step(f"{STEPS}-step LeNet run on TFDS mock data",
                      [python, str(launcher), *RUN_FLAGS, f"--model_dir={run_dir}"])
    if "test accuracy" not in done.stdout:
        raise SmokeFailure(f"the run printed no test accuracy: {done.stdout[-2000:]}")
    done = smoke.step("--executor=ray without [ray]",
                      [python, str(launcher), *RUN_FLAGS, "--executor=ray",
                       f"--model_dir={smoke.home / 'runs' / 'ray'}"], expect_rc=2)
    lines = [x for x in done.stderr.splitlines() if x.startswith("tf_lottery:")]
    if len(lines) != 1 or "tf_lottery[ray]" not in lines[0] or "Traceback" in done.stderr:
        raise SmokeFailure(f"--executor=ray without Ray: {done.stderr[-2000:]}")
    smoke.step("tf-lottery-status", [smoke.bin("tf-lottery-status"), f"--model_dir={run_dir}"])
    smoke.step("tf-lottery-report", [smoke.bin("tf-lottery-report"), f"--model_dir={run_dir}"])
    exported = smoke.home / "lenet.keras"
    smoke.step("tf-lottery-export", [smoke.bin("tf-lottery-export"), f"--model_dir={run_dir}",
                                     f"--out={exported}"])
    smoke.step("plain tf_keras loads the .keras file", [python, "-c", LOAD_KERAS,
                                                        str(exported)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=pathlib.Path, required=True,
                        help="constraints for the install, e.g. locks/cpu-linux-py3.11.txt")
    parser.add_argument("--keep", type=pathlib.Path, default=None,
                        help="work here and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    lock = args.lock.resolve()
    if not lock.is_file():
        print(f"wheel_smoke: error: --lock={args.lock}: no such file", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tf_lottery_wheel_") as tmp:
        smoke = Smoke(args.keep.resolve() if args.keep else pathlib.Path(tmp))
        try:
            install(smoke, build(smoke), lock)
            quickstart(smoke)
        except SmokeFailure as e:
            print(f"wheel_smoke: error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
