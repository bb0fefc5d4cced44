"""A stand-in for ``tf_lottery.tasks.worker.Worker`` that trains nothing.

Lets the Ray executor's scheduling and fault handling be tested in seconds,
without TensorFlow in the worker processes. It keeps Worker's contract:
``run(task_id)`` is idempotent (returns at once when done), refuses a task
whose dependencies are not done (a ConfigError), resumes a task from its
own last "checkpoint"; ``done_ids()`` lists finished tasks.

The graph and the pace come from ``<model_dir>/fake_graph.json`` (written by
``write_spec``): each task counts ``steps`` steps of ``step_s`` seconds,
folding its dependencies' results into a value, so a result is a pure
function of the graph — whatever ran it, in whatever valid order — and a
task started before its dependencies would be caught. Every attempt is
logged (pid, step it started from, time) in the task's directory, and every
completion in ``<model_dir>/completions.log``.
"""

from __future__ import annotations

import json
import os
import time
import zlib

from tf_lottery.errors import ConfigError
from tf_lottery.tasks.graph import Graph, Task

SPEC = "fake_graph.json"
COMPLETIONS = "completions.log"
HELD = "held"  # in a busy task's directory: another launch holds its lease
BUSY_LOG = "busy.log"


def fake_config(model_dir: str):
    """Any valid config will do: the fake reads only its model_dir.

    Parsed here rather than by conftest.parse_config, which imports TensorFlow.
    """
    from absl import flags

    from tf_lottery import config as config_lib

    fv = flags.FlagValues()
    config_lib.define_flags(fv)
    fv(["prog", f"--model_dir={model_dir}", "--train_steps=10"])
    return config_lib.config_from_flags(fv)


def diamond() -> Graph:
    """A parent, three children, a pair and summaries; costs like the paper's."""
    return Graph([
        Task("parent", "parent", (), 100),
        Task("k1/child_0", "child", ("parent",), 90),
        Task("k1/child_1", "child", ("parent",), 90),
        Task("k2/child_0", "child", ("parent",), 50),
        Task("k1/pair_0_1", "pair", ("k1/child_0", "k1/child_1"), 5),
        Task("short", "summary", (), 1),
        Task("results", "summary", ("k1/pair_0_1", "k2/child_0", "short"), 1),
    ])


def write_spec(model_dir: str, graph: Graph, steps: int = 5, step_s: float = 0.05,
               fail: str | None = None, busy: str | None = None) -> None:
    """Describes ``graph`` to the fake workers; ``fail`` names a task that
    raises; ``busy`` one that is leased by another launch (``LeaseHeldError``,
    each refusal logged in ``BUSY_LOG``) for as long as ``HELD`` exists in
    its directory."""
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, SPEC), "w") as f:
        json.dump({"tasks": [t.to_json() for t in graph], "steps": steps,
                   "step_s": step_s, "fail": fail, "busy": busy}, f)


def _write(path: str, record: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def _read(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


class FakeWorker:
    """Worker's interface, over files in model_dir."""

    def __init__(self, config):
        self.model_dir = config.runtime.model_dir
        spec = _read(os.path.join(self.model_dir, SPEC))
        assert spec is not None, f"no {SPEC} in {self.model_dir}"
        self.graph = Graph(Task(t["id"], t["kind"], tuple(t["deps"]), t["cost_steps"])
                           for t in spec["tasks"])
        self.steps, self.step_s, self.fail = spec["steps"], spec["step_s"], spec["fail"]
        self.busy = spec.get("busy")

    @property
    def graph(self) -> Graph:
        return self._graph

    @graph.setter
    def graph(self, graph: Graph) -> None:
        """The executor's plan (it may have grown): what each task depends on."""
        self._graph = graph
        self.deps = {t.id: list(t.deps) for t in graph}

    def _path(self, task_id: str, name: str) -> str:
        return os.path.join(self.model_dir, task_id, name)

    def result(self, task_id: str) -> dict | None:
        return _read(self._path(task_id, "done.json"))

    def done_ids(self) -> set[str]:
        return {tid for tid in self.deps if self.result(tid) is not None}

    def state(self, task_id: str) -> str:
        return "done" if self.result(task_id) is not None else "pending"

    def run(self, task_id: str) -> None:
        if self.result(task_id) is not None:
            return
        inputs = [self.result(d) for d in self.deps[task_id]]
        missing = [d for d, r in zip(self.deps[task_id], inputs, strict=True) if r is None]
        if missing:
            raise ConfigError(f"task {task_id} needs {', '.join(missing)} done first")
        if task_id == self.fail:
            raise RuntimeError(f"{task_id} broke on purpose\nsecond line")
        if task_id == self.busy and os.path.exists(self._path(task_id, HELD)):
            from tf_lottery import lease  # imports TensorFlow: only this case pays

            with open(os.path.join(self.model_dir, BUSY_LOG), "a") as f:
                f.write(f"{task_id} {os.getpid()} {time.time()}\n")
            raise lease.LeaseHeldError(f"task {task_id} is leased by pid 1 on host elsewhere")
        os.makedirs(os.path.join(self.model_dir, task_id), exist_ok=True)
        checkpoint = _read(self._path(task_id, "checkpoint.json"))
        if checkpoint is None:
            value = zlib.crc32(task_id.encode())
            for r in inputs:
                value = (value * 1_000_003 + r["value"]) % 2**61
            checkpoint = {"step": 0, "value": value}
        with open(self._path(task_id, "attempts.jsonl"), "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "from_step": checkpoint["step"],
                                "time": time.time()}) + "\n")
        while checkpoint["step"] < self.steps:
            time.sleep(self.step_s)
            checkpoint = {"step": checkpoint["step"] + 1,
                          "value": (checkpoint["value"] * 31 + checkpoint["step"]) % 2**61}
            _write(self._path(task_id, "checkpoint.json"), checkpoint)
        _write(self._path(task_id, "done.json"),
               {"value": checkpoint["value"], "time": time.time()})
        with open(os.path.join(self.model_dir, COMPLETIONS), "a") as f:
            f.write(task_id + "\n")
