"""Per-task overhead of the Ray executor against a LeNet task's training time; prints JSON.

    python benchmarks/ray_overhead.py --mock_data             # no dataset needed
    python benchmarks/ray_overhead.py --data_dir=/tmp/tfds    # prepared Fashion-MNIST
    python benchmarks/ray_overhead.py --mock_data -- --train_steps=4000

On a private local Ray instance, for a LeNet instability analysis at k = 0
(flags/lenet_fashion_mnist_instability.cfg with --rewind_steps=0,
--train_steps=2000, one replicate and two children unless given after
``--``), times:

- ``ray_start_s``: starting the local Ray instance (``ray.init``);
- ``worker_start_s``: a new worker process until it answers (interpreter,
  Python + TensorFlow imports, the Worker built), ``worker_init_s`` the part
  in its constructor;
- the parent on worker A (its first task: data load and tracing included);
- child 0 on worker A, now warm (same shape as child 1: the training itself);
- child 1 on a fresh worker B (cold: data load and tracing again);

and derives ``cold_task_overhead_s`` (child 1 − child 0: what a task pays
in a fresh process besides its training), the overhead per task of a fresh
process per task (``worker_start_s`` + that) and of the long-lived workers
the executor uses (once per worker, not per task), each against the full
recipe's 24,000-step child at the measured step rate; ``dispatch_overhead_s``
is what a task costs a warm worker besides itself (Ray's round trip).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tf_lottery  # noqa: E402,F401  (Keras 2 before TensorFlow)

# isort: split

from absl import flags  # noqa: E402

from tf_lottery import config as config_lib  # noqa: E402
from tf_lottery.tasks import ray_executor  # noqa: E402

FLAGFILE = "flags/lenet_fashion_mnist_instability.cfg"
FULL_CHILD_STEPS = 24_000  # the paper's LeNet recipe: a child at k = 0 trains 0 -> T


def _config(model_dir: str, data_dir: str | None, extra: list[str]):
    fv = flags.FlagValues()
    config_lib.define_flags(fv)
    args = ["ray_overhead", f"--flagfile={FLAGFILE}", f"--model_dir={model_dir}",
            "--rewind_steps=0", "--train_steps=2000", "--eval_every=2000",
            "--replicates=1", "--children=2",
            "--checkpoint_every=1000"]
    if data_dir:
        args.append(f"--data_dir={data_dir}")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        fv([*args, *extra])
    finally:
        os.chdir(cwd)
    return config_lib.config_from_flags(fv)


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mock_data", action="store_true",
                   help="TFDS mock data in the workers (tests/mock_worker.py)")
    p.add_argument("--data_dir", default=None)
    args = p.parse_args(argv)
    worker = "tests.mock_worker:MockDataWorker" if args.mock_data else ray_executor.WORKER
    if args.mock_data:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [ROOT, os.environ.get("PYTHONPATH", "")])  # the workers import tests/
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        config = _config(os.path.join(tmp, "run"), args.data_dir, extra)
        _, ray_start = _timed(lambda: ray_executor.connect(None))
        try:
            runner = ray.remote(ray_executor.TaskRunner)
            a = runner.remote(config.to_json(), worker)
            where_a, start_a = _timed(lambda: ray.get(a.where.remote()))
            parent = ray.get(a.run.remote("replicate_0/parent"))
            warm, warm_wall = _timed(
                lambda: ray.get(a.run.remote("replicate_0/k_000000000/child_0")))
            b = runner.remote(config.to_json(), worker)
            where_b, start_b = _timed(lambda: ray.get(b.where.remote()))
            cold = ray.get(b.run.remote("replicate_0/k_000000000/child_1"))
        finally:
            ray.shutdown()
    for outcome in (parent, warm, cold):
        if outcome["status"] != "done":
            print(json.dumps(outcome), file=sys.stderr)
            return 1
    steps = config.train.train_steps
    rate = steps / warm["task_seconds"]
    full_child_s = FULL_CHILD_STEPS / rate
    # Negative when the difference is below the machine's noise: counted as 0.
    cold_overhead = cold["task_seconds"] - warm["task_seconds"]
    counted = max(cold_overhead, 0.0)
    worker_start = (start_a + start_b) / 2
    print(json.dumps({
        "data": "mock" if args.mock_data else "tfds",
        "train_steps": steps,
        "load_average_1m": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "ray_start_s": ray_start,
        "worker_start_s": [start_a, start_b],
        "worker_init_s": [where_a["init_seconds"], where_b["init_seconds"]],
        "parent_first_task_s": parent["task_seconds"],
        "child_warm_s": warm["task_seconds"],
        "child_cold_s": cold["task_seconds"],
        "cold_task_overhead_s": cold_overhead,
        "steps_per_s_warm": rate,
        "full_child_s": full_child_s,
        "fresh_process_per_task_overhead_s": worker_start + counted,
        "fresh_process_per_task_overhead_pct": 100 * (worker_start + counted) / full_child_s,
        # A warm worker's per-task cost besides the task: Ray's round trip.
        "dispatch_overhead_s": warm_wall - warm["seconds"],
        "long_lived_worker_once_s": worker_start + counted,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
