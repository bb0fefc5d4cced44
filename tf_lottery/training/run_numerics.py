"""A run's CPU numerics: recorded when it starts, checked when it resumes.

Bits are promised only under one set of kernels (``tf_lottery.numerics``), so
a run resumed on a machine that computes with others would end as a mix that
no single machine reproduces. A run therefore records, in its own
``numerics.json``, what its checkpoints were computed with; a resume under
different numerics is refused with one line, unless the launch says
``--allow_numerics_change``, which continues and keeps the change on record.
"""

from __future__ import annotations

from typing import Any

from absl import logging

from tf_lottery import chief, files, numerics
from tf_lottery.core import layout
from tf_lottery.errors import ConfigError, CorruptFileError

ALLOW_FLAG = "--allow_numerics_change"


def _read(path: str) -> dict[str, Any] | None:
    try:
        return files.read_json(path)
    except CorruptFileError:
        return None  # unknown numerics: recorded again from this session


def claim(run_dir: str, resumed: bool, allow_change: bool) -> numerics.Numerics:
    """Records or checks the numerics of the run in ``run_dir``.

    A run that starts (``resumed`` False), or one whose record is missing (a
    run of an older release), records this process's numerics.

    Raises:
      ConfigError: the run's checkpoints were computed with other numerics
        and ``allow_change`` is False.
    """
    now = numerics.current()
    path = layout.numerics_file(run_dir)
    recorded = _read(path) if resumed else None
    if recorded is None:
        if chief.is_chief():
            files.write_json_atomic(path, {"numerics": now.to_json(), "resumed_under": []})
        return now
    before = numerics.Numerics.from_json(recorded["numerics"])
    if before.same_bits_as(now):
        return now
    change = (f"run {run_dir} was computed with {before.describe()}; this machine "
              f"computes with {now.describe()}")
    if not allow_change:
        raise ConfigError(
            f"{change}. Resuming would mix kernels within one run: relaunch where "
            f"{numerics.ENV} gives the first numerics (docs/numerics.md), or pass "
            f"{ALLOW_FLAG} to continue and keep the change on record")
    logging.warning("%s; continuing (%s): the run is no longer bit-reproducible.",
                    change, ALLOW_FLAG)
    if chief.is_chief():
        files.write_json_atomic(path, {**recorded, "resumed_under": [
            *recorded.get("resumed_under", []), now.to_json()]})
    return now
