"""One check of an accelerator, as JSON: throughput, packed runs and determinism.

    benchmarks/device_check.sh [OUT_DIR]          # the way to run it
    python benchmarks/device_check.py --out=DIR [--mode=auto|gpu|cpu] [--budget_s=450]
        [--sections=packing ...] [--runs=N]

Writes ``DIR/device_check.json`` with one key per section:

  environment   TensorFlow, its devices, the GPU's name and memory
  throughput    steps/s and examples/s of LeNet-300-100 (batch 60), ResNet-20 and
                VGG-16 (batch 128), ResNet-50 and Inception-v3 (batch 128, halved
                until it fits), each in float32 and mixed precision, bare and in
                IMP's pruning wrappers (plus --jit_compile for the small ones), with
                op determinism on as tf_lottery runs by default
  packing       several runs of LeNet (and ResNet-20) on one device, two ways, against
                one alone: N processes at once, each growing its memory as needed,
                and N runs stepped in one compiled loop (training.packed) in one
                process; total examples/s of each
  determinism   two identical short runs of tf_lottery.main -> bitwise equal weights?
                a run killed (SIGKILL) and relaunched -> equal to an uninterrupted one?
  nondeterministic_ops  every op TensorFlow refused to run deterministically (the
                error it raised under op determinism), with where it was met

Inputs are synthetic (random images held in host memory; ``tests.mock_main`` for
the determinism runs): no dataset is needed, and no JPEG decoding is timed.
Each section runs in child processes (one per model), so this process never
touches the device and a child that runs past its share of ``--budget_s`` is
stopped; what did not fit is listed under ``skipped``. ``--mode=cpu`` is the
same check reduced to tiny shapes, a few steps and the two small models'
throughput (the test suite runs it);
``auto`` is ``gpu`` when TensorFlow sees a GPU.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

T0 = time.time()  # this process's start, near enough: a child's budget counts from it
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tf_lottery (layout: pure Python, no TF)

from tf_lottery.core import layout  # noqa: E402

SELF = str(pathlib.Path(__file__).resolve())
# Children import this checkout's tf_lottery (and tests.mock_main), whatever is installed.
CHILD_ENV = {"PYTHONPATH": os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}

# model -> dataset (for the config), image side, classes, batch, training flags
MODELS = {
    "lenet_300_100": ("mnist", 28, 1, 10, 60, ["--optimizer=adam", "--learning_rate=1.2e-3"]),
    "resnet20": ("cifar10", 32, 3, 10, 128, [
        "--optimizer=momentum", "--learning_rate=0.1", "--weight_decay=1e-4",
        "--cross_replica_bn"]),
    "vgg16": ("cifar10", 32, 3, 10, 128, [
        "--optimizer=momentum", "--learning_rate=0.1", "--weight_decay=1e-4",
        "--cross_replica_bn"]),
    "resnet50": ("imagenet2012", 224, 3, 1000, 128, [
        "--optimizer=momentum", "--learning_rate=0.4", "--weight_decay=1e-4"]),
    "inception_v3": ("imagenet2012", 299, 3, 1000, 128, [
        "--optimizer=rmsprop", "--rmsprop_decay=0.9", "--momentum=0.9", "--epsilon=1.0",
        "--learning_rate=0.66", "--label_smoothing=0.1", "--aux_loss_weight=0.4",
        "--grad_clip_norm=2.0", "--weight_decay=4e-5", "--ema_decay=0.9999"]),
}
# CPU mode: (image side, batch) small enough for a few steps on two cores.
CPU_SHAPES = {"lenet_300_100": (28, 8), "resnet20": (32, 4), "vgg16": (32, 2),
              "resnet50": (32, 2), "inception_v3": (75, 2)}
# Steps per timed call of the training loop (small models are dispatch-bound).
GPU_LOOP = {"lenet_300_100": 100, "resnet20": 50, "vgg16": 50, "resnet50": 10,
            "inception_v3": 10}
# Each section's share of the budget (time left over passes to the next).
SHARES = {"environment": 0.05, "throughput": 0.5, "packing": 0.2, "determinism": 0.25}
# In CPU mode most of a share is child processes starting (TensorFlow's import),
# and packing starts the most of them.
CPU_SHARES = {"environment": 0.05, "throughput": 0.3, "packing": 0.4, "determinism": 0.25}
# How TensorFlow words its refusals under op determinism (e.g. "A deterministic
# GPU implementation of X is not currently available", "Deterministic GPU
# implementation of unsorted segment reduction op not available").
DETERMINISM_ERROR = re.compile(r"deterministic (GPU )?implementation|determinism is enabled"
                               r"|not deterministic|nondeterministic", re.IGNORECASE)


# -- the parent: sections, children, budget -------------------------------------


def child(args: list[str], deadline: float, env: dict | None = None) -> tuple[list[dict], str]:
    """Runs ``device_check.py --child ...`` until it exits or ``deadline``;
    returns the JSON lines it printed (one per result) and why it printed no
    more: its stderr's end, or that it was stopped at the deadline."""
    cmd = [sys.executable, SELF, *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True,
                                env={**os.environ, **CHILD_ENV, **(env or {})})
        stopped = None
        try:
            proc.wait(timeout=max(deadline - time.time(), 1.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stopped = "stopped at its share of the budget"
        out.seek(0)
        err.seek(0)
        lines = [json.loads(x) for x in out.read().splitlines() if x.startswith("{")]
        return lines, stopped or err.read()[-3000:]


def environment(deadline: float) -> dict:
    lines, err = child(["--child=environment"], deadline)
    return lines[0] if lines else {"error": err}


def throughput(mode: str, deadline: float) -> dict:
    runs: list[dict] = []
    skipped: list[str] = []
    # CPU mode checks that the section works, not every model: with five, a
    # loaded 2-core machine stopped even LeNet's child before its first report.
    models = list(MODELS) if mode != "cpu" else ["lenet_300_100", "resnet20"]
    for i, model in enumerate(models):
        # Each model gets an equal share of what is left.
        share = (deadline - time.time()) / (len(models) - i)
        if share < (5 if mode == "cpu" else 20):
            skipped.append(model)
            continue
        lines, err = child(["--child=throughput", f"--model={model}", f"--mode={mode}",
                            f"--seconds={share:.0f}"], time.time() + share)
        runs += lines
        stopped = err.startswith("stopped")
        if stopped or not lines:  # the variants it did not report
            runs.append({"model": model, "error": err if stopped else f"failed: {err}"})
    return {"runs": runs, "skipped": skipped}


def packing(mode: str, deadline: float) -> dict:
    """One run alone, N processes at once and N runs in one compiled loop,
    each timing the same window."""
    from absl import flags

    n = flags.FLAGS.runs or (2 if mode == "cpu" else 4)
    models = ["lenet_300_100"] if mode == "cpu" else ["lenet_300_100", "resnet20"]
    out: dict = {"processes": n, "runs": n, "skipped": []}
    for i, model in enumerate(models):
        share = (deadline - time.time()) / (len(models) - i)
        if share < (15 if mode == "cpu" else 45):
            out["skipped"].append(model)
            continue
        window = 2.0 if mode == "cpu" else max(3.0, min(8.0, share / 9))
        alone = _packed(model, 1, window, mode, time.time() + share / 3)
        packed = _packed(model, n, window, mode, time.time() + share / 3)
        one_graph = _one_graph(model, n, window, mode, time.time() + share / 3)
        out[model] = {"alone": alone, "packed": packed, "one_graph": one_graph}
        for name, way in (("packed", packed), ("one_graph", one_graph)):
            if "total_examples_per_sec" in alone and "total_examples_per_sec" in way:
                out[model][f"{name}_over_alone"] = round(
                    way["total_examples_per_sec"] / alone["total_examples_per_sec"], 3)
    return out


def _one_graph(model: str, n: int, window: float, mode: str, deadline: float) -> dict:
    args = ["--child=one_graph", f"--model={model}", f"--mode={mode}", f"--runs={n}",
            f"--seconds={window}"]
    lines, stderr = child(args, deadline, {"TF_FORCE_GPU_ALLOW_GROWTH": "true"})
    if not lines:
        return {"error": _error_line(stderr) or "no report (budget or failure)"}
    return lines[0]


def _packed(model: str, n: int, window: float, mode: str, deadline: float) -> dict:
    with tempfile.TemporaryDirectory() as barrier:
        procs, logs = [], []
        for index in range(n):
            cmd = [sys.executable, SELF, "--child=packed", f"--model={model}",
                   f"--mode={mode}", f"--barrier={barrier}", f"--index={index}",
                   f"--seconds={window}"]
            logs.append(tempfile.TemporaryFile("w+"))
            procs.append(subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=logs[-1], text=True,
                env={**os.environ, **CHILD_ENV, "TF_FORCE_GPU_ALLOW_GROWTH": "true"}))
        while time.time() < deadline and any(p.poll() is None for p in procs):
            ready = [f for f in os.listdir(barrier) if f.startswith("ready")]
            if len(ready) == n and not os.path.exists(os.path.join(barrier, "go")):
                pathlib.Path(barrier, "go").touch()  # all warmed up: start together
            time.sleep(0.05)
        for p in procs:
            if p.poll() is None:
                p.kill()
        results = []
        for p in procs:
            lines = [x for x in p.communicate()[0].splitlines() if x.startswith("{")]
            results += [json.loads(x) for x in lines]
        tails = []
        for log in logs:
            log.seek(0)
            tails.append(log.read()[-500:])
            log.close()
    if len(results) < n:
        return {"error": f"{len(results)} of {n} processes reported (budget or failure)",
                "stderr": [t for t in tails if t][:2]}
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    examples = sum(r["examples"] for r in results)
    return {"total_examples_per_sec": round(examples / span, 1),
            "per_process_examples_per_sec": [r["examples_per_sec"] for r in results],
            "peak_gpu_mb": [r.get("peak_gpu_mb") for r in results]}


def determinism(mode: str, deadline: float) -> dict:
    """Runs of tf_lottery.main over mock data, compared tensor by tensor."""
    gpu = mode != "cpu"
    args = _determinism_args(gpu)
    kill_at = 200 if gpu else 20
    out: dict = {"model": args[0].split("=", 1)[1], "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        order = [("first", [], False), ("again", [], False), ("killed", [], True),
                 ("jit_first", ["--jit_compile"], False), ("jit_again", ["--jit_compile"], False)]
        for name, extra, kill in order:
            if time.time() > deadline - (10 if mode == "cpu" else 30):
                out.setdefault("skipped", []).append(name)
                continue
            out["runs"][name] = _launch(args + extra, os.path.join(tmp, name), deadline,
                                        kill_at if kill else None)
        pairs = {"identical_runs_bitwise_equal": ("first", "again"),
                 "killed_and_relaunched_bitwise_equal": ("first", "killed"),
                 "jit_identical_runs_bitwise_equal": ("jit_first", "jit_again")}
        for key, (a, b) in pairs.items():
            ra, rb = out["runs"].get(a, {}), out["runs"].get(b, {})
            if ra.get("final") and rb.get("final"):
                out[key], diff = _compare(ra["final"], rb["final"])
                if diff:
                    out[key + "_differing"] = diff
        for run in out["runs"].values():
            run.pop("final", None)
    return out


def _determinism_args(gpu: bool) -> list[str]:
    if gpu:
        return ["--model=resnet20", "--dataset=cifar10", "--batch_size=128",
                "--eval_batch_size=256", "--train_eval_examples=256", "--train_steps=600",
                "--checkpoint_every=100", "--steps_per_loop=25", "--eval_every=600",
                "--rewind_steps=0", "--optimizer=momentum", "--learning_rate=0.1",
                "--weight_decay=1e-4", "--cross_replica_bn", "--augment=crop_flip"]
    return ["--model=lenet_300_100", "--dataset=mnist", "--batch_size=20",
            "--eval_batch_size=50", "--train_eval_examples=100", "--train_steps=400",
            "--checkpoint_every=20", "--steps_per_loop=10", "--eval_every=400",
            "--rewind_steps=0", "--optimizer=adam"]


def _launch(args: list[str], model_dir: str, deadline: float, kill_at: int | None) -> dict:
    """One launch of tests.mock_main; killed once ckpt-``kill_at`` exists, then
    relaunched to the end."""
    cmd = [sys.executable, "-m", "tests.mock_main", *args, f"--model_dir={model_dir}"]
    env = {**os.environ, **CHILD_ENV, "MOCK_EXAMPLES": "1024"}
    out: dict = {}
    if kill_at is not None:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        state = pathlib.Path(layout.resume_state_file(model_dir))
        while time.time() < deadline and proc.poll() is None:
            if state.exists() and f"{layout.CHECKPOINT_NAME}-{kill_at}" in state.read_text():
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out["killed"] = proc.returncode == -signal.SIGKILL
    started = time.time()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=max(deadline - time.time(), 1.0))
    except subprocess.TimeoutExpired:
        return {**out, "error": "over budget"}
    out["wall_s"] = round(time.time() - started, 1)
    if done.returncode:
        out["error"] = _error_line(done.stderr)
        op = nondeterministic_op(done.stderr)
        if op:
            out["nondeterministic_op"] = op
        return out
    out["resumed"] = "Resuming" in done.stderr
    out["final"] = layout.final_checkpoint(model_dir)
    return out


def _compare(a: str, b: str) -> tuple[bool, list[str]]:
    lines, err = child(["--child=compare", f"--a={a}", f"--b={b}"], time.time() + 120,
                       env={"CUDA_VISIBLE_DEVICES": ""})
    if not lines:
        return False, [f"comparison failed: {err[-300:]}"]
    return lines[0]["equal"], lines[0]["differing"]


def _error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines() or [""]
    errors = [x for x in lines if "Error" in x] or lines
    return errors[-1][-500:]


def nondeterministic_op(text: str) -> dict | None:
    """The op TensorFlow named when op determinism refused it, or None."""
    lines = [x for x in text.splitlines() if DETERMINISM_ERROR.search(x)]
    if not lines:
        return None
    node = re.search(r"\{\{node ([^}]+)\}\}", text)
    return {"message": lines[0].strip()[-400:], "node": node.group(1) if node else None}


SECTIONS = ("throughput", "packing", "determinism")


def run_sections(mode: str, budget_s: float, env: dict, started: float,
                 sections: tuple[str, ...] = SECTIONS) -> dict:
    """Runs ``sections`` (after the environment) in order; they split the
    budget in proportion to their ``SHARES``."""
    report: dict = {"mode": mode, "budget_s": budget_s, "environment": env}
    shares = CPU_SHARES if mode == "cpu" else SHARES
    carry = max(started + shares["environment"] * budget_s - time.time(), 0.0)
    scale = sum(shares[n] for n in SECTIONS) / sum(shares[n] for n in sections)
    functions = {"throughput": throughput, "packing": packing, "determinism": determinism}
    for name in sections:
        fn = functions[name]
        begin = time.time()
        allowed = shares[name] * scale * budget_s + carry
        deadline = min(begin + allowed, started + budget_s)
        try:
            report[name] = fn(mode, deadline)
        except Exception as e:  # a section's failure must not lose the others
            report[name] = {"error": f"{type(e).__name__}: {e}"}
        report[name]["wall_s"] = round(time.time() - begin, 1)
        carry = max(deadline - time.time(), 0.0)
    report["nondeterministic_ops"] = _collect_ops(report)
    report["wall_s"] = round(time.time() - started, 1)
    return report


def _collect_ops(report: dict) -> list[dict]:
    found = []
    for run in report.get("throughput", {}).get("runs", []):
        if run.get("nondeterministic_op"):
            found.append({"where": f"throughput {run.get('model')} {run.get('precision')}",
                          **run["nondeterministic_op"]})
    for name, run in report.get("determinism", {}).get("runs", {}).items():
        if run.get("nondeterministic_op"):
            found.append({"where": f"determinism {name}", **run["nondeterministic_op"]})
    return found


# -- the children: each imports TensorFlow ----------------------------------------


def _tf():
    import tf_lottery  # noqa: F401  (Keras 2 before TensorFlow)

    # isort: split

    import tensorflow as tf

    return tf


def child_environment() -> dict:
    tf = _tf()
    gpus = tf.config.list_physical_devices("GPU")
    out = {"tensorflow": tf.__version__, "cpus": os.cpu_count(),
           "gpus": [d.name for d in gpus],
           "built_with_cuda": tf.test.is_built_with_cuda()}
    tf.config.experimental.enable_op_determinism()
    out["op_determinism_available"] = True
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        out["gpu_name"] = details.get("device_name")
        out["compute_capability"] = details.get("compute_capability")
        tf.config.experimental.set_memory_growth(gpus[0], True)
        out["gpu_memory_mb"] = _gpu_memory_mb()
    return out


def _gpu_memory_mb() -> int | None:
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=memory.total",
                              "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
        return int(smi.stdout.split()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def make_trainer(model: str, mode: str, precision: str, wrappers: bool, jit: bool,
                 batch: int | None = None):
    """A Trainer over synthetic images in host memory; (trainer, pipeline, batch)."""
    tf = _tf()
    import numpy as np
    from absl import flags

    from tf_lottery import config as config_lib
    from tf_lottery.data.pipeline import InMemoryPipeline
    from tf_lottery.data.registry import DatasetSpec
    from tf_lottery.data.sources import InMemoryData
    from tf_lottery.training.trainer import Trainer

    dataset, side, channels, classes, default_batch, extra = MODELS[model]
    if mode == "cpu":
        side, default_batch = CPU_SHAPES[model]
    batch = batch or default_batch
    fv = flags.FlagValues()
    config_lib.define_flags(fv)
    fv(["prog", "--model_dir=/tmp/unused", f"--model={model}", f"--dataset={dataset}",
        f"--batch_size={batch}", f"--eval_batch_size={batch}", "--train_eval_examples=0",
        "--train_steps=1000000", "--steps_per_loop=10", f"--precision={precision}",
        "--rewind_steps=0", *(["--experiment=imp"] if wrappers else []),
        *(["--jit_compile"] if jit else []), *extra])
    config = config_lib.config_from_flags(fv)
    n = 2 * batch
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, side, side, channels), dtype=np.uint8)
    labels = rng.integers(0, classes, n).astype(np.int32)
    spec = DatasetSpec(name="synthetic", tfds_name="none", num_classes=classes,
                       image_shape=(side, side, channels), train_examples=n, test_examples=n)
    pipeline = InMemoryPipeline(spec, InMemoryData(images, labels, images, labels),
                                batch, batch, "none", 0)
    strategy = tf.distribute.get_strategy()
    if wrappers:
        from tf_lottery.experiments import imp

        return imp.make_trainer(config, strategy, pipeline), pipeline, batch
    return Trainer(config, strategy, pipeline), pipeline, batch


def _warm_then_time(step, seconds: float, loop_steps: int, barrier: str | None = None,
                    index: int = 0) -> dict:
    """Calls ``step()`` (a loop of ``loop_steps`` steps, returning a tensor) once
    to warm up (tracing, compilation), waits at ``barrier`` if given, then
    calls it for about ``seconds``: warm-up, steps and the timed window."""
    started = time.perf_counter()
    step().numpy()
    warmup_s = time.perf_counter() - started
    if barrier:
        pathlib.Path(barrier, f"ready_{index}").touch()
        while not os.path.exists(os.path.join(barrier, "go")):
            time.sleep(0.01)
    start_wall, start, steps = time.time(), time.perf_counter(), 0
    while steps == 0 or time.perf_counter() - start < seconds:
        step().numpy()
        steps += loop_steps
    return {"warmup_s": round(warmup_s, 2), "steps": steps, "start": start_wall,
            "elapsed": time.perf_counter() - start}


def _peak_gpu_mb(tf) -> dict:
    """The GPU's peak memory so far, as a report field (none on CPU)."""
    if not tf.config.list_physical_devices("GPU"):
        return {}
    return {"peak_gpu_mb": round(
        tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)}


def time_steps(trainer, pipeline, batch: int, seconds: float, loop_steps: int,
               barrier: str | None = None, index: int = 0) -> dict:
    """Warms up (one loop: traces, compiles), then trains for about ``seconds``."""
    tf = _tf()
    dataset = trainer.strategy.distribute_datasets_from_function(
        pipeline.train_dataset_fn(0, 10**7, 0, 0))
    iterator = iter(dataset)
    loop = tf.constant(loop_steps, tf.int64)
    timed = _warm_then_time(lambda: trainer._train_loop(iterator, loop)[0], seconds,
                            loop_steps, barrier, index)
    steps, elapsed = timed["steps"], timed["elapsed"]
    return {"batch": batch, "warmup_s": timed["warmup_s"], "steps": steps,
            "steps_per_sec": round(steps / elapsed, 2),
            "examples_per_sec": round(steps * batch / elapsed, 1),
            "start": timed["start"], "end": timed["start"] + elapsed,
            "examples": steps * batch, **_peak_gpu_mb(tf)}


def child_throughput(model: str, mode: str, seconds: float) -> None:
    """Prints one JSON line per variant, most important first, until time is up."""
    _tf()
    import gc

    import tf_keras

    mixed = "mixed_float16"
    variants = [("float32", False, False), (mixed, False, False), ("float32", True, False),
                (mixed, True, False)]
    if model in ("lenet_300_100", "resnet20"):
        variants.append(("float32", False, True))
    if mode == "cpu":
        variants = [v for v in variants if v[0] == "float32" or model == "lenet_300_100"]
    per_variant = seconds / len(variants)
    for precision, wrappers, jit in variants:
        result = {"model": model, "precision": precision, "pruning_wrappers": wrappers,
                  "jit_compile": jit}
        if time.time() - T0 > seconds - per_variant / 2:
            print(json.dumps({**result, "skipped": "budget"}), flush=True)
            continue
        timed = _one_variant(model, mode, precision, wrappers, jit, per_variant)
        for internal in ("start", "end", "examples"):
            timed.pop(internal, None)
        print(json.dumps({**result, "deterministic": True, **timed}), flush=True)
        tf_keras.backend.clear_session()
        gc.collect()


def _one_variant(model, mode, precision, wrappers, jit, seconds) -> dict:
    """Times one variant: the batch halves until it fits; an op without a
    deterministic kernel is named, and the variant timed without determinism."""
    tf = _tf()
    # Private, but TensorFlow offers no public way back once determinism is on.
    from tensorflow.python.framework import config as tf_config

    tf.config.experimental.enable_op_determinism()  # as tf_lottery runs by default
    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")  # this variant's peak
    batch, found = None, {}
    timed = 1.0 if mode == "cpu" else max(2.0, seconds / 4)
    loop_steps = 2 if mode == "cpu" else GPU_LOOP[model]
    while True:
        try:
            trainer, pipeline, batch = make_trainer(model, mode, precision, wrappers, jit,
                                                    batch)
            return {**found, **time_steps(trainer, pipeline, batch, timed, loop_steps)}
        except tf.errors.ResourceExhaustedError:
            if batch is None or batch <= 8:
                return {**found, "error": "out of memory at batch 8"}
            batch //= 2
            found["batch_halved_to_fit"] = True
        except Exception as e:  # report, and go on with the next variant
            text = str(e)
            op = nondeterministic_op(text)
            if op and tf_config.is_op_determinism_enabled():
                found.update(nondeterministic_op=op, deterministic=False)
                tf_config.disable_op_determinism()
                continue
            return {**found, "error": f"{type(e).__name__}: {text.splitlines()[0][:400]}"}


def child_packed(model: str, mode: str, barrier: str, index: int, seconds: float) -> None:
    tf = _tf()
    tf.config.experimental.enable_op_determinism()
    trainer, pipeline, batch = make_trainer(model, mode, "float32", False, False)
    loop_steps = 2 if mode == "cpu" else GPU_LOOP[model]
    print(json.dumps(time_steps(trainer, pipeline, batch, seconds, loop_steps, barrier,
                                index)), flush=True)


def child_one_graph(model: str, mode: str, runs: int, seconds: float) -> None:
    """``runs`` trainers, each with its own data order, in one PackedLoop."""
    tf = _tf()
    tf.config.experimental.enable_op_determinism()
    from tf_lottery.training.packed import PackedLoop

    made = [make_trainer(model, mode, "float32", False, False) for _ in range(runs)]
    trainers, pipeline, batch = [m[0] for m in made], made[0][1], made[0][2]
    loop = PackedLoop(trainers)
    iterators = [iter(t.strategy.distribute_datasets_from_function(
        pipeline.train_dataset_fn(0, 10**7, order, 0))) for order, t in enumerate(trainers)]
    loop_steps = 2 if mode == "cpu" else GPU_LOOP[model]
    timed = _warm_then_time(lambda: loop(iterators, loop_steps), seconds, loop_steps)
    steps, elapsed = timed["steps"], timed["elapsed"]
    out = {"runs": runs, "batch": batch, "warmup_s": timed["warmup_s"], "steps": steps,
           "steps_per_sec_per_run": round(steps / elapsed, 2),
           "total_examples_per_sec": round(runs * steps * batch / elapsed, 1),
           **_peak_gpu_mb(tf)}
    print(json.dumps(out), flush=True)


def child_compare(a: str, b: str) -> None:
    tf = _tf()
    import numpy as np

    ra, rb = tf.train.load_checkpoint(a), tf.train.load_checkpoint(b)
    names = sorted(n for n in ra.get_variable_to_shape_map()
                   if n.startswith(("model/", "optimizer/")))
    differing = [n for n in names
                 if not np.array_equal(ra.get_tensor(n), rb.get_tensor(n))]
    print(json.dumps({"equal": bool(names) and not differing, "differing": differing[:20],
                      "tensors": len(names)}))


def main(argv: list[str]) -> int:
    from absl import flags

    f = flags.FLAGS
    if f.child == "environment":
        print(json.dumps(child_environment()))
    elif f.child == "throughput":
        child_throughput(f.model, f.mode, f.seconds)
    elif f.child == "packed":
        child_packed(f.model, f.mode, f.barrier, f.index, f.seconds)
    elif f.child == "one_graph":
        child_one_graph(f.model, f.mode, f.runs, f.seconds)
    elif f.child == "compare":
        child_compare(f.a, f.b)
    else:
        started = time.time()
        env = environment(started + max(SHARES["environment"] * f.budget_s, 60.0))
        mode = f.mode if f.mode != "auto" else ("gpu" if env.get("gpus") else "cpu")
        report = run_sections(mode, f.budget_s, env, started, tuple(f.sections))
        os.makedirs(f.out, exist_ok=True)
        path = os.path.join(f.out, "device_check.json")
        with open(path, "w") as out:
            json.dump(report, out, indent=2)
        print(path)
    return 0


def define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("out", str(ROOT / "device_check_out"), "Folder for device_check.json.")
    flags.DEFINE_enum("mode", "auto", ["auto", "gpu", "cpu"],
                      "gpu: full sizes; cpu: tiny shapes and steps; auto: gpu if TF sees one.")
    flags.DEFINE_float("budget_s", 450.0, "Seconds for all sections together.")
    flags.DEFINE_string("child", None, "Internal: run one child's part.")
    flags.DEFINE_string("model", None, "Internal: the child's model.")
    flags.DEFINE_float("seconds", 10.0, "Internal: the child's time.")
    flags.DEFINE_string("barrier", None, "Internal: the packed children's start folder.")
    flags.DEFINE_integer("index", 0, "Internal: the packed child's number.")
    flags.DEFINE_multi_enum("sections", list(SECTIONS), list(SECTIONS),
                            "The sections to run, in order (all by default); the "
                            "budget is split between them.")
    flags.DEFINE_integer("runs", 0, "Runs packed on the device at once, as processes "
                         "and in one compiled loop (0: 2 in cpu mode, else 4).")
    flags.DEFINE_string("a", None, "Internal: checkpoint to compare.")
    flags.DEFINE_string("b", None, "Internal: checkpoint to compare.")


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
