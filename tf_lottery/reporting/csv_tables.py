"""The report's tables as CSV: the numbers behind every table and figure.

One CSV per table (``core.layout.report_csv``), beside ``report.md``, with
unrounded fractions (as ``report.json``): ``instability`` (k -> barrier of
every dense group, and its independent networks), ``imp`` (level -> density
-> accuracy -> baselines -> sparse barrier), ``stable_and_matching`` (the
IMP subnetwork against k) and ``paths`` (the mean ± std error along the
paths, every α: the values behind the interpolation figures). A mean ± std
is three columns: ``<name>_mean``, ``<name>_std``, ``<name>_n`` (empty where
unknown).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

from tf_lottery.config import branches
from tf_lottery.core.layout import SPLITS
from tf_lottery.core.records import Stat
from tf_lottery.reporting.summary import ImpSection, InstabilitySection, SparseFamily

Row = dict[str, object]


def _stat(name: str, s: Stat | None) -> Row:
    return {f"{name}_mean": None if s is None else s.mean,
            f"{name}_std": None if s is None else s.std,
            f"{name}_n": None if s is None else s.n}


def _barriers(barrier: dict[str, Stat] | None) -> Row:
    out: Row = {}
    for split in SPLITS:
        out.update(_stat(f"{split}_barrier", barrier[split] if barrier else None))
    return out


def _loss_barriers(loss: dict[str, Stat] | None) -> Row:
    out: Row = {}
    for split in SPLITS:
        out.update(_stat(f"{split}_loss_barrier", loss[split] if loss else None))
    return out


def _csv(rows: Sequence[Row]) -> str:
    header = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def instability_rows(sections: Sequence[InstabilitySection]) -> list[Row]:
    rows: list[Row] = []
    for s in sections:
        for r in s.rows:
            rows.append({"group": s.label, "runs": " ".join(s.runs), "k": r.k,
                         **_barriers(r.barrier), "stable": r.stable,
                         "complete": r.complete, **_loss_barriers(r.loss_barrier),
                         **_stat("children_test_accuracy", r.children_accuracy),
                         "source": r.source})
        if s.independent:
            rows.append({"group": s.label, "runs": " ".join(s.runs), "k": "independent",
                         **_barriers(s.independent), **_loss_barriers(s.independent_loss)})
    return rows


def imp_rows(sections: Sequence[ImpSection]) -> list[Row]:
    rows: list[Row] = []
    for s in sections:
        for r in s.rows:
            row: Row = {"group": s.label, "runs": " ".join(s.runs),
                        "rewind_step": s.rewind_step, "level": r.level,
                        "density": r.density, **_stat("test_accuracy", r.test_accuracy),
                        **_stat("train_accuracy", r.train_accuracy),
                        "matching": r.matching if s.dense else None}
            for name in branches.baseline_names():
                row.update(_stat(f"{name}_test_accuracy", r.baselines.get(name)))
            rows.append({**row, **_barriers(r.barrier), "stable": r.stable,
                         "source": r.source})
    return rows


def stable_and_matching_rows(families: Sequence[SparseFamily]) -> list[Row]:
    return [{"group": f.label, "runs": " ".join(f.runs), "level": f.level,
             "density": f.density, "k": r.k, **_stat("test_accuracy", r.test_accuracy),
             "matching": r.matching, **_barriers(r.barrier), "stable": r.stable}
            for f in families for r in f.rows]


def _path_rows(group: str, kind: str, k: int | None, paths) -> list[Row]:
    if not paths:
        return []
    grid = paths[0].alphas
    same = [p for p in paths if p.alphas == grid]
    rows: list[Row] = []
    for split in SPLITS:
        curves = np.array([p.error[split] for p in same], dtype=float)
        std = curves.std(axis=0, ddof=1) if len(same) > 1 else [None] * len(grid)
        for alpha, mean, sd in zip(grid, curves.mean(axis=0), std, strict=True):
            rows.append({"group": group, "network": kind, "k": k, "split": split,
                         "alpha": alpha, "error_mean": float(mean),
                         "error_std": None if sd is None else float(sd), "error_n": len(same)})
    return rows


def path_rows(instab: Sequence[InstabilitySection], imp: Sequence[ImpSection]) -> list[Row]:
    rows: list[Row] = []
    for s in instab:
        for k in sorted(s.paths):
            rows += _path_rows(s.label, "dense", k, s.paths[k])
        rows += _path_rows(s.label, "independent", None, s.independent_paths)
    for section in imp:
        for level in sorted(section.paths):
            rows += _path_rows(section.label, f"IMP level {level}", section.rewind_step,
                               section.paths[level])
    return rows


def tables(instab: Sequence[InstabilitySection], imp: Sequence[ImpSection],
           families: Sequence[SparseFamily]) -> dict[str, str]:
    """Table name -> CSV text, for the tables that have rows."""
    found = {"instability": instability_rows(instab), "imp": imp_rows(imp),
             "stable_and_matching": stable_and_matching_rows(families),
             "paths": path_rows(instab, imp)}
    return {name: _csv(rows) for name, rows in found.items() if rows}
