"""Small filesystem helpers over tf.io.gfile (local paths and gs:// alike)."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import tensorflow as tf

from tf_lottery.errors import ConfigError


def write_json_atomic(path: str, obj: Any) -> None:
    """Writes JSON to a temporary name and renames it over ``path``.

    A reader (or a resumed run) sees the old file or the new one, never a
    partial write, even if the process is killed mid-write.
    """
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(tmp, path, overwrite=True)


def read_json(path: str) -> Any | None:
    """The parsed file, or None if it does not exist."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


def ensure_writable_dir(path: str, flag: str = "model_dir") -> None:
    """Creates ``path`` and proves it writable, or raises a one-line error."""
    try:
        tf.io.gfile.makedirs(path)
        probe = os.path.join(path, f".write-probe-{uuid.uuid4().hex}")
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("ok")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        reason = getattr(e, "message", None) or getattr(e, "strerror", None) or str(e)
        raise ConfigError(f"--{flag}={path} is not writable ({reason.splitlines()[0]}); "
                          "choose a directory you can write to") from None
