"""Resume checkpoints (rolling) and rewind checkpoints (permanent, W_k).

Resume checkpoints go through ``tf.train.CheckpointManager``, whose state file
is replaced atomically after the data files are complete, so a run killed
while saving resumes from the previous checkpoint. A rewind checkpoint is
written under its own prefix and then marked committed by an atomically
written ``.json``; a rewind checkpoint without that marker does not exist.

Files damaged after the fact (a full disk, an interrupted copy to a bucket)
are found when a run resumes (``resume``): a checkpoint that cannot be read
is set aside, never deleted, and the run resumes from the newest one that
can, so it still ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import re
import time

import tensorflow as tf
from absl import logging

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


# What reading a truncated or garbled checkpoint raises: DataLossError ("not
# an sstable", checksum mismatch), NotFoundError (a missing data file), and
# IndexError ("Read less bytes than requested"). A failed read assigns no
# variable, so the next candidate starts from clean state.
_DAMAGED = (tf.errors.OpError, IndexError)
_STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's list of its checkpoints
_RESUME_PREFIX = re.compile(r"ckpt-(\d+)$")


def _manager(
    checkpoint: tf.train.Checkpoint, run_dir: str, max_to_keep: int
) -> tf.train.CheckpointManager:
    directory = os.path.join(run_dir, RESUME_DIR)
    try:
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
    except ValueError as e:  # a state file without its latest entry (emptied)
        moved = files.set_aside(os.path.join(directory, _STATE_FILE), "damaged")
        logging.warning("%s (set aside as %s); rebuilding it from the checkpoints found.",
                        e, moved)
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)


def _resume_prefixes(directory: str, listed: list[str]) -> list[str]:
    """Resume checkpoints, oldest first: those the state file lists and any
    whose files exist without being listed (the state file was damaged, or
    the run was killed between writing a checkpoint and listing it)."""
    found = [p[:-len(".index")]
             for p in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index"))]
    by_step: dict[int, str] = {}
    for prefix in [*listed, *found]:
        m = _RESUME_PREFIX.search(prefix)
        if m:
            by_step.setdefault(int(m.group(1)), prefix)
    return [by_step[k] for k in sorted(by_step)]


def _set_aside(prefix: str, error: Exception, marker: str | None = None) -> None:
    """Renames a damaged checkpoint's files (and commit marker) to *.damaged-<time>."""
    paths = [p for p in (tf.io.gfile.glob(prefix + ".index")
                         + tf.io.gfile.glob(prefix + ".data-*")) if ".damaged-" not in p]
    if marker and tf.io.gfile.exists(marker):
        paths.append(marker)
    moved = [files.set_aside(p, "damaged") for p in paths]
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    logging.warning("Checkpoint %s cannot be read (%s): set aside as %s; resuming from "
                    "the newest older state.", prefix, reason, ", ".join(moved) or "-")


def _write_state(directory: str, prefixes: list[str]) -> None:
    """Rewrites the CheckpointManager's state file to list ``prefixes``."""
    path = os.path.join(directory, _STATE_FILE)
    if not prefixes:
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
        return
    names = [os.path.basename(p) for p in prefixes]
    # Timestamps after last_preserved_timestamp: the manager keeps rotating
    # these checkpoints (older ones would count as preserved forever).
    now = time.time()
    text = (f'model_checkpoint_path: "{names[-1]}"\n'
            + "".join(f'all_model_checkpoint_paths: "{n}"\n' for n in names)
            + "".join(f"all_model_checkpoint_timestamps: {now - 1:.6f}\n" for _ in names)
            + f"last_preserved_timestamp: {now - 2:.6f}\n")
    tmp = f"{path}.tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _remove_temp_leftovers(directory: str) -> None:
    """Removes the ``ckpt-N_temp`` folders of saves that were killed."""
    for path in tf.io.gfile.glob(os.path.join(directory, "*_temp")):
        logging.info("Removing %s, left by a checkpoint save that was interrupted.", path)
        tf.io.gfile.rmtree(path)


def resume(checkpoint: tf.train.Checkpoint, run_dir: str, max_to_keep: int
           ) -> tuple[tf.train.CheckpointManager, str | None]:
    """Restores ``checkpoint`` from the newest intact state saved in ``run_dir``.

    That is the run's final checkpoint if committed (the run finished; only
    its results.json is missing), else its newest resume checkpoint that can
    be read. One that cannot is set aside (files renamed ``*.damaged-<time>``,
    with a warning) and the next older one is tried; the manager's state file
    is rewritten to list what remains. Returns the resume manager and the
    prefix restored, or None when there is nothing to resume from.
    """
    directory = os.path.join(run_dir, RESUME_DIR)
    _remove_temp_leftovers(directory)
    manager = _manager(checkpoint, run_dir, max_to_keep)
    final = os.path.join(run_dir, FINAL_DIR)
    if is_committed(final):
        try:
            restore(checkpoint, final_prefix(run_dir))
            return manager, final_prefix(run_dir)
        except _DAMAGED as e:
            _set_aside(final_prefix(run_dir), e, marker=final + ".json")
    listed = list(manager.checkpoints)
    prefixes = _resume_prefixes(directory, listed)
    restored = None
    while prefixes and restored is None:
        try:
            restore(checkpoint, prefixes[-1])
            restored = prefixes[-1]
        except _DAMAGED as e:
            _set_aside(prefixes.pop(), e)
    if prefixes != listed:
        _write_state(directory, prefixes)
        manager = _manager(checkpoint, run_dir, max_to_keep)
    return manager, restored
