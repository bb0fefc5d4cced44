"""The public toolkit experiments are built on: task ids, costs, seeds, runs.

Every experiment module (``tf_lottery.experiments.<name>``) plans its graph
and runs its task kinds with these pieces; none of them is private to one
experiment, so a new experiment reuses them as they are:

- **task ids and costs** (pure, no TensorFlow): ``task_id`` turns a layout
  path under ``R`` (the planned model_dir) into a task id; ``run_steps``,
  ``pair_steps``, ``layerwise_steps``, ``curve_steps`` estimate a task's
  cost in training steps (see below); ``children_tasks``, ``layerwise_tasks``
  and ``curve_tasks`` plan the children of one starting point W_k, their
  pairs, their layer-wise barriers and their curves;
- **noise seeds**: ``replicate_init_seed``, ``replicate_noise`` (replicate
  r's seeds: the recipe's + r), ``child_noise`` (child i's SGD noise drawn
  from its parent's), ``recipe_noise`` (the recipe's own, which every IMP
  level and baseline sees);
- **rewind points and child runs**: ``recipe_run`` (the recipe's run 0 -> T),
  ``parent_run`` (replicate r's parent, keeping every W_k),
  ``rewind_checkpoint`` (its W_k), ``child_run`` (a child of a W_k);
- **what a task builds on its worker**: ``trainer`` (dense), built once per
  worker (``TaskWorker.cached``); ``run_record``, a finished run's record.

Two more modules complete the toolkit, kept apart so that an experiment
imports only what it uses (``--experiment=train`` loads neither TFMOT nor
the alignment code at start-up): ``evaluation`` (pair evaluation:
``evaluate_pair``, ``children_pair``, ``children_record``,
``rewind_record``, ``evaluator``) and ``levels`` (IMP's level records, masks
and masked trainer).

Cost estimates (``cost_steps``), in training steps of the recipe's batch:

- a run from step a to T costs T − a steps, plus its evaluations: one at
  every multiple of ``--eval_every`` in (a, T) and one at T;
- an evaluation of a network visits the test set and the train subset
  (``--train_eval_examples``); an evaluated example costs a third of a
  trained one (a forward pass against forward + backward, about twice a
  forward), so E examples cost E / (3 · batch) steps;
- a pair evaluates ``--interpolation_points`` networks; with
  ``--bn_mode=recompute`` each point also runs ``--bn_recompute_batches``
  forward passes on training batches (a third of a step each);
- a curve (``--curve``) fits its bend for ``--curve_steps`` steps, then
  is evaluated as a pair's path;
- an aggregate (a rewind point's record, a level's sparse instability, the
  results) only reads records: cost 0.

The estimate orders work and sizes ETAs and cluster plans; measured step
rates (``tasks.progress``) calibrate it. It never changes a result.

Seeds. Replicate r's parent uses ``init_seed + r``, ``data_order_seed + r``
and ``augment_seed + r`` (replicate 0 is the recipe itself). Child i of a
parent gets SGD-noise seeds drawn by ``numpy.random.SeedSequence`` from the
parent's seed and i (``child_noise``), so children differ from each other
and from their parent, and child i gets the same noise at every k, which
isolates the effect of k.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from tf_lottery.config import ExperimentConfig
from tf_lottery.core import layout, records, store
from tf_lottery.errors import FieldError
from tf_lottery.tasks.graph import Task
from tf_lottery.tasks.kinds import TaskWorker
from tf_lottery.training import checkpoints
from tf_lottery.training.trainer import (
    FromCheckpoint,
    FromSeed,
    RunSpec,
    SgdNoise,
    Then,
    Trainer,
)

EVAL_COST = 1.0 / 3.0  # an evaluated example, in trained examples (see above)

R = "<model_dir>"  # the model_dir of planned paths; ids are relative to it

_DATA_ORDER, _AUGMENT = 1, 2  # SeedSequence streams of a child's two seeds.


# -- task ids and costs: pure functions of the config -----------------------------------------

def task_id(path: str) -> str:
    """The id of the task whose output is ``path`` (a layout path under ``R``)."""
    return layout.task_id(path, R)


RESULTS = task_id(layout.results_file(R))  # every experiment's last task: results.json


def eval_steps(config: Any) -> float:
    """Step-equivalents of evaluating one network on test + train subset."""
    examples = config.data.spec().test_examples + config.data.train_eval_examples
    return examples * EVAL_COST / config.train.batch_size


def run_steps(config: Any, start: int) -> int:
    """Estimated cost of a run from ``start`` to T, its evaluations included."""
    end, every = config.train.train_steps, config.runtime.eval_every
    evaluations = 1 + (len(range(every * (start // every + 1), end, every)) if every else 0)
    return max(1, math.ceil(end - start + evaluations * eval_steps(config)))


def pair_steps(config: Any) -> int:
    """Estimated cost of evaluating one interpolation path."""
    ic = config.instability
    per_point = eval_steps(config)
    if ic.bn_mode == "recompute":
        per_point += ic.bn_recompute_batches * EVAL_COST
    return max(1, math.ceil(ic.interpolation_points * per_point))


def pairs(children: int) -> list[tuple[int, int]]:
    """Every unordered pair of children, (0, 1), (0, 2), ..., (n−2, n−1)."""
    return list(itertools.combinations(range(children), 2))


def children_tasks(config: Any, point_dir: str, start: tuple[str, ...], k: int,
                   child_kind: str, pair_kind: str, **args: Any) -> list[Task]:
    """Children of one starting point W_k and their pairs, under ``point_dir``."""
    n = config.instability.children
    children = [task_id(layout.child_dir(point_dir, i)) for i in range(n)]
    tasks = [Task(children[i], child_kind, start, run_steps(config, k),
                  tuple({**args, "k": k, "child": i}.items())) for i in range(n)]
    tasks += [Task(task_id(layout.pair_file(point_dir, i, j)), pair_kind,
                   (children[i], children[j]), pair_steps(config),
                   tuple({**args, "k": k, "pair": (i, j)}.items()))
              for i, j in pairs(n)]
    return tasks


def layerwise_steps(config: Any, groups: int = 4) -> int:
    """Estimated cost of one pair's layer-wise paths (``groups`` is a guess:
    the graph is planned without building the model)."""
    points = config.instability.layerwise_points
    return max(1, math.ceil((1 + groups * (points - 1)) * eval_steps(config)))


def layerwise_tasks(config: Any, point_dir: str, k: int, **args: Any) -> list[Task]:
    """The layer-wise barriers of every pair of children under ``point_dir``
    (``--layerwise_barriers``): each needs its two children."""
    n = config.instability.children
    return [Task(task_id(layout.layerwise_file(point_dir, i, j)), "layerwise_pair",
                 (task_id(layout.child_dir(point_dir, i)), task_id(layout.child_dir(point_dir, j))),
                 layerwise_steps(config), tuple({**args, "k": k, "pair": (i, j)}.items()))
            for i, j in pairs(n)]


def curve_steps(config: Any) -> int:
    """Estimated cost of one curve (``--curve``): the fit's steps, then its
    evaluation at ``--interpolation_points`` t's (as a pair's path; BatchNorm
    recomputation counted where ``--bn_mode=recompute``: whether the network
    has BatchNorm is not known before it is built)."""
    return config.curve.steps + pair_steps(config)


def curve_tasks(config: Any, point_dir: str, k: int, **args: Any) -> list[Task]:
    """The curve between every two children under ``point_dir`` (``--curve``):
    each needs its two children and their pair (whose line it is set against)."""
    return [Task(task_id(layout.curve_file(point_dir, i, j)), "curve",
                 (task_id(layout.child_dir(point_dir, i)), task_id(layout.child_dir(point_dir, j)),
                  task_id(layout.pair_file(point_dir, i, j))),
                 curve_steps(config), tuple({**args, "k": k, "pair": (i, j)}.items()))
            for i, j in pairs(config.instability.children)]


# -- noise seeds ----------------------------------------------------------------------------

def replicate_init_seed(config: ExperimentConfig, replicate: int) -> int:
    return config.train.init_seed + replicate


def replicate_noise(config: ExperimentConfig, replicate: int) -> SgdNoise:
    t = config.train
    return SgdNoise(t.data_order_seed + replicate, t.augment_seed + replicate)


def _derive_seed(seed: int, stream: int, child: int) -> int:
    state = np.random.SeedSequence([seed % 2**63, stream, child]).generate_state(1)
    return int(state[0]) & 0x7FFFFFFF


def child_noise(parent: SgdNoise, child: int, sources: str = "both") -> SgdNoise:
    """SGD noise of child ``child``: new seeds derived from the parent's.

    ``sources`` (``--child_noise``) says which seed is the child's own:
    'both' (the paper: data order and augmentation), 'data_order',
    'augmentation', or 'none'. A seed that is not the child's own is child
    0's, so every child shares it and child 0 is the same in every mode
    (one knob changes one thing). With 'none' all children train with
    identical noise: their barrier is 0 when the ops are deterministic.
    """
    own_order = sources in ("both", "data_order")
    own_augment = sources in ("both", "augmentation")
    if not own_order and not own_augment and sources != "none":
        raise ValueError(f"unknown child noise sources {sources!r}")
    return SgdNoise(
        _derive_seed(parent.data_order_seed, _DATA_ORDER, child if own_order else 0),
        _derive_seed(parent.augment_seed, _AUGMENT, child if own_augment else 0))


def recipe_noise(config: ExperimentConfig) -> SgdNoise:
    """Every level and baseline sees the recipe's SGD noise, as in the lottery
    ticket experiments: only the mask (or init) differs."""
    t = config.train
    return SgdNoise(t.data_order_seed, t.augment_seed)


# -- rewind points and child runs ------------------------------------------------------------

def recipe_run(config: ExperimentConfig, run_dir: str | None = None) -> RunSpec:
    """The recipe's own run: W_0 from init_seed, trained 0 -> T."""
    t = config.train
    return RunSpec(
        run_dir=run_dir or config.runtime.model_dir,
        end_step=t.train_steps,
        noise=SgdNoise(t.data_order_seed, t.augment_seed),
        start=FromSeed(t.init_seed),
        rewind_steps=t.rewind_steps,
        evaluate_every=config.runtime.eval_every,
    )


def parent_run(config: ExperimentConfig, replicate: int) -> RunSpec:
    """Replicate ``replicate``'s parent: trained 0 -> T, keeping every W_k."""
    return RunSpec(
        run_dir=layout.parent_dir(config.runtime.model_dir, replicate),
        end_step=config.train.train_steps,
        noise=replicate_noise(config, replicate),
        start=FromSeed(replicate_init_seed(config, replicate)),
        rewind_steps=config.train.rewind_steps,
        evaluate_every=config.runtime.eval_every,
    )


def rewind_checkpoint(config: ExperimentConfig, replicate: int, k: int) -> str:
    """W_k of the replicate's parent, which must have kept it."""
    run_dir = layout.parent_dir(config.runtime.model_dir, replicate)
    if not checkpoints.has_rewind(run_dir, k):
        raise FieldError("train.rewind_steps", f"has k={[k]}, for which parent {run_dir} "
                         "has no rewind checkpoint; use a new {runtime.model_dir}")
    return checkpoints.rewind_prefix(run_dir, k)


def child_run(config: ExperimentConfig, start_from: str, parent_noise: SgdNoise,
              out_dir: str, child: int, then: Then | None = None) -> RunSpec:
    """Child ``child`` of the point ``start_from`` (a W_k checkpoint), trained to T;
    ``then`` runs once W_k is loaded (e.g. to apply a pruning mask)."""
    return RunSpec(
        run_dir=layout.child_dir(out_dir, child),
        end_step=config.train.train_steps,
        noise=child_noise(parent_noise, child, config.instability.child_noise),
        start=FromCheckpoint(
            start_from, then=then,
            reset_optimizer=config.instability.child_optimizer_state == "reset"),
        evaluate_every=config.runtime.eval_every,
    )


# -- what a task builds on its worker (once per worker) ---------------------------------------

def trainer(worker: TaskWorker) -> Trainer:
    """The worker's Trainer for parents and children: every run states its start."""
    return worker.cached("trainer", lambda: Trainer(worker.config, worker.strategy,
                                                    worker.pipeline))


def run_record(run_dir: str) -> records.RunRecord:
    """The finished run in ``run_dir`` that a task depends on."""
    return store.read_done(layout.results_file(run_dir), records.RunRecord, run_dir)
