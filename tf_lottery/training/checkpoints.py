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

Every worker of a multi-worker launch saves (a save is a collective), but
only the chief into the run directory: the others save into their scratch
directory (``chief``) and read the chief's checkpoints where they wrote none.
The housekeeping of the run directory (leftovers of killed saves, the
manager's state file) is the chief's alone.
"""

from __future__ import annotations

import os
import time

import tensorflow as tf
from absl import logging

from tf_lottery import chief, files
from tf_lottery.core import layout, records, store


def rewind_prefix(run_dir: str, step: int) -> str:
    """Checkpoint prefix of W_k under ``run_dir``."""
    return layout.rewind_checkpoint(run_dir, step)


def final_prefix(run_dir: str) -> str:
    """Checkpoint prefix of the run's final weights W_T."""
    return layout.final_checkpoint(run_dir)


def is_committed(directory: str) -> bool:
    return chief.exists(layout.marker_file(directory))


def has_rewind(run_dir: str, step: int) -> bool:
    return is_committed(layout.rewind_dir(run_dir, step))


def save_permanent(checkpoint: tf.train.Checkpoint, run_dir: str, directory: str,
                   step: int) -> str:
    """Writes ``directory/ckpt`` then commits it with ``directory.json``.

    Idempotent: a committed checkpoint is never rewritten.
    """
    prefix = layout.permanent_checkpoint(directory)
    if is_committed(directory):
        return prefix
    chief.makedirs(directory)
    checkpoint.write(chief.write_path(prefix))
    store.write(layout.marker_file(directory), records.CheckpointMarker(step, prefix), run_dir)
    return prefix


def save_rewind(checkpoint: tf.train.Checkpoint, run_dir: str, step: int) -> str:
    """Saves W_k (weights, optimizer state, step) once; later calls are no-ops."""
    return save_permanent(checkpoint, run_dir, layout.rewind_dir(run_dir, step), step)


def save_final(checkpoint: tf.train.Checkpoint, run_dir: str) -> str:
    """Saves the run's final state W_T (kept permanently, unlike resume ones)."""
    step = int(checkpoint.step.numpy())
    return save_permanent(checkpoint, run_dir, layout.final_dir(run_dir), step)


def rewind_steps_saved(run_dir: str) -> list[int]:
    """Steps k whose rewind checkpoint W_k is committed under ``run_dir``."""
    return sorted(layout.rewind_step_of_marker(p)
                  for p in chief.glob(layout.rewind_marker_pattern(run_dir)))


def restore(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restores every variable of ``checkpoint`` that exists in ``path``.

    ``expect_partial`` because a caller may restore only part of what was
    saved (e.g. weights without optimizer state when the optimizer is reset).
    """
    checkpoint.read(chief.read_path(path, ".index")).expect_partial()


# What reading a truncated or garbled checkpoint raises: DataLossError ("not
# an sstable", checksum mismatch), NotFoundError (a missing data file), and
# IndexError ("Read less bytes than requested"). A failed read assigns no
# variable, so the next candidate starts from clean state.
_DAMAGED = (tf.errors.OpError, IndexError)


def _manager(
    checkpoint: tf.train.Checkpoint, run_dir: str, max_to_keep: int
) -> tf.train.CheckpointManager:
    def make() -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(checkpoint,
                                          chief.write_path(layout.resume_dir(run_dir)),
                                          max_to_keep=max_to_keep,
                                          checkpoint_name=layout.CHECKPOINT_NAME)
    try:
        return make()
    except ValueError as e:  # a state file without its latest entry (emptied)
        moved = files.set_aside(layout.resume_state_file(run_dir), layout.DAMAGED)
        logging.warning("%s (set aside as %s); rebuilding it from the checkpoints found.",
                        e, moved)
        return make()


def _resume_prefixes(run_dir: str, listed: list[str]) -> list[str]:
    """Resume checkpoints, oldest first: those the state file lists and any
    whose files exist without being listed (the state file was damaged, or
    the run was killed between writing a checkpoint and listing it)."""
    found = [p[:-len(".index")] for p in chief.glob(layout.resume_index_pattern(run_dir))]
    by_step: dict[int, str] = {}
    for prefix in [*listed, *found]:
        step = layout.resume_step(prefix)
        if step is not None:
            by_step.setdefault(step, prefix)
    return [by_step[k] for k in sorted(by_step)]


def _set_aside(prefix: str, error: Exception, marker: str | None = None) -> None:
    """Renames a damaged checkpoint's files (and commit marker) to *.damaged-<time>."""
    paths = [p for p in (tf.io.gfile.glob(prefix + ".index")
                         + tf.io.gfile.glob(prefix + ".data-*"))
             if not layout.is_set_aside(p, layout.DAMAGED)]
    if marker and tf.io.gfile.exists(marker):
        paths.append(marker)
    moved = [files.set_aside(p, layout.DAMAGED) for p in paths]
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    logging.warning("Checkpoint %s cannot be read (%s): set aside as %s; resuming from "
                    "the newest older state.", prefix, reason, ", ".join(moved) or "-")


def _write_state(run_dir: str, prefixes: list[str]) -> None:
    """Rewrites the CheckpointManager's state file to list ``prefixes``."""
    path = layout.resume_state_file(run_dir)
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
    tmp = layout.temporary(path, "state")
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _remove_temp_leftovers(run_dir: str) -> None:
    """Removes the ``ckpt-N_temp`` folders of saves that were killed (those
    this process writes: a non-chief worker's scratch starts empty)."""
    for path in tf.io.gfile.glob(chief.write_path(layout.resume_temp_pattern(run_dir))):
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
    _remove_temp_leftovers(run_dir)
    manager = _manager(checkpoint, run_dir, max_to_keep)
    final = layout.final_dir(run_dir)
    if is_committed(final):
        try:
            restore(checkpoint, final_prefix(run_dir))
            return manager, final_prefix(run_dir)
        except _DAMAGED as e:
            _set_aside(final_prefix(run_dir), e, marker=layout.marker_file(final))
    listed = list(manager.checkpoints)
    prefixes = _resume_prefixes(run_dir, listed)
    restored = None
    while prefixes and restored is None:
        try:
            restore(checkpoint, prefixes[-1])
            restored = prefixes[-1]
        except _DAMAGED as e:
            _set_aside(prefixes.pop(), e)
    if prefixes != listed and chief.is_chief():
        # A non-chief worker's manager lists only its own saves, in scratch.
        _write_state(run_dir, prefixes)
        manager = _manager(checkpoint, run_dir, max_to_keep)
    return manager, restored
