"""Each experiment's task graph, as a pure function of its config.

A planner lists an experiment's tasks (``graph.Task``) in the order the
single-process experiment has always run them; ``graph.Graph`` keeps that
order wherever the dependencies allow, so the inline executor reproduces
it. Ids are output paths relative to the model_dir, built from the layout
module's names (``layout.task_id``), so ``replicate_0/k_000000100/child_1``
is where child 1 of replicate 0 at k=100 lives.

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
- an aggregate (a rewind point's record, a level's sparse instability, the
  results) only reads records: cost 0.

The estimate orders work and sizes ETAs and cluster plans; measured step
rates (``progress``) calibrate it. It never changes a result.

Pure Python: no TensorFlow, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tf_lottery.core import layout
from tf_lottery.errors import FieldError
from tf_lottery.tasks.graph import Task

EVAL_COST = 1.0 / 3.0  # an evaluated example, in trained examples (see above)

R = "<model_dir>"  # the model_dir of planned paths; ids are relative to it


def _id(path: str) -> str:
    return layout.task_id(path, R)


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


def _pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


# -- train ----------------------------------------------------------------------------------

RESULTS = _id(layout.results_file(R))


def train(config: Any) -> list[Task]:
    """One task: the recipe's run, in the model_dir itself; its output is the
    model_dir's results.json, hence its id ``results``."""
    return [Task(RESULTS, "train", (), run_steps(config, 0))]


# -- instability --------------------------------------------------------------------------

def children_tasks(config: Any, point_dir: str, start: tuple[str, ...], k: int,
                   child_kind: str, pair_kind: str, **args: Any) -> list[Task]:
    """Children of one starting point W_k and their pairs, under ``point_dir``."""
    n = config.instability.children
    children = [_id(layout.child_dir(point_dir, i)) for i in range(n)]
    tasks = [Task(children[i], child_kind, start, run_steps(config, k),
                  tuple({**args, "k": k, "child": i}.items())) for i in range(n)]
    tasks += [Task(_id(layout.pair_file(point_dir, i, j)), pair_kind,
                   (children[i], children[j]), pair_steps(config),
                   tuple({**args, "k": k, "pair": (i, j)}.items()))
              for i, j in _pairs(n)]
    return tasks


def instability(config: Any) -> list[Task]:
    """Parents, the independent pairs, then each rewind step k: every
    replicate's children and pairs, then k's record; the results last."""
    if not config.train.rewind_steps:
        raise FieldError("train.rewind_steps", "is empty: the instability analysis needs "
                         "at least one rewind step k")
    replicates = config.instability.replicates
    parents = [_id(layout.parent_dir(R, r)) for r in range(replicates)]
    tasks = [Task(parents[r], "parent", (), run_steps(config, 0), (("replicate", r),))
             for r in range(replicates)]
    tasks += [Task(_id(layout.independent_pair_file(R, a, b)), "independent_pair",
                   (parents[a], parents[b]), pair_steps(config), (("replicates", (a, b)),))
              for a, b in _pairs(replicates)]
    points = []
    for k in config.train.rewind_steps:
        pieces: list[Task] = []
        for r in range(replicates):
            pieces += children_tasks(config, layout.rewind_point_dir(R, r, k), (parents[r],),
                                     k, "child", "pair", replicate=r)
        points.append(_id(layout.rewind_point_file(R, k)))
        tasks += pieces
        for r in range(replicates) if config.instability.layerwise_barriers else ():
            tasks += layerwise_tasks(config, layout.rewind_point_dir(R, r, k), k, replicate=r)
        tasks.append(Task(points[-1], "rewind_point", tuple(t.id for t in pieces), 0,
                          (("k", k),)))
    independent = [t.id for t in tasks if t.kind == "independent_pair"]
    layerwise = [t.id for t in tasks if t.kind == "layerwise_pair"]
    tasks.append(Task(RESULTS, "instability_results",
                      (*parents, *independent, *points, *layerwise), 0))
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
    return [Task(_id(layout.layerwise_file(point_dir, i, j)), "layerwise_pair",
                 (_id(layout.child_dir(point_dir, i)), _id(layout.child_dir(point_dir, j))),
                 layerwise_steps(config), tuple({**args, "k": k, "pair": (i, j)}.items()))
            for i, j in _pairs(n)]


# -- IMP --------------------------------------------------------------------------------------

def level_pairs(levels: int, gaps: Any) -> list[tuple[int, int]]:
    """(L, L + j) for every gap j of --imp_level_barriers and every L with
    both levels in 0..levels, ordered by the later level (each is ready as
    soon as it can be)."""
    return sorted(((a, a + j) for j in gaps for a in range(levels + 1 - j)),
                  key=lambda p: (p[1], p[0]))


def imp_instability_levels(config: Any) -> list[int]:
    c = config.pruning
    return (list(c.instability_levels or range(c.levels + 1)) if c.instability else [])


def imp_baseline_levels(config: Any) -> list[int]:
    c = config.pruning
    return list(c.baseline_levels or range(1, c.levels + 1)) if c.baselines else []


def imp(config: Any) -> list[Task]:
    """Levels 0..N (each prunes the one before), then the baselines, then the
    sparse instability of each analysed level and of its baselines (with
    --layerwise_barriers each pair's layer-wise barriers, which the
    network's record summarizes); the results last."""
    c = config.pruning
    level = [_id(layout.level_dir(R, n)) for n in range(c.levels + 1)]
    tasks = [Task(level[0], "dense", (), run_steps(config, 0), (("level", 0),))]
    tasks += [Task(level[n], "level", (level[n - 1],), run_steps(config, c.rewind_step),
                   (("level", n),)) for n in range(1, c.levels + 1)]
    for a, b in level_pairs(c.levels, c.level_barriers):
        tasks.append(Task(_id(layout.level_path_file(R, a, b)), "level_path",
                          (level[a], level[b]), pair_steps(config), (("levels", (a, b)),)))
    for n in imp_baseline_levels(config):
        tasks += [Task(_id(layout.baseline_dir(R, n, name)), "baseline",
                       (level[n], level[0]), run_steps(config, c.rewind_step),
                       (("level", n), ("branch", name))) for name in c.baselines]
    baseline_levels = set(imp_baseline_levels(config))
    for n in imp_instability_levels(config):
        tasks += sparse_instability_tasks(config, n, level[n], level[0])
        for name in c.baselines if n in baseline_levels else ():
            tasks += sparse_instability_tasks(
                config, n, _id(layout.baseline_dir(R, n, name)), level[0], name)
    tasks.append(Task(RESULTS, "imp_results", tuple(t.id for t in tasks), 0))
    return tasks


def sparse_instability_tasks(config: Any, n: int, network: str, dense: str,
                             baseline: str | None = None) -> list[Task]:
    """Sparse instability of level ``n``'s subnetwork (``baseline`` None) or
    of one of its baselines: children from the network's own start (its
    mask, and init, on level 0's W_k), their pairs, then its record. A
    baseline's tasks carry its name (arg ``branch``); the network's task
    (``network``) provides its mask, level 0's (``dense``) W_k."""
    k = config.pruning.rewind_step
    point_dir = layout.sparse_instability_dir(R, n, baseline)
    args: dict[str, Any] = {"level": n, **({"branch": baseline} if baseline else {})}
    start = (network,) if network == dense else (network, dense)
    pieces = children_tasks(config, point_dir, start, k, "sparse_child", "sparse_pair", **args)
    if config.instability.layerwise_barriers:
        pieces += layerwise_tasks(config, point_dir, k, **args)
    return [*pieces, Task(_id(layout.sparse_instability_file(R, n, baseline)),
                          "sparse_instability", (network, *(t.id for t in pieces)), 0,
                          tuple(args.items()))]


# -- IMP across rewind steps ------------------------------------------------------------------

def imp_chain_config(config: Any, k: int) -> Any:
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


def imp_sweep(config: Any) -> list[Task]:
    """The dense run (level 0, keeping W_k for every k of --rewind_steps),
    then for each k its chain: IMP's tasks (``imp``) with ids under
    ``k_<k>/`` and the argument ``chain`` = k, level 0 being the shared
    dense run; the results last."""
    if not config.train.rewind_steps:
        raise FieldError("train.rewind_steps", "is empty: the rewind-step sweep needs at "
                         "least one rewind step k")
    dense = _id(layout.level_dir(R, 0))
    tasks = [Task(dense, "dense", (), run_steps(config, 0), (("level", 0),))]
    for k in config.train.rewind_steps:
        prefix = layout.k_name(k) + "/"

        def moved(task_id: str, prefix: str = prefix) -> str:
            return dense if task_id == dense else prefix + task_id

        tasks += [Task(moved(t.id), t.kind, tuple(moved(d) for d in t.deps), t.cost_steps,
                       (("chain", k), *t.args))
                  for t in imp(imp_chain_config(config, k)) if t.id != dense]
    tasks.append(Task(RESULTS, "imp_sweep_results", tuple(t.id for t in tasks), 0))
    return tasks
