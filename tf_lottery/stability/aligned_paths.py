"""Barriers between two checkpoints before and after aligning the second to the first.

The instability analysis interpolates W(α) = (1−α)·W_A + α·W_B. Networks that
compute nearly the same function with their hidden units in a different
order still show a barrier on that path; aligning B's units to A's first
(weight matching, ``alignment``) and interpolating towards P(W_B) measures
the barrier *modulo permutation* (Entezari et al. 2022; Ainsworth et al.
2023). This module loads both endpoints into one trainer's model, aligns
them with the permutation spec of that model's graph
(``models.permutation``), and evaluates both paths with the path evaluator
the instability analysis uses (``path_evaluator.PathEvaluator``, with the
same ``--bn_mode``: under ``recompute`` BatchNorm statistics are
re-estimated at every point of either path).

The endpoints are the weights a run's evaluation reports (its moving
averages with ``--ema_decay``), as in ``PathEvaluator.endpoint``. A pruned
pair (``--experiment=imp`` checkpoints) is aligned with its masks: B's mask
moves with B's weights, so the aligned endpoints generally have different
masks and the points between them are denser than either.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import trackable_object_graph_pb2

from tf_lottery.config import ExperimentConfig
from tf_lottery.core import records
from tf_lottery.core.layout import SPLITS
from tf_lottery.errors import ConfigError
from tf_lottery.models import permutation
from tf_lottery.stability import alignment, barrier, interpolation
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.training.trainer import Trainer


def _saved_model_shapes(path: str) -> list[tuple[int, ...]]:
    """Shapes of the variables saved under the checkpoint's ``model`` object.

    Read from the checkpoint's object graph, not from key prefixes: a
    variable is saved under the first path that reaches it (with
    ``--ema_decay`` that is ``ema/_sources/...``, not ``model/...``).
    """
    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    stack = [c.node_id for c in graph.nodes[0].children if c.local_name == "model"]
    seen, out = set(), []
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        out += [tuple(shapes[a.checkpoint_key]) for a in graph.nodes[node].attributes
                if a.name == "VARIABLE_VALUE"]
        stack += [c.node_id for c in graph.nodes[node].children]
    return sorted(out)


def check_checkpoint(trainer: Trainer, path: str, flag: str) -> None:
    """Raises ``ConfigError`` unless ``path`` holds every weight of the model.

    Catches a missing checkpoint and one written by a different recipe (other
    model, classes, or a pruned run read as a dense one) before anything is
    evaluated, by comparing the saved model's variable shapes with the
    model's (a restore that fails half way would also leave a page of
    warnings behind). Overwrites the model's weights.
    """
    if not tf.io.gfile.exists(path + ".index"):
        raise ConfigError(f"--{flag}={path}: no checkpoint there ({path}.index not found)")
    saved = _saved_model_shapes(path)
    wanted = sorted(tuple(v.shape) for v in trainer.model.weights)
    if saved != wanted:
        raise ConfigError(
            f"--{flag}={path} holds a model with {len(saved)} variables, not the "
            f"{len(wanted)} of --model={trainer.config.model.name} as this recipe builds "
            f"it (different recipe? a pruned run needs its IMP flagfile)")
    # Extra values in the file (optimizer state, step) are expected.
    status = tf.train.Checkpoint(model=trainer.model).read(path).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError:
        raise ConfigError(f"--{flag}={path} does not hold every weight of "
                          f"--model={trainer.config.model.name}") from None


def endpoint_weights(trainer: Trainer, path: str) -> dict[str, np.ndarray]:
    """The evaluated weights of checkpoint ``path``, by spec name (the model
    and ``trainer.step`` are left holding that checkpoint)."""
    trainer.restore_evaluated_weights(path)
    return permutation.get_weights(trainer.model)


def path_arrays(trainer: Trainer, weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``weights`` in the order of ``interpolation.path_variables``."""
    names = {v.ref(): n for n, v in permutation.weight_variables(trainer.model).items()}
    return [weights[names[v.ref()]] for v in interpolation.path_variables(trainer.model)]


def write_aligned(trainer: Trainer, weights: dict[str, np.ndarray], prefix: str) -> str:
    """Writes ``weights`` as a checkpoint the trainer restores for evaluation.

    Holds the model weights and step (with ``--ema_decay`` also the moving
    averages, set to the same weights, since those are what is evaluated);
    no optimizer state: it is an endpoint to evaluate or interpolate, not a
    point to resume training from.
    """
    if tf.io.gfile.exists(prefix + ".index"):
        raise ConfigError(f"--aligned_out={prefix} exists; give a new prefix")
    permutation.set_weights(trainer.model, weights)
    parts = {"model": trainer.model, "step": trainer.step}
    if trainer.ema is not None:
        for average, source in zip(trainer.ema.averages, trainer.ema.sources, strict=True):
            average.assign(source)
        parts["ema"] = trainer.ema
    return tf.train.Checkpoint(**parts).write(prefix)


def evaluate_named_path(evaluator: PathEvaluator, a: dict[str, np.ndarray],
                        b: dict[str, np.ndarray], label: str = "path") -> dict:
    """``PathEvaluator.curves`` (with barriers) between endpoints given by spec name."""
    trainer = evaluator.trainer
    return evaluator.curves(path_arrays(trainer, a), path_arrays(trainer, b), label=label)


MATCHING_SEED = 0  # the experiments' matching order (the CLI's --align_seed default)
MATCHING_MAX_ITER = 100  # and cap on passes (--align_max_iter)


def align_endpoints(spec: permutation.PermutationSpec, weights_a: dict[str, np.ndarray],
                    weights_b: dict[str, np.ndarray], seed: int = 0,
                    max_iter: int = 100) -> tuple[dict[str, np.ndarray], dict]:
    """B's weights aligned to A's by weight matching, and a JSON-ready record
    of the matching (passes, objective trace, groups, wall time)."""
    started = time.perf_counter()
    perms, info = alignment.weight_matching(spec, weights_a, weights_b, seed, max_iter)
    seconds = time.perf_counter() - started
    logging.info("Weight matching: %d groups, %d passes, objective %.4g -> %.4g (%.2f s)",
                 len(spec.groups), info.iterations, info.objective[0], info.objective[-1],
                 seconds)
    record = {**info.to_dict(), "groups": len(spec.groups), "seed": seed,
              "wall_time_s": round(seconds, 3), "unsupported_layers": list(spec.unsupported)}
    return alignment.apply_permutation(weights_b, spec, perms), record


def aligned_barriers(trainer: Trainer, config: ExperimentConfig, checkpoint_a: str,
                     checkpoint_b: str, *, seed: int = 0, max_iter: int = 100,
                     aligned_out: str | None = None) -> dict:
    """Raw and aligned paths A -> B and A -> P(B), their barriers, the matching.

    Returns ``{"raw": path, "aligned": path, "matching": {...}}`` where a path
    holds ``alphas``, ``{test,train}_{error,loss}`` curves, ``barrier`` and
    ``loss_barrier`` per split; ``matching`` holds the iterations, the objective trace, the
    number of groups and the matching's wall time.
    """
    for path, flag in ((checkpoint_a, "checkpoint_a"), (checkpoint_b, "checkpoint_b")):
        check_checkpoint(trainer, path, flag)
    if aligned_out and tf.io.gfile.exists(aligned_out + ".index"):
        raise ConfigError(f"--aligned_out={aligned_out} exists; give a new prefix")
    spec = permutation.permutation_spec(trainer.model)
    weights_a = endpoint_weights(trainer, checkpoint_a)
    weights_b = endpoint_weights(trainer, checkpoint_b)
    aligned_b, matching = align_endpoints(spec, weights_a, weights_b, seed, max_iter)
    if aligned_out:
        write_aligned(trainer, aligned_b, aligned_out)  # step: B's, restored last
    evaluator = PathEvaluator.for_config(trainer, config)
    return {
        "endpoints": [checkpoint_a, checkpoint_b],
        "bn_mode": evaluator.bn_mode,
        "raw": evaluate_named_path(evaluator, weights_a, weights_b, "raw path"),
        "aligned": evaluate_named_path(evaluator, weights_a, aligned_b, "aligned path"),
        "matching": matching,
        "aligned_checkpoint": aligned_out,
    }


# -- in the experiments: the aligned part of a pair ------------------------------------

def aligned_pair(evaluator: PathEvaluator, checkpoint_a: str, checkpoint_b: str, *,
                 label: str,
                 on_point: Callable[[int, float, dict[str, float]], None] | None = None
                 ) -> records.AlignedPathRecord | None:
    """The path from A to B aligned to A, for ``experiments.toolkit.evaluate_pair``.

    None unless the evaluator's ``align`` is 'weights'. The endpoints are
    the checkpoints' evaluated weights (as on the raw path), matched with
    seed ``MATCHING_SEED`` and at most ``MATCHING_MAX_ITER`` passes, and
    the path is evaluated with the pair's evaluator (its α grid and
    ``--bn_mode``: under ``recompute`` every point's BatchNorm statistics
    are re-estimated). ``on_point`` gets every point's metrics as it is
    evaluated (the caller files the curve in TensorBoard).
    """
    if evaluator.align == "none":
        return None
    if evaluator.align != "weights":
        raise ValueError(f"unknown alignment {evaluator.align!r}")
    trainer = evaluator.trainer
    spec = permutation.permutation_spec(trainer.model)
    weights_a = endpoint_weights(trainer, checkpoint_a)
    weights_b = endpoint_weights(trainer, checkpoint_b)
    aligned_b, matching = align_endpoints(spec, weights_a, weights_b, MATCHING_SEED,
                                          MATCHING_MAX_ITER)
    started = time.perf_counter()
    curves = evaluator.curves(path_arrays(trainer, weights_a), path_arrays(trainer, aligned_b),
                              label=f"{label} aligned", on_point=on_point)
    record = records.AlignedPathRecord(
        error={s: curves[f"{s}_error"] for s in SPLITS},
        loss={s: curves[f"{s}_loss"] for s in SPLITS},
        barrier=dict(curves["barrier"]),
        matching=records.MatchingRecord.from_json(matching),
        wall_time_s=round(time.perf_counter() - started, 3),
        loss_barrier=dict(curves["loss_barrier"]))
    logging.info("%s aligned: test barrier %.4f, train barrier %.4f (matching %.2f s, "
                 "%d passes)", label, record.barrier["test"], record.barrier["train"],
                 record.matching.wall_time_s, record.matching.iterations)
    return record


def over_pairs(pairs: list[records.PairRecord]) -> dict[str, records.Stat] | None:
    """Aligned barrier, mean ± std over ``pairs``, as the raw one
    (``barrier.summarize``); None unless every pair has its aligned path."""
    if not pairs or any(p.aligned is None for p in pairs):
        return None
    return {s: records.Stat.from_json(barrier.summarize(
        [p.aligned.barrier[s] for p in pairs if p.aligned])) for s in SPLITS}


def over_replicates(replicates: list[records.ReplicateRecord]
                    ) -> dict[str, records.Aggregate] | None:
    """Aligned barrier over replicates and their pairs, as the raw one
    (``barrier.aggregate``); None unless every pair has its aligned path."""
    pairs = [rep.pairs for rep in replicates]
    if not pairs or any(over_pairs(p) is None for p in pairs):
        return None
    return {s: records.Aggregate.from_json(barrier.aggregate(
        [[p.aligned.barrier[s] for p in rep if p.aligned] for rep in pairs]))
        for s in SPLITS}
