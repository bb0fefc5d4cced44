"""Every experiment, one module each, registered by object.

Each module (``train``, ``instability``, ``imp``, ``imp_sweep``, ``onset``)
owns its planner (config -> task graph), the code of its task kinds and its
hooks, and exposes them as one ``base.Experiment`` named ``EXPERIMENT``;
they are built on the public ``toolkit`` (and ``instruments``, the
evaluation-only task kinds several experiments share). Registering an
experiment is one entry of ``_LOADERS`` below (and its loader), beside its
declaration in ``config.experiments`` (its name and config sections). See
docs/design.md, "Adding an experiment".

Each loader imports its module when the experiment is first asked for, not
when this package is imported: a launch imports only the experiment it
runs, so ``--experiment=train`` does not pay for TFMOT (IMP's wrappers) at
start-up (benchmarks/startup.py). The loaders are typed, so mypy follows
each import and checks that it returns an ``Experiment``.
"""

from __future__ import annotations

from collections.abc import Callable

from tf_lottery.config import ExperimentConfig
from tf_lottery.config import experiments as declared
from tf_lottery.errors import ConfigError
from tf_lottery.experiments.base import Experiment
from tf_lottery.tasks import plan as plan_lib
from tf_lottery.tasks.graph import Graph
from tf_lottery.tasks.worker import Worker

__all__ = ["Experiment", "get", "names", "plan", "task_worker"]


def _train() -> Experiment:
    from tf_lottery.experiments import train
    return train.EXPERIMENT


def _instability() -> Experiment:
    from tf_lottery.experiments import instability
    return instability.EXPERIMENT


def _imp() -> Experiment:
    from tf_lottery.experiments import imp
    return imp.EXPERIMENT


def _imp_sweep() -> Experiment:
    from tf_lottery.experiments import imp_sweep
    return imp_sweep.EXPERIMENT


def _onset() -> Experiment:
    from tf_lottery.experiments import onset
    return onset.EXPERIMENT


_LOADERS: dict[str, Callable[[], Experiment]] = {
    "train": _train,
    "instability": _instability,
    "imp": _imp,
    "imp_sweep": _imp_sweep,
    "onset": _onset,
}

if list(_LOADERS) != list(declared.EXPERIMENTS):  # a registration without a declaration
    raise ImportError(f"experiments registered {list(_LOADERS)} but the config "
                      f"declares {list(declared.EXPERIMENTS)}")


def names() -> list[str]:
    return list(_LOADERS)


def get(name: str) -> Experiment:
    """The experiment ``--experiment=name`` runs (its module imported now).

    Raises:
      ConfigError: no such experiment.
    """
    if name not in _LOADERS:
        raise ConfigError(f"--experiment={name} is not known (known: {', '.join(_LOADERS)})")
    experiment = _LOADERS[name]()
    if experiment.name != name:
        raise ImportError(f"experiment {name!r} loads {experiment.name!r}")
    return experiment


def plan(config: ExperimentConfig) -> Graph:
    """``config``'s task graph, as ``--list_tasks`` prints it."""
    return plan_lib.plan(get(config.experiment), config)


def task_worker(config: ExperimentConfig) -> Worker:
    """A Worker for ``config``'s experiment: what each Ray worker process
    builds (``tasks.ray_executor.WORKER`` names this function)."""
    return Worker(get(config.experiment), config)
