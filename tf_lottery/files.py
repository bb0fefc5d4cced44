"""Small filesystem helpers over tf.io.gfile (local paths and gs:// alike).

Every write goes where this process may write (``chief.write_path``: a
non-chief worker of a multi-worker launch writes its scratch directory, not
--model_dir) and every read sees this process's own writes first
(``chief.read_path``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import tensorflow as tf
from absl import logging

from tf_lottery import chief
from tf_lottery.core import layout
from tf_lottery.errors import ConfigError, CorruptFileError


def write_json_atomic(path: str, obj: Any) -> None:
    """Writes JSON to a temporary name and renames it over ``path``.

    A reader (or a resumed run) sees the old file or the new one, never a
    partial write, even if the process is killed mid-write.
    """
    if chief.is_redirected(path):
        path = chief.write_path(path)
        tf.io.gfile.makedirs(os.path.dirname(path))
    tmp = layout.temporary(path, uuid.uuid4().hex)
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(tmp, path, overwrite=True)


def create_json_exclusive(path: str, obj: Any) -> bool:
    """Writes JSON at ``path`` only if nothing is there; True if this call did.

    Local paths: a complete temporary file hard-linked into place, which
    fails if ``path`` exists (``O_EXCL`` semantics), so exactly one of several
    racing writers wins. Object stores (``gs://``) have no create-if-absent
    in ``tf.io.gfile``: there it is check-then-write (see ``lease`` for the
    same limit). A non-chief worker of a multi-worker launch creates its own
    copy (``chief.write_path``).
    """
    if chief.is_redirected(path):
        path = chief.write_path(path)
        tf.io.gfile.makedirs(os.path.dirname(path))
    tmp = layout.temporary(path, uuid.uuid4().hex)
    if "://" in path:
        if tf.io.gfile.exists(path):
            return False
        write_json_atomic(path, obj)
        return True
    with open(tmp, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.remove(tmp)


def read_json(path: str, parse: Callable[[Any], Any] | None = None) -> Any | None:
    """The parsed file (``parse(obj)`` if given), or None if it does not exist.

    Raises:
      CorruptFileError: the file exists but is not valid JSON (truncated,
        emptied, overwritten with something else), or ``parse`` cannot read it
        (a record with missing or ill-typed fields).
    """
    path = chief.read_path(path)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise CorruptFileError(path, "empty file")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CorruptFileError(path, "not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise CorruptFileError(path, f"truncated or garbled JSON: {e.msg.lower()} at "
                                     f"byte {e.pos} of {len(raw)}") from None
    if parse is None:
        return obj
    try:
        return parse(obj)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        what = f"missing {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
        raise CorruptFileError(path, f"not the record expected there: {what}") from None


def set_aside(path: str, reason: str = layout.CORRUPT) -> str:
    """Renames ``path`` to ``<path>.<reason>-<UTC time>`` (never deletes);
    returns the new name. Whoever looks can still inspect or restore the file.

    A non-chief worker renames only its own copy: a file of --model_dir is
    the chief's to set aside (its name is returned unchanged).
    """
    if chief.is_redirected(path):
        if not tf.io.gfile.exists(chief.write_path(path)):
            return path
        path = chief.write_path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = layout.set_aside_path(path, reason, stamp)
    if tf.io.gfile.exists(target):
        target = f"{target}-{uuid.uuid4().hex[:8]}"
    tf.io.gfile.rename(path, target)
    return target


def read_summary(path: str, parse: Callable[[Any], Any] | None = None) -> Any | None:
    """Like ``read_json``, for a summary its writer can recompute from the
    run's checkpoints: a damaged one is set aside (``set_aside``), said so in
    the log, and reported as absent, so the caller recomputes it.

    Only a process holding the directory's lease (``lease.Lease``) may call
    this: it renames files.
    """
    try:
        return read_json(path, parse)
    except CorruptFileError as e:
        moved = set_aside(path)
        logging.warning("%s is damaged (%s): set aside as %s; recomputing it from "
                        "the run's checkpoints.", path, e.reason, moved)
        return None


def ensure_writable_dir(path: str, flag: str = "model_dir") -> None:
    """Creates ``path`` and proves it writable, or raises a one-line error."""
    try:
        target = chief.write_path(path)
        tf.io.gfile.makedirs(target)
        probe = layout.write_probe(target, uuid.uuid4().hex)
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("ok")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        reason = getattr(e, "message", None) or getattr(e, "strerror", None) or str(e)
        raise ConfigError(f"--{flag}={path} is not writable ({reason.splitlines()[0]}); "
                          "choose a directory you can write to") from None


def remove_tree(path: str) -> None:
    """Removes the directory ``path`` where this process wrote it, if it exists
    (a non-chief worker never removes the chief's)."""
    target = chief.write_path(path)
    if tf.io.gfile.exists(target):
        tf.io.gfile.rmtree(target)
