"""Start-up time of a launch: seconds until its first training step, in parts, as JSON.

    python benchmarks/startup.py --data_dir=/tmp/tfds --repeats=5 \\
        [--repos=/path/to/other/checkout,.] [-- any tf_lottery flag]

Launches ``python -m tf_lottery.main --flagfile=flags/lenet_fashion_mnist.cfg
--train_steps=2000`` (real Fashion-MNIST, prepared by TFDS into --data_dir on
first use from /usr/share/datasets/fashion-mnist) in a subprocess with a
fresh --model_dir, reads the ``startup:`` line the launch logs
(``tf_lottery.startup``) and reports, per launch and as median / min / max:

  interpreter_and_imports  launch -> main() entered (Python, TensorFlow, tf_lottery)
  experiment_import        config parsed, the experiment's module imported
  strategy                 tf.distribute strategy built
  data_load                the dataset in memory (TFDS decode, or the array cache)
  claim                    lease taken, model_dir claimed
  model_build              model, optimizer and checkpoint built
  resume_and_w0            resume check, W_0 saved (the recipe's rewind step 0)
  first_loop               tracing + the first loop's steps (``first_loop_steps``)
  to_first_step            launch -> first loop called
  to_first_loop_done       launch -> first loop returned

Time is measured from just before the subprocess is started, so the
interpreter's own start counts. ``--warmup`` launches (not reported) run
first, so TFDS has prepared the data and the array cache exists; with
``--repos`` several checkouts are launched in turn (interleaved, for a
before/after comparison on a busy machine). The load average is recorded
before and after: on a shared machine it says how far to trust the figures.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOG_PREFIX = "startup: "  # tf_lottery.startup.LOG_PREFIX (not imported: no TF here)

# (part, milestone it starts at, milestone it ends at); "launch" is the
# moment the subprocess is started.
PARTS = (
    ("interpreter_and_imports", "launch", "main"),
    ("experiment_import", "main", "experiment"),
    ("strategy", "experiment", "strategy"),
    ("data_load", "strategy", "data"),
    ("claim", "data", "claimed"),
    ("model_build", "claimed", "model"),
    ("resume_and_w0", "model", "first_loop"),
    ("first_loop", "first_loop", "first_loop_done"),
    ("to_first_step", "launch", "first_loop"),
    ("to_first_loop_done", "launch", "first_loop_done"),
)


def define_flags() -> None:
    """The benchmark's flags (defined only when run: tests import the module)."""
    flags.DEFINE_integer("repeats", 5, "Launches measured per checkout.")
    flags.DEFINE_integer("warmup", 1, "Launches per checkout run first and not reported.")
    flags.DEFINE_string("data_dir", None, "TFDS data_dir (prepared there on first use).")
    flags.DEFINE_string("flagfile_of_run", "flags/lenet_fashion_mnist.cfg",
                        "The recipe launched (relative to each checkout).")
    flags.DEFINE_integer("train_steps", 2000, "--train_steps of each launch.")
    flags.DEFINE_list("repos", [str(ROOT)], "Checkouts to launch, in turn (PYTHONPATH, cwd).")
    flags.DEFINE_boolean("run_to_end", False,
                         "Let each launch finish (and report its wall time) instead of "
                         "stopping it once its first loop has returned.")
    flags.DEFINE_integer("timeout_s", 600, "Give up on a launch after this long.")
    flags.DEFINE_string("module", "tf_lottery.main",
                        "The module launched (tests.mock_main: the same over TFDS mock data).")


FLAGS = flags.FLAGS


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def parse_startup(stderr: str) -> dict:
    """The ``startup:`` line's JSON; ValueError if the launch logged none."""
    for line in stderr.splitlines():
        at = line.find(LOG_PREFIX)
        if at >= 0:
            return json.loads(line[at + len(LOG_PREFIX):])
    raise ValueError("the launch logged no startup line; its stderr ends:\n" + stderr[-3000:])


def parts_of(line: dict, launch: float) -> dict[str, float]:
    """Seconds of each part, from the milestones' times since process start."""
    since = line["since_start_s"]
    at = {name: line["process_start"] + s for name, s in since.items()}
    at["launch"] = launch
    return {part: round(at[end] - at[begin], 3)
            for part, begin, end in PARTS if begin in at and end in at}


def launch(repo: str, extra: list[str]) -> dict:
    """One launch of ``--module`` from checkout ``repo``, in a fresh model_dir."""
    with tempfile.TemporaryDirectory(prefix="startup_bench_") as model_dir, \
            tempfile.TemporaryFile("w+") as err:  # not a pipe: a launch logs a lot
        cmd = [sys.executable, "-m", FLAGS.module, f"--flagfile={FLAGS.flagfile_of_run}",
               f"--train_steps={FLAGS.train_steps}", f"--model_dir={model_dir}"]
        if FLAGS.data_dir:
            cmd.append(f"--data_dir={FLAGS.data_dir}")
        launched = time.time()
        proc = subprocess.Popen(cmd + extra, cwd=repo, env={**os.environ, "PYTHONPATH": repo},
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
        stopped = FLAGS.run_to_end
        while proc.poll() is None and time.time() < launched + FLAGS.timeout_s:
            time.sleep(0.05)
            if not stopped:
                err.seek(0)
                if LOG_PREFIX in err.read():
                    proc.terminate()  # SIGTERM: the launch releases its lease and exits
                    stopped = True
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        ended = time.time()
        err.seek(0)
        line = parse_startup(err.read())
    out = {"parts_s": parts_of(line, launched),
           "first_loop_steps": line.get("first_loop_steps"),
           "data_source": line.get("data_source")}
    if FLAGS.run_to_end:
        out["wall_s"] = round(ended - launched, 3)
        out["returncode"] = proc.returncode
    return out


def summarize(runs: list[dict]) -> dict:
    keys = [p for p, _, _ in PARTS] + (["wall_s"] if FLAGS.run_to_end else [])
    out = {}
    for key in keys:
        values = [r["parts_s"].get(key, r.get(key)) for r in runs]
        values = [v for v in values if v is not None]
        if values:
            out[key] = {"median": round(statistics.median(values), 3),
                        "min": round(min(values), 3), "max": round(max(values), 3)}
    return out


def main(argv: list[str]) -> None:
    extra = argv[1:]
    repos = [str(pathlib.Path(r).resolve()) for r in FLAGS.repos]
    for repo in repos:
        for _ in range(FLAGS.warmup):
            launch(repo, extra)
    load_before = load_average()
    runs: dict[str, list[dict]] = {repo: [] for repo in repos}
    for _ in range(FLAGS.repeats):
        for repo in repos:  # interleaved: each checkout sees the same load
            runs[repo].append(launch(repo, extra))
    result = {
        "command": " ".join([
            f"python -m {FLAGS.module}", f"--flagfile={FLAGS.flagfile_of_run}",
            f"--train_steps={FLAGS.train_steps}",
            *([f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else []), *extra]),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "checkouts": {repo: {"summary": summarize(r), "launches": r}
                      for repo, r in runs.items()},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    define_flags()
    app.run(main)
