"""Where a result came from: the code's version and commit, and the numerics.

Written into ``config.json`` by the launch that creates a model_dir, so that a
result can be traced to the code and the CPU kernels that made it (a resume
elsewhere is checked per run: ``training.run_numerics``).
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import tf_lottery
from tf_lottery import numerics

KEY = "provenance"  # its key in config.json, outside the recipe


def git_commit(directory: str | None = None) -> str | None:
    """The commit of the git checkout holding this package, with ``+dirty``
    when tracked files differ from it; None for an installed wheel (also one
    inside a user's own repository, which does not track this package's
    files) or where git is missing."""
    here = directory or os.path.dirname(os.path.abspath(tf_lottery.__file__))

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", here, *args], capture_output=True, text=True,
                              timeout=10, check=False)

    try:
        head = git("rev-parse", "HEAD")
        ours = git("ls-files", "--error-unmatch", os.path.basename(numerics.__file__))
        if head.returncode != 0 or ours.returncode != 0:
            return None
        dirty = git("diff", "--quiet", "HEAD", "--", ".").returncode == 1
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def provenance() -> dict[str, Any]:
    """This launch's provenance record (the ``provenance`` key of config.json)."""
    return {"version": tf_lottery.__version__, "commit": git_commit(),
            "numerics": numerics.current().to_json()}


def recorded_numerics(config_json: dict[str, Any]) -> numerics.Numerics | None:
    """The numerics a config.json's first launch recorded (None before 0.2)."""
    found = (config_json.get(KEY) or {}).get("numerics")
    return numerics.Numerics.from_json(found) if found else None
