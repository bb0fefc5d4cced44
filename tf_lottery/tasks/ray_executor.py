"""Runs an experiment's task graph on Ray: long-lived workers, one task each at a time.

``--executor=ray`` calls ``run``. The driver (this process) plans the graph,
starts N *long-lived* Ray actors — each one process holding one
``tasks.worker.Worker`` and the task resources (``--task_resources``, e.g.
``GPU:1``: Ray pins each actor to its own accelerator; fractions such as
``GPU:0.5`` put several actors on one) — and hands every idle actor the
ready task with the highest bottom level (``tasks.dispatch``). A task never
crosses the wire: the actor gets the config (as JSON) once and a task id per
call, reads its inputs from model_dir and writes its outputs there, so the
bits are those of the inline executor.

Why actors and not one Ray task per graph task: a fresh process pays Python
and TensorFlow imports, the dataset load and the tracing of the training
step for every task — seconds that matter next to a LeNet child's training
(``benchmarks/ray_overhead.py`` measures them; docs/ray.md). A
long-lived actor pays imports and data once, and its Worker can keep traced
functions across tasks of one shape.

Faults. Each actor restarts up to ``max_restarts`` times and its in-flight
call is retried on the restarted process (Ray's ``max_restarts`` and
``max_task_retries``): a worker process killed mid-task (OOM, ``kill -9``, a
preempted node) is replaced, and the retried task resumes from its own last
checkpoint (``Worker.run`` is idempotent and resumes). A task whose lease
(``<model_dir>/leases/<id>/lease.json``) is held by another live launch is
put back and offered again ``lease_retry_s`` later: two executors never run one
task at once, and the second finds it done. A killed driver takes its local
Ray instance (and with it the actors) down; relaunched with the same
command it plans again, asks a worker which tasks are done and runs only
the rest. Any other failure stops the run with one line.

Local Ray (``address=None``) starts a private instance whose every server
listens on 127.0.0.1 only, with no dashboard and no usage reporting; it is
stopped, and its worker processes have ended (by PID), when ``run`` returns
or raises.

``run`` is what ``--executor=ray`` calls (``tf_lottery.main``, which holds
the model_dir's lease): like ``tasks.inline`` it logs the experiment's
progress line (``tasks.progress``) and calls the experiment's ``refresh``
after each task, then returns the record in results.json. ``execute`` runs
any graph (tests run one of stand-in tasks).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from absl import logging

from tf_lottery import config as config_lib
from tf_lottery.core import layout, records
from tf_lottery.errors import ConfigError
from tf_lottery.tasks.dispatch import Dispatcher
from tf_lottery.tasks.graph import Graph, Task
from tf_lottery.tasks.kinds import Runnable
from tf_lottery.tasks.progress import Progress

# ``module:function`` each worker process calls with the config to build its
# Worker (imported there, by name: an actor is built in another process).
WORKER = "tf_lottery.experiments:task_worker"
MAX_RESTARTS = 3          # process deaths an actor (and its current task) survives
LEASE_RETRY_S = 30.0      # a task leased by another launch is offered again after this
WORKER_EXIT_S = 10.0      # how long local workers get to end after shutdown
# Only task ids and small dicts travel through Ray's object store; Ray's floor is 75 MiB.
LOCAL_OBJECT_STORE_BYTES = 100 * 2**20
# How Ray names its built-in resources in ray.remote options.
_BUILTIN = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}


class RayExecutorError(ConfigError):
    """The Ray executor cannot start or a task failed; reported as one line."""


# -- resources --------------------------------------------------------------


def task_resources(resources: Mapping[str, float] | None) -> dict[str, float]:
    """Each worker's Ray resources; ``CPU: 1`` when none are given."""
    need = dict(resources or {"CPU": 1.0})
    for name, amount in need.items():
        if not (isinstance(amount, (int, float)) and math.isfinite(amount) and amount > 0):
            raise RayExecutorError(f"--task_resources: {name} must be a positive number, "
                                   f"got {amount!r}")
    return {name: float(amount) for name, amount in need.items()}


def actor_options(need: Mapping[str, float]) -> dict[str, Any]:
    """``ray.remote`` options that reserve ``need`` for one actor."""
    options: dict[str, Any] = {"num_cpus": 0.0}
    custom = {}
    for name, amount in need.items():
        if name in _BUILTIN:
            options[_BUILTIN[name]] = int(amount) if name == "memory" else amount
        else:
            custom[name] = amount
    if custom:
        options["resources"] = custom
    return options


def workers_that_fit(cluster: Mapping[str, float], need: Mapping[str, float]) -> int:
    """How many workers needing ``need`` the cluster's resources hold at once."""
    return min(int(cluster.get(name, 0.0) / amount + 1e-9) for name, amount in need.items())


def _describe(resources: Mapping[str, float]) -> str:
    shown = {k: v for k, v in sorted(resources.items())
             if k in _BUILTIN or not k.startswith(("node:", "object_store"))}
    return ", ".join(f"{k}:{v:g}" for k, v in shown.items()) or "nothing"


# -- the worker process -------------------------------------------------------


def _load(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _lease_held(error: BaseException) -> bool:
    # tf_lottery.lease imports TensorFlow; if it is not loaded, nothing raised its error.
    lease = sys.modules.get("tf_lottery.lease")
    return lease is not None and isinstance(error, lease.LeaseHeldError)


class TaskRunner:
    """One long-lived worker process: a Worker built once, running tasks by id.

    Made a Ray actor by ``run``; plain Python, so it can be tested alone.
    """

    def __init__(self, config_json: str, worker: str = WORKER):
        started = time.perf_counter()
        # As tf_lottery.main logs: progress and resumes reach the driver's
        # output through Ray's log forwarding.
        logging.set_verbosity(logging.INFO)
        config = config_lib.config_from_json(config_json)
        self._worker = _load(worker)(config)
        self.init_seconds = time.perf_counter() - started
        self.tasks_run = 0

    def where(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(),
                "init_seconds": self.init_seconds}

    def done_ids(self) -> list[str]:
        return sorted(self._worker.done_ids())

    def set_graph(self, graph: Graph) -> None:
        """Works on the driver's plan, as ``tasks.inline`` sets its Worker's
        graph: a graph that grows (the onset search's next probe) is planned
        by the driver alone, so every worker sees the same tasks."""
        self._worker.graph = graph

    def run(self, task_id: str) -> dict[str, Any]:
        """Runs ``task_id``; says how it went instead of raising.

        Exceptions are returned, not raised: Ray retries a call only when
        the process dies, and the driver decides what a failure means.
        """
        started = time.perf_counter()
        outcome: dict[str, Any] = {"task": task_id, "warm": self.tasks_run > 0,
                                   **self.where()}
        try:
            self._worker.run(task_id)
        except Exception as e:  # noqa: BLE001  (reported to the driver, one line)
            if _lease_held(e):
                return {**outcome, "status": "busy", "message": str(e)}
            traceback.print_exc()  # into this worker's log, which Ray forwards
            first = (str(e).strip().splitlines() or [""])[0]
            return {**outcome, "status": "error", "message": f"{type(e).__name__}: {first}"}
        self.tasks_run += 1
        return {**outcome, "status": "done", "seconds": time.perf_counter() - started,
                "task_seconds": getattr(self._worker, "last_seconds", None)}


# -- the driver ---------------------------------------------------------------


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def connect(address: str | None, num_cpus: int | None = None) -> Any:
    """Joins the Ray cluster at ``address``, or starts a private local one.

    The local instance listens on 127.0.0.1 only: Ray binds its servers to
    the node's address, which it resolves to the loopback when clusters are
    "disabled" (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when ray imports
    and by the processes it spawns). ``address="local"`` keeps Ray from
    joining a cluster that a ``ray start`` left on this machine.
    """
    import ray
    from ray._private import ray_constants

    if address:
        try:
            return ray.init(address=address, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise RayExecutorError(f"--ray_address={address}: cannot join that Ray "
                                   f"cluster: {str(e).splitlines()[0]}") from None
    clusters = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        with _environ(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0"):
            return ray.init(address="local", _node_ip_address="127.0.0.1",
                            include_dashboard=False, num_cpus=num_cpus,
                            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                            configure_logging=False)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = clusters


def run(config: config_lib.ExperimentConfig, *, experiment: Runnable | None = None,
        address: str | None = None,
        resources: Mapping[str, float] | None = None, **options: Any) -> records.Results:
    """Runs (or resumes) every task of ``config``'s graph on Ray; returns results.json.

    What ``--executor=ray`` calls: ``tf_lottery.main`` already holds the
    model_dir's lease and has claimed config.json. Once every task is done
    the experiment's record is read as the inline executor reads it
    (``Worker.results``). ``options`` are ``execute``'s.
    """
    execute(config, experiment=experiment, address=address, resources=resources, **options)
    # Imported here: store imports TensorFlow, which worker processes load
    # only when their Worker does (tests' stand-in workers never do).
    from tf_lottery.core import store

    model_dir = config.runtime.model_dir
    return store.read_done(layout.results_file(model_dir), records.ExperimentResults,
                           model_dir)


def execute(config: config_lib.ExperimentConfig, *, experiment: Runnable | None = None,
            address: str | None = None,
            resources: Mapping[str, float] | None = None, workers: int | None = None,
            planner: Callable[[], Graph] | None = None, worker: str | None = None,
            max_restarts: int = MAX_RESTARTS, lease_retry_s: float = LEASE_RETRY_S,
            num_cpus: int | None = None) -> None:
    """Runs every pending task of the planned graph on Ray; returns when all are done.

    As ``tasks.inline`` does, once every task is done the graph is planned
    again and what is new runs, until the plan stops growing (the onset
    search plans its next probe from the barriers measured so far; every
    other experiment's plan is the same the second time).

    Args:
      address: a Ray cluster (``host:port``, ``ray://...``, ``auto``); None
        starts a private local instance on 127.0.0.1 for this call.
      resources: each worker's Ray resources (``{"GPU": 1}``); default 1 CPU.
      workers: how many workers; default as many as the cluster holds at
        once, at most one per pending task.
      experiment: its planner (unless ``planner`` is given) and its
        ``refresh``, called after each task.
      planner: returns the graph; default ``tasks.plan.plan(experiment, config)``.
        Another (with another ``worker``) is for tests of scheduling and faults.
      worker: ``module:Class`` of the per-process worker; default ``WORKER``,
        read at call time (tests swap it, also under the CLI: tests.mock_main).
      num_cpus: CPUs of a local instance (default: this machine's).

    Raises:
      RayExecutorError: one line, when Ray cannot start or a task failed.
    """
    if planner is None:
        if experiment is None:
            raise ValueError("execute needs the experiment or a planner")
        runnable = experiment
        from tf_lottery.tasks import plan as plan_lib  # TensorFlow: only when it plans

        def planner() -> Graph:
            return plan_lib.plan(runnable, config)
    need = task_resources(resources)
    if workers is not None and workers < 1:
        raise RayExecutorError(f"workers must be >= 1, got {workers}")
    import ray

    connect(address, num_cpus)
    driver = _Driver(ray, config, planner, need, worker or WORKER, max_restarts,
                     lease_retry_s, experiment.refresh if experiment else None)
    local: list[int] = []
    try:
        driver.run(workers)
    finally:
        if address is None:
            local = driver.worker_pids()
        ray.shutdown()
        _wait_for_exit(local)


def _wait_for_exit(pids: list[int], timeout_s: float = WORKER_EXIT_S) -> None:
    """Waits for a local instance's worker processes to end, by PID.

    ``ray.shutdown`` stops the instance's servers, but each worker process
    notices and exits on its own a moment later (seconds on a loaded
    machine); a run returns once they are gone, and kills any still there
    after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    alive = list(pids)
    while alive:
        alive = [pid for pid in alive if _exists(pid)]
        if alive and time.monotonic() > deadline:
            logging.warning("Ray workers %s still running after shutdown; killing them.",
                            alive)
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Driver:
    """Starts the workers and feeds them tasks until the plan is done and stays so."""

    def __init__(self, ray: Any, config: config_lib.ExperimentConfig,
                 planner: Callable[[], Graph], need: dict[str, float], worker: str,
                 max_restarts: int, lease_retry_s: float,
                 refresh: Callable[[config_lib.ExperimentConfig, Task], None] | None):
        self.ray = ray
        self.config = config
        self.planner = planner
        self.refresh = refresh
        self.need = need
        self.lease_retry_s = lease_retry_s
        self.actor_cls = ray.remote(TaskRunner).options(
            max_restarts=max_restarts, max_task_retries=max_restarts,
            **actor_options(need))
        self.args = (config.to_json(), worker)
        self.actors: list[Any] = []

    def _workers_wanted(self, requested: int | None) -> int:
        cluster = self.ray.cluster_resources()
        fit = workers_that_fit(cluster, self.need)
        if requested is None:
            if fit < 1:
                raise RayExecutorError(
                    f"--task_resources={_describe(self.need)}: no worker fits in this Ray "
                    f"cluster, which has {_describe(cluster)}")
            return fit
        if requested > fit:
            logging.warning("%d workers of %s each, but the Ray cluster holds %d (it has %s): "
                            "the others wait for resources.", requested,
                            _describe(self.need), fit, _describe(cluster))
        return requested

    def run(self, requested: int | None) -> None:
        wanted = self._workers_wanted(requested)
        graph = self.planner()
        self._add_actor(graph)
        while True:
            self._run_graph(graph, wanted)
            grown = self.planner()
            if grown.ids() == graph.ids():
                return
            graph = grown  # a search's next probe, planned from what it measured
            self.ray.get([actor.set_graph.remote(graph) for actor in self.actors])

    def _add_actor(self, graph: Graph) -> None:
        actor = self.actor_cls.remote(*self.args)
        actor.set_graph.remote(graph)  # an actor runs one caller's calls in order
        self.actors.append(actor)

    def _run_graph(self, graph: Graph, wanted: int) -> None:
        done = self.ray.get(self.actors[0].done_ids.remote())
        dispatcher = Dispatcher(graph, done)
        pending = dispatcher.pending()
        if not pending:
            logging.info("Every task of %s is done; nothing to run.",
                         self.config.runtime.model_dir)
            return
        while len(self.actors) < min(wanted, len(pending)):
            self._add_actor(graph)
        logging.info("Ray: %d of %d tasks to run on %d workers (%s each).", len(pending),
                     len(graph), len(self.actors), _describe(self.need))
        self._loop(graph, dispatcher, list(self.actors),
                   Progress(graph, dispatcher.done, workers=len(self.actors)))

    def worker_pids(self) -> list[int]:
        """The PIDs of the workers that answer within a few seconds (at the
        end of a run every live one is idle)."""
        refs = [actor.where.remote() for actor in self.actors]
        if not refs:
            return []
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=WORKER_EXIT_S)
        pids = []
        for ref in ready:
            with contextlib.suppress(self.ray.exceptions.RayError):
                pids.append(self.ray.get(ref)["pid"])
        return pids

    def _loop(self, graph: Graph, dispatcher: Dispatcher, actors: list[Any],
              progress: Progress) -> None:
        ray = self.ray
        refresh = self.refresh
        idle = list(actors)
        running: dict[Any, tuple[str, Any]] = {}
        while not dispatcher.finished():
            now = time.time()
            while idle and (task_id := dispatcher.next(now)) is not None:
                actor = idle.pop()
                dispatcher.start(task_id)
                running[actor.run.remote(task_id)] = (task_id, actor)
            wake = dispatcher.wake_time()
            if not running:
                if wake is None:  # cannot happen with a valid graph
                    raise RayExecutorError(f"no task can start; pending: "
                                           f"{dispatcher.pending()[:5]}")
                time.sleep(max(0.0, wake - now))
                continue
            timeout = None if wake is None else max(0.0, wake - now)
            finished, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
            for ref in finished:
                task_id, actor = running.pop(ref)
                outcome = self._outcome(task_id, ref)
                idle.append(actor)
                if outcome["status"] == "done":
                    dispatcher.complete(task_id)
                    logging.info("Ray: %s done in %.1f s on %s pid %s.", task_id,
                                 outcome["seconds"], outcome["host"], outcome["pid"])
                    progress.finished(task_id, outcome["task_seconds"])
                    if refresh is not None:  # as tasks.inline: the model_dir's views
                        refresh(self.config, graph[task_id])
                elif outcome["status"] == "busy":
                    dispatcher.defer(task_id, time.time() + self.lease_retry_s)
                    logging.warning("Ray: %s is leased by another launch; offered again "
                                    "in %.0f s. %s", task_id, self.lease_retry_s,
                                    outcome["message"])
                else:
                    raise RayExecutorError(
                        f"task {task_id} failed on {outcome['host']} (pid {outcome['pid']}): "
                        f"{outcome['message']}")

    def _outcome(self, task_id: str, ref: Any) -> dict[str, Any]:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RayExecutorError(f"task {task_id}: its Ray worker is gone ({first})"
                                   ) from None
