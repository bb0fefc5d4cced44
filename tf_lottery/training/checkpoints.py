"""Resume checkpoints (rolling) and rewind checkpoints (permanent, W_k).

Resume checkpoints go through ``tf.train.CheckpointManager``, whose state file
is replaced atomically after the data files are complete, so a run killed
while saving resumes from the previous checkpoint. A rewind checkpoint is
written under its own prefix and then marked committed by an atomically
written ``.json``; a rewind checkpoint without that marker does not exist.
"""

from __future__ import annotations

import os

import tensorflow as tf

from tf_lottery import files

REWIND_DIR = "rewind"
RESUME_DIR = "checkpoints"


FINAL_DIR = "final"


def _rewind_dir(run_dir: str, step: int) -> str:
    return os.path.join(run_dir, REWIND_DIR, f"step_{step:09d}")


def rewind_prefix(run_dir: str, step: int) -> str:
    """Checkpoint prefix of W_k under ``run_dir``."""
    return os.path.join(_rewind_dir(run_dir, step), "ckpt")


def final_prefix(run_dir: str) -> str:
    """Checkpoint prefix of the run's final weights W_T."""
    return os.path.join(run_dir, FINAL_DIR, "ckpt")


def is_committed(directory: str) -> bool:
    return tf.io.gfile.exists(directory + ".json")


def has_rewind(run_dir: str, step: int) -> bool:
    return is_committed(_rewind_dir(run_dir, step))


def save_permanent(checkpoint: tf.train.Checkpoint, directory: str, step: int) -> str:
    """Writes ``directory/ckpt`` then commits it with ``directory.json``.

    Idempotent: a committed checkpoint is never rewritten.
    """
    prefix = os.path.join(directory, "ckpt")
    if is_committed(directory):
        return prefix
    tf.io.gfile.makedirs(directory)
    checkpoint.write(prefix)
    files.write_json_atomic(directory + ".json", {"step": step, "path": prefix})
    return prefix


def save_rewind(checkpoint: tf.train.Checkpoint, run_dir: str, step: int) -> str:
    """Saves W_k (weights, optimizer state, step) once; later calls are no-ops."""
    return save_permanent(checkpoint, _rewind_dir(run_dir, step), step)


def save_final(checkpoint: tf.train.Checkpoint, run_dir: str) -> str:
    """Saves the run's final state W_T (kept permanently, unlike resume ones)."""
    step = int(checkpoint.step.numpy())
    return save_permanent(checkpoint, os.path.join(run_dir, FINAL_DIR), step)


def rewind_steps_saved(run_dir: str) -> list[int]:
    """Steps k whose rewind checkpoint W_k is committed under ``run_dir``."""
    pattern = os.path.join(run_dir, REWIND_DIR, "step_*.json")
    return sorted(int(os.path.basename(p)[5:-5]) for p in tf.io.gfile.glob(pattern))


def restore(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restores every variable of ``checkpoint`` that exists in ``path``.

    ``expect_partial`` because a caller may restore only part of what was
    saved (e.g. weights without optimizer state when the optimizer is reset).
    """
    checkpoint.read(path).expect_partial()


def resume_manager(
    checkpoint: tf.train.Checkpoint, run_dir: str, max_to_keep: int
) -> tf.train.CheckpointManager:
    return tf.train.CheckpointManager(
        checkpoint, os.path.join(run_dir, RESUME_DIR), max_to_keep=max_to_keep
    )
