"""IMP across rewind steps in one experiment (experiment 'imp_sweep').

The paper's question "from which rewind step k are IMP subnetworks stable
and matching?" needs IMP at several k. ``--experiment=imp_sweep
--rewind_steps=0,100,2000`` plans it as one graph (``tasks.planners.imp_sweep``):

- the dense run (level 0) once, in ``<model_dir>/level_00``, keeping W_k
  for every k of --rewind_steps;
- for each k a chain of levels in ``<model_dir>/k_<k>/``: an IMP model_dir
  of its own whose config (``planners.imp_chain_config``) is that of
  ``--experiment=imp --rewind_step=k`` with the sweep's dense run as its
  level 0. Each chain runs IMP's own tasks (``pruning.imp``), baselines,
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

from typing import Any

import tensorflow as tf

from tf_lottery import rundir
from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records, store
from tf_lottery.data.pipeline import Pipeline
from tf_lottery.pruning import imp
from tf_lottery.stability import instruments
from tf_lottery.summaries import figures
from tf_lottery.tasks import planners
from tf_lottery.tasks.graph import Task


class ChainWorker:
    """A worker seen through the config of one chain: what IMP's task
    functions read (``config``) is the chain's; everything else (strategy,
    pipeline, the cached trainer and evaluator) is the worker's own."""

    def __init__(self, worker: Any, k: int):
        self.worker = worker
        self.config = planners.imp_chain_config(worker.config, k)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.worker, name)


def chain_worker(worker: Any, task: Task) -> ChainWorker:
    """The task's chain, its directory claimed for its config (its own
    config.json, so that it reads as an IMP model_dir)."""
    chain = ChainWorker(worker, task.arg("chain"))
    rundir.claim(chain.config)
    return chain


def run_dense(worker: Any, task: Task) -> None:
    """The shared dense run: IMP's level 0, keeping W_k for every k."""
    imp.run_dense(worker, task)


def _in_chain(run: Any) -> Any:
    def run_in_chain(worker: Any, task: Task) -> None:
        run(chain_worker(worker, task), task)

    run_in_chain.__doc__ = f"In the task's chain: {run.__doc__}"
    return run_in_chain


run_level = _in_chain(imp.run_level)
run_baseline = _in_chain(imp.run_baseline)
run_sparse_child = _in_chain(imp.run_sparse_child)
run_sparse_pair = _in_chain(imp.run_sparse_pair)
run_sparse_instability = _in_chain(imp.run_sparse_instability)
run_imp_results = _in_chain(imp.run_imp_results)
run_level_path = _in_chain(instruments.run_level_path)
run_layerwise_pair = _in_chain(instruments.run_layerwise_pair)


def assemble(config: ExperimentConfig, status: str) -> records.ImpSweepResults:
    """The sweep's results.json: each chain's results as IMP assembles them."""
    return records.ImpSweepResults(status=status, chains=[
        imp.assemble(planners.imp_chain_config(config, k), status)
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
        chain = planners.imp_chain_config(config, k)
        rundir.claim(chain)
        imp.refresh_results(chain, task)
    store.write(path, assemble(config, layout.RUNNING), model_dir)


def run_imp_sweep_results(worker: Any, task: Task) -> None:
    """The complete results.json, once every chain is complete."""
    config = worker.config
    store.write(layout.results_file(config.runtime.model_dir),
                assemble(config, layout.COMPLETE), config.runtime.model_dir)
    figures.refresh_figures(config.runtime.model_dir)


def imp_sweep(config: ExperimentConfig, strategy: tf.distribute.Strategy,
              pipeline: Pipeline) -> records.ImpSweepResults:
    """The sweep in this process (every task of its graph, ``tasks.inline``)."""
    from tf_lottery.tasks import inline

    results = inline.run(config, strategy, pipeline)
    assert isinstance(results, records.ImpSweepResults)
    return results
