"""IMP across rewind steps in one experiment (experiment 'imp_sweep').

The paper's question "from which rewind step k are IMP subnetworks stable
and matching?" needs IMP at several k. ``--experiment=imp_sweep
--rewind_steps=0,100,2000`` plans it as one graph (``plan``):

- the dense run (level 0) once, in ``<model_dir>/level_00``, keeping W_k
  for every k of --rewind_steps;
- for each k a chain of levels in ``<model_dir>/k_<k>/``: an IMP model_dir
  of its own whose config (``chain_config``) is that of
  ``--experiment=imp --rewind_step=k`` with the sweep's dense run as its
  level 0. Each chain runs IMP's own tasks (``experiments.imp``), baselines,
  ``--instability`` and ``--imp_level_barriers`` included, so a chain trains
  the networks a separate single-k IMP run trains, from the same seeds;
- the results: every chain's ``ImpResults`` in the order of k
  (``records.ImpSweepResults``).

Every chain has its own ``config.json`` and ``results.json``, so the report
reads each as an IMP run and draws the sweep's chains as one family against
k (sparse accuracy and barrier against k, ``reporting.summary.sparse_families``).

Each task function below runs IMP's (or the instruments') task of that
kind with the worker seen through its chain's config (``ChainWorker``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from tf_lottery import rundir
from tf_lottery.config import ExperimentConfig, experiments
from tf_lottery.core import layout, records, store
from tf_lottery.errors import FieldError
from tf_lottery.experiments import imp, toolkit
from tf_lottery.experiments.base import Experiment, TaskKind, record_kind, run_kind
from tf_lottery.experiments.toolkit import RESULTS, R, task_id
from tf_lottery.reporting import tensorboard_figures
from tf_lottery.tasks.graph import Graph, Task
from tf_lottery.tasks.kinds import TaskWorker

T = TypeVar("T")


# -- the graph ---------------------------------------------------------------------------------

def chain_config(config: ExperimentConfig, k: int) -> ExperimentConfig:
    """The config of the sweep's chain rewound to ``k``: IMP's, in the chain's
    own model_dir (``layout.chain_dir``), with --rewind_step=k and the sweep's
    dense run as its level 0. A separate ``--experiment=imp --rewind_step=k``
    run trains the same networks from the same seeds."""
    model_dir = config.runtime.model_dir
    sections = tuple(
        dataclasses.replace(s, rewind_step=k, dense_dir=layout.level_dir(model_dir, 0))
        if s.section == "pruning" else s for s in config.sections)
    return dataclasses.replace(
        config, experiment="imp", sections=sections,
        runtime=dataclasses.replace(config.runtime, model_dir=layout.chain_dir(model_dir, k)))


def plan(config: ExperimentConfig) -> list[Task]:
    """The dense run (level 0, keeping W_k for every k of --rewind_steps),
    then for each k its chain: IMP's tasks (``imp.plan``) with ids under
    ``k_<k>/`` and the argument ``chain`` = k, level 0 being the shared
    dense run; the results last."""
    if not config.train.rewind_steps:
        raise FieldError("train.rewind_steps", "is empty: the rewind-step sweep needs at "
                         "least one rewind step k")
    dense = task_id(layout.level_dir(R, 0))
    tasks = [Task(dense, "dense", (), toolkit.run_steps(config, 0), (("level", 0),))]
    for k in config.train.rewind_steps:
        prefix = layout.k_name(k) + "/"

        def moved(planned: str, prefix: str = prefix) -> str:
            return dense if planned == dense else prefix + planned

        tasks += [Task(moved(t.id), t.kind, tuple(moved(d) for d in t.deps), t.cost_steps,
                       (("chain", k), *t.args))
                  for t in imp.plan(chain_config(config, k)) if t.id != dense]
    tasks.append(Task(RESULTS, "imp_sweep_results", tuple(t.id for t in tasks), 0))
    return tasks


# -- task kinds: IMP's, run in the task's chain ----------------------------------------------


class ChainWorker:
    """A worker seen through the config of one chain: what IMP's task
    functions read (``config``) is the chain's; everything else (strategy,
    pipeline, the cached trainer and evaluator) is the worker's own."""

    def __init__(self, worker: TaskWorker, k: int):
        self.worker = worker
        self.config = chain_config(worker.config, k)

    @property
    def strategy(self) -> Any:
        return self.worker.strategy

    @property
    def pipeline(self) -> Any:
        return self.worker.pipeline

    @property
    def graph(self) -> Graph:
        return self.worker.graph

    def cached(self, key: Any, build: Callable[[], T]) -> T:
        return self.worker.cached(key, build)


def chain_worker(worker: TaskWorker, task: Task) -> ChainWorker:
    """The task's chain, its directory claimed for its config (its own
    config.json, so that it reads as an IMP model_dir)."""
    chain = ChainWorker(worker, task.arg("chain"))
    rundir.claim(chain.config)
    return chain


def in_chain(kind: TaskKind) -> TaskKind:
    """IMP's task kind ``kind``, run with the worker seen through the task's chain."""
    def run_in_chain(worker: TaskWorker, task: Task) -> None:
        kind.run(chain_worker(worker, task), task)

    run_in_chain.__doc__ = f"In the task's chain: {kind.run.__doc__}"
    return TaskKind(run_in_chain, kind.output)


# -- results.json --------------------------------------------------------------------------------

def assemble(config: ExperimentConfig, status: str) -> records.ImpSweepResults:
    """The sweep's results.json: each chain's results as IMP assembles them."""
    return records.ImpSweepResults(status=status, chains=[
        imp.assemble(chain_config(config, k), status)
        for k in config.train.rewind_steps])


def refresh_results(config: ExperimentConfig, task: Task) -> None:
    """After each task (by the executor holding the lease): the task's
    chain's running results.json (``imp.refresh_results``), then the sweep's."""
    model_dir = config.runtime.model_dir
    path = layout.results_file(model_dir)
    if layout.is_complete(store.read_summary(path, records.ImpSweepResults, model_dir)):
        return
    chains = [dict(task.args)["chain"]] if "chain" in dict(task.args) else []
    for k in chains:
        chain = chain_config(config, k)
        rundir.claim(chain)
        imp.refresh_results(chain, task)
    store.write(path, assemble(config, layout.RUNNING), model_dir)


def run_imp_sweep_results(worker: TaskWorker, task: Task) -> None:
    """The complete results.json, once every chain is complete."""
    config = worker.config
    store.write(layout.results_file(config.runtime.model_dir),
                assemble(config, layout.COMPLETE), config.runtime.model_dir)
    tensorboard_figures.refresh_figures(config.runtime.model_dir)


def imp_sweep(config: ExperimentConfig, strategy: Any = None,
              pipeline: Any = None) -> records.ImpSweepResults:
    """The sweep in this process (every task of its graph, ``tasks.inline``)."""
    results = EXPERIMENT.run(config, strategy, pipeline)
    assert isinstance(results, records.ImpSweepResults)
    return results


KINDS = {"dense": run_kind(imp.run_dense),
         **{name: in_chain(kind) for name, kind in imp.KINDS.items() if name != "dense"},
         "imp_sweep_results": record_kind(run_imp_sweep_results)}

EXPERIMENT = Experiment(experiments.get("imp_sweep"), plan, KINDS, refresh=refresh_results)
