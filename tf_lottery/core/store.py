"""Records on disk: each read from and written to its layout path through ``files``.

The one place where JSON files become records (``records.py``) and back:
writes are atomic (``files.write_json_atomic``); a file that is not JSON, or
not the record expected there, is damaged (``CorruptFileError``); a damaged
summary that its writer can recompute is set aside and reads as absent
(``files.read_summary``); a piece counts as done only when its record says
so (``layout.is_complete``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from tf_lottery import files
from tf_lottery.core import layout, records
from tf_lottery.errors import ConfigError, CorruptFileError

R = TypeVar("R", covariant=True)


class Kind(Protocol[R]):
    """A record type: ``records.PairRecord``, ``records.ExperimentResults``, ..."""

    def from_json(self, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> R: ...


class Record(Protocol):
    def to_json(self, root: str) -> dict[str, Any]: ...


def write(path: str, record: Record, root: str) -> None:
    """Writes ``record`` at ``path`` atomically, its paths relative to ``root``."""
    files.write_json_atomic(path, record.to_json(root))


def read(path: str, kind: Kind[R], root: str, recorded_root: str | None = None) -> R | None:
    """The record at ``path``; None if there is none.

    Raises:
      CorruptFileError: the file is not JSON, or not a record of ``kind``.
    """
    return files.read_json(path, lambda obj: kind.from_json(obj, root, recorded_root))


def read_summary(path: str, kind: Kind[R], root: str,
                 recorded_root: str | None = None) -> R | None:
    """Like ``read``, for a summary its writer recomputes: a damaged one is set
    aside and reads as absent. Only the holder of the directory's lease may
    call this (it renames files)."""
    return files.read_summary(path, lambda obj: kind.from_json(obj, root, recorded_root))


def read_complete(path: str, kind: Kind[R], root: str,
                  recorded_root: str | None = None) -> R | None:
    """The finished piece at ``path``: None if absent, unfinished or damaged
    (set aside, so that the caller recomputes it)."""
    found = read_summary(path, kind, root, recorded_root)
    return found if layout.is_complete(found) else None


def read_run(run_dir: str) -> records.RunRecord | None:
    """A run's results.json, damaged ones set aside (lease holder only)."""
    return read_summary(layout.results_file(run_dir), records.RunRecord, run_dir)


def write_run(run_dir: str, record: records.RunRecord) -> None:
    write(layout.results_file(run_dir), record, run_dir)


class IncompletePieceError(ConfigError):
    """A task read a piece it depends on that is absent, damaged or unfinished."""


def read_done(path: str, kind: Kind[R], root: str, recorded_root: str | None = None) -> R:
    """The finished piece at ``path``, which the caller depends on.

    Never sets anything aside: the piece belongs to another task.

    Raises:
      IncompletePieceError: the piece is absent, damaged or unfinished (its
        task must run, or run again, first).
    """
    try:
        found = read(path, kind, root, recorded_root)
    except CorruptFileError as e:
        raise IncompletePieceError(f"{path} is damaged ({e.reason}); run the task that "
                                   "writes it again") from None
    if not layout.is_complete(found):
        raise IncompletePieceError(f"{path} is not complete; run the task that writes it "
                                   "first")
    assert found is not None
    return found
