"""Which process of a launch writes --model_dir: the chief alone.

Under ``--strategy=multi_worker_mirrored`` every worker runs the whole
experiment in lockstep: each makes the same decisions (which runs are done,
where to resume) and calls every checkpoint save, because a save is a
collective (a SyncOnRead variable, such as BatchNorm's moving statistics, is
all-reduced across workers when it is saved). But only the chief
(``strategy.extended.should_checkpoint``) may write the run directory; as in
TensorFlow's model garden and Keras' ``distributed_file_utils``, the other
workers write what they must to a scratch directory of their own, outside
--model_dir on their local disk, removed when the launch ends, and skip what
no one reads (TensorBoard events: their writers are no-ops).

A non-chief worker reads through an overlay: a path it wrote in this launch
is read from its scratch, any other from --model_dir (the chief's files,
from earlier launches or from earlier in this one). So its decisions follow
its own writes, as the chief's follow the chief's, whichever of the two runs
ahead; and a relaunched worker, whose scratch starts empty, resumes from
the chief's checkpoints, as the chief does.

With every other strategy (one process; TPUStrategy drives every host of a
pod slice from one process) that process is the chief and paths map to
themselves. ``writing_as`` sets the role for a launch; ``files``,
``checkpoints``, masks and summary writers go through ``write_path``,
``read_path`` and ``summary_writer``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import tensorflow as tf
from absl import logging

from tf_lottery.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class _Scratch:
    model_dir: str  # as given, without a trailing slash
    scratch: str

    def under(self, path: str) -> str | None:
        """``path`` relative to --model_dir ('' for the directory itself), or None."""
        if path.rstrip("/") == self.model_dir:
            return ""
        if path.startswith(self.model_dir + "/"):
            return path[len(self.model_dir) + 1:]
        return None


# The role of this process in the current launch (None: the chief).
_scratch: _Scratch | None = None


def is_chief() -> bool:
    """Whether this process writes --model_dir (the only process, or the chief)."""
    return _scratch is None


def scratch_dir(model_dir: str, task_type: str, task_id: int) -> str:
    """The local scratch directory of worker ``task_type:task_id`` for ``model_dir``.

    Fixed per worker and run directory, so that what a killed launch left
    there is removed by the next one.
    """
    tag = hashlib.sha256(model_dir.rstrip("/").encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"tf_lottery-{tag}-{task_type}-{task_id}")


@contextlib.contextmanager
def writing_as(strategy: tf.distribute.Strategy, model_dir: str) -> Iterator[None]:
    """Within the block this process writes as ``strategy`` says: the chief
    to ``model_dir``, any other worker to its scratch directory (created
    empty, removed on the way out)."""
    global _scratch
    if strategy.extended.should_checkpoint:
        yield
        return
    resolver = strategy.cluster_resolver
    scratch = scratch_dir(model_dir, resolver.task_type, resolver.task_id)
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    logging.info("Worker %s:%d is not the chief: it writes %s, not %s.",
                 resolver.task_type, resolver.task_id, scratch, model_dir)
    _scratch = _Scratch(model_dir.rstrip("/"), scratch)
    try:
        yield
    finally:
        _scratch = None
        shutil.rmtree(scratch, ignore_errors=True)


def _workers(strategy: tf.distribute.Strategy) -> int:
    """How many processes run the launch in lockstep (1 unless multi-worker;
    a TPUStrategy is one process however many hosts its slice has)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, ())) for job in ("chief", "worker"))


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Returns on each worker once every worker has called it (an all-reduce
    of one number); nothing to wait for with one process."""
    if _workers(strategy) > 1:
        ones = strategy.run(lambda: tf.constant(1.0))
        strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)


def check_shared(strategy: tf.distribute.Strategy, chief_file: str) -> None:
    """Once the chief has written ``chief_file`` (in --model_dir), checks that
    every other worker reads it there: the workers resume from the chief's
    checkpoints, so --model_dir must be one directory they all see (a bucket,
    a shared file system), not a local directory of each host.

    Raises:
      ConfigError: this worker does not see the chief's file.
    """
    barrier(strategy)
    if _scratch is not None and not tf.io.gfile.exists(chief_file):
        resolver = strategy.cluster_resolver
        raise ConfigError(
            f"--model_dir={_scratch.model_dir}: worker {resolver.task_type}:"
            f"{resolver.task_id} does not see the chief's {os.path.basename(chief_file)} "
            "there; every worker must read the same --model_dir (a gs:// bucket or a "
            "shared file system), since all of them resume from the chief's checkpoints")


def write_path(path: str) -> str:
    """Where this process writes ``path``: itself on the chief; on another
    worker, a path under --model_dir maps into its scratch directory."""
    if _scratch is None:
        return path
    rel = _scratch.under(path)
    if rel is None:
        return path
    return os.path.join(_scratch.scratch, rel) if rel else _scratch.scratch


def is_redirected(path: str) -> bool:
    """Whether this process writes ``path`` somewhere else (a non-chief
    worker, a path in --model_dir)."""
    return write_path(path) != path


def read_path(path: str, suffix: str = "") -> str:
    """Where this process reads ``path``: its own copy if it wrote one in
    this launch (``path + suffix`` exists there; a checkpoint prefix is
    found by its ``.index``), else ``path`` itself."""
    own = write_path(path)
    if own != path and tf.io.gfile.exists(own + suffix):
        return own
    return path


def exists(path: str) -> bool:
    return tf.io.gfile.exists(read_path(path))


def glob(pattern: str) -> list[str]:
    """The paths matching ``pattern`` that this process can read (its own
    writes and --model_dir's), named as under --model_dir, sorted."""
    found = set(tf.io.gfile.glob(pattern))
    if _scratch is not None and is_redirected(pattern):
        n = len(_scratch.scratch)
        found.update(_scratch.model_dir + p[n:] for p in tf.io.gfile.glob(write_path(pattern)))
    return sorted(found)


def makedirs(path: str) -> None:
    """Creates the directory where this process writes ``path``."""
    tf.io.gfile.makedirs(write_path(path))


def summary_writer(logdir: str) -> tf.summary.SummaryWriter:
    """A TensorBoard writer into ``logdir``; a no-op on non-chief workers,
    whose events no one reads (TensorBoard would show each scalar twice)."""
    if is_redirected(logdir):
        return tf.summary.create_noop_writer()
    return tf.summary.create_file_writer(logdir)
