"""The report of a model_dir (or several): the paper's figures and tables from records.

``build`` reads every experiment under the folders it is given
(``collect``) into figures and tables (``summary``, ``figures``,
``markdown``, ...); ``write`` writes them. ``python -m tf_lottery.report``
(``tf_lottery/report.py``) is its command line, which says what each file
holds; ``reporting.tensorboard_figures`` draws the same figures into
TensorBoard while an experiment runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from tf_lottery.config import branches
from tf_lottery.core import layout
from tf_lottery.core.layout import SPLITS
from tf_lottery.errors import ConfigError, CorruptFileError
from tf_lottery.reporting import (
    alignment_figures,
    collect,
    csv_tables,
    curve_figures,
    figures,
    instrument_figures,
    markdown,
    summary,
    surface_figures,
)
from tf_lottery.reporting.collect import Path

# Markers of the baselines' curves, in the order the branches are registered.
_BASELINE_MARKERS = ("^", "v", "s", "D", "P", "X")

FIGURE_TEXT = {
    layout.INSTABILITY_FIGURE: "error barrier vs rewind step k (test and train), mean ± "
                               "std, stability threshold",
    layout.IMP_FIGURE: "test accuracy vs percent of weights remaining: IMP, random "
                       "pruning, random reinitialization, dense accuracy",
    layout.INDEPENDENT_PATHS_FIGURE: "error along the path between independently "
                                     "initialized and trained networks",
    layout.PATHS_FIGURE: "the mean paths of every k overlaid on one shared y axis, a "
                         "panel per split, and the independent networks' paths in a "
                         "panel of their own scale",
    layout.IMP_REWIND_FIGURE: "IMP subnetworks against the rewind step k: test accuracy "
                              "(dense accuracy line) and test error barrier",
}


@dataclasses.dataclass
class Report:
    model_dir: str
    experiments: list[collect.Experiment]
    instability: list[summary.InstabilitySection]
    imp: list[summary.ImpSection]
    sparse: list[summary.SparseFamily]
    figures: dict[str, Figure]
    missing: list[str]
    markdown: str
    tables: dict


def roots(model_dir: str) -> list[str]:
    """The folders of ``--model_dir``: one, or a comma-separated list."""
    found = [r.strip().rstrip("/") or "/" for r in model_dir.split(",") if r.strip()]
    if not found:
        raise ConfigError("--model_dir is empty: the experiment(s) to report on")
    return found


def _folder_name(path: str) -> str:
    """The last component of ``path`` (``gs://b/runs/lenet/`` -> ``lenet``)."""
    return os.path.basename(path.rstrip("/")) or path


def _load(model_dir: str) -> tuple[list[collect.Experiment], list[str]]:
    """The experiments under every folder of ``model_dir``, named relative to
    their folder (prefixed by the folder's name when there are several)."""
    folders = roots(model_dir)
    prefix = {root: (os.path.basename(root) if len(folders) > 1 else "") for root in folders}
    if len(set(prefix.values())) < len(folders):  # two folders of the same name
        prefix = {root: root for root in folders}
    experiments, unreadable = [], []
    for root in folders:
        paths = collect.find_experiments(root)
        if not paths:
            raise ConfigError(f"--model_dir={root} holds no experiment (no config.json "
                              "found); point it at a tf_lottery --model_dir or a folder of "
                              "them")
        for path in paths:
            name = "/".join(p for p in (prefix[root], path[len(root):].strip("/")) if p)
            try:
                # An experiment that is the --model_dir itself goes by its folder's name.
                experiments.append(collect.load(path, name or _folder_name(path)))
            except CorruptFileError as e:  # the others are still reported
                unreadable.append(str(e))
    if not experiments:
        raise ConfigError(f"--model_dir={model_dir}: no experiment can be read: "
                          + "; ".join(unreadable))
    return experiments, unreadable


def build(model_dir: str, matching_tolerance: float = 0.005,
          sparse_level: int | None = None) -> Report:
    """Reads every experiment under ``model_dir`` (a folder, or several
    separated by commas) into figures and tables.

    Raises:
      ConfigError: a folder of ``model_dir`` is not a directory or holds no
        experiment.
    """
    experiments, unreadable = _load(model_dir)
    instab = summary.instability_sections(
        [e for e in experiments if isinstance(e, collect.InstabilityRun)])
    imp_runs = [e for e in experiments if isinstance(e, collect.ImpRun)]
    imp = summary.imp_sections(imp_runs, matching_tolerance)
    sparse = summary.sparse_families(imp_runs, imp, sparse_level)
    figs = _figures(instab, imp, sparse)
    aligned = alignment_figures.section(experiments)  # --align=weights: raw vs aligned
    figs.update(aligned.figures)
    instruments = instrument_figures.figures([e.path for e in experiments])
    instruments.update(curve_figures.figures([e.path for e in experiments]))  # --curve
    instruments.update(surface_figures.figures([e.path for e in experiments]))
    figs.update({name: fig for name, (fig, _) in instruments.items()})
    missing = unreadable + [m for e in experiments for m in e.missing]
    described = {name: FIGURE_TEXT.get(name, "") for name in figs} | aligned.described
    described.update({name: text for name, (_, text) in instruments.items()})
    for name in described:
        k = layout.interpolation_figure_step(name)
        if k is not None:
            described[name] = (f"test and train error along the paths between children "
                               f"spawned at k = {k}, mean ± std over pairs")
    for name, needs in ((layout.INSTABILITY_FIGURE, "an instability experiment or IMP with "
                         "--instability"), (layout.IMP_FIGURE, "an IMP experiment")):
        if name not in figs:
            described[name] = f"not drawn: nothing measured yet (needs {needs})"
    text = markdown.document(f"tf_lottery report: {model_dir}", [
        markdown.recipe(experiments), markdown.instability(instab) if instab else [],
        aligned.markdown,
        markdown.imp(imp) if imp else [], markdown.stable_and_matching(instab, sparse),
        markdown.figures(described), markdown.missing(missing)])
    tables = {
        "model_dir": model_dir,
        "experiments": [{"name": e.name, "experiment": e.config.experiment,
                         "recipe_hash": e.config.recipe_hash(), "complete": e.complete}
                        for e in experiments],
        "instability": [_without_paths(s) for s in instab],
        "imp": [_without_paths(s) for s in imp],
        "stable_and_matching": [_without_paths(f) for f in sparse],
        "missing": missing,
        "aligned_barriers": aligned.table,
    }
    return Report(model_dir, experiments, instab, imp, sparse, figs, missing, text, tables)


def write(report: Report, out_dir: str) -> list[str]:
    """Writes the figures, ``report.md``, ``report.json`` and a CSV per table
    (``csv_tables.tables``); returns their paths."""
    tf.io.gfile.makedirs(out_dir)
    written = []
    for name, fig in report.figures.items():
        path = os.path.join(out_dir, name)
        figures.save(fig, path)
        written.append(path)
    for name, content in ((layout.REPORT_MARKDOWN, report.markdown),
                          (layout.REPORT_TABLES, json.dumps(report.tables, indent=2) + "\n"),
                          *((layout.report_csv(table), text) for table, text
                            in csv_tables.tables(report.instability, report.imp,
                                                 report.sparse).items())):
        path = os.path.join(out_dir, name)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(content)
        written.append(path)
    return written


def _without_paths(section) -> dict:
    d = dataclasses.asdict(section)
    for key in ("paths", "independent_paths"):
        d.pop(key, None)
    return d


# -- figures -------------------------------------------------------------------------

def _suffix(label: str) -> str:
    return f" [{label}]" if label else ""


def _path_series(name: str, paths: Sequence[Path], split: str,
                 linestyle: str | None = None, overlay: bool = False
                 ) -> figures.Series | None:
    """Mean ± std over complete paths with a common α grid (``overlay``: in a
    figure with a panel per split, so the label does not name the split)."""
    if not paths:
        return None
    grid = paths[0].alphas
    same = [p for p in paths if p.alphas == grid]
    curves = np.array([p.error[split] for p in same], dtype=float)
    std = curves.std(axis=0, ddof=1) if len(same) > 1 else None
    label = f"{name} (n={len(same)})" if overlay else f"{split} error, {name} (n={len(same)})"
    return figures.Series(label, grid,
                          list(curves.mean(axis=0)),
                          None if std is None else list(std),
                          linestyle=linestyle or ("-" if split == "test" else "--"),
                          marker=None)


def _figures(instab: Sequence[summary.InstabilitySection],
             imp: Sequence[summary.ImpSection],
             sparse: Sequence[summary.SparseFamily]) -> dict[str, Figure]:
    out: dict[str, Figure] = {}
    barrier_fig = _instability_figure(instab, imp, sparse)
    if barrier_fig is not None:
        out[layout.INSTABILITY_FIGURE] = barrier_fig
    out.update(_path_figures(instab, imp, sparse))
    imp_fig = _imp_figure(imp)
    if imp_fig is not None:
        out[layout.IMP_FIGURE] = imp_fig
    rewind_fig = _sparse_vs_rewind_figure(imp, sparse)
    if rewind_fig is not None:
        out[layout.IMP_REWIND_FIGURE] = rewind_fig
    return out


def _sparse_vs_rewind_figure(imp: Sequence[summary.ImpSection],
                             sparse: Sequence[summary.SparseFamily]) -> Figure | None:
    """Each IMP family measured at two or more k (a rewind-step sweep's
    chains, or separate runs of one recipe): its subnetwork's accuracy and
    barrier against k, with the dense accuracy."""
    accuracy: list[figures.Series] = []
    barriers: list[figures.Series] = []
    dense: list[figures.Reference] = []
    for f in (f for f in sparse if len(f.rows) >= 2):
        name = f"IMP level {f.level}, {100 * f.density:.3g}% weights" + _suffix(f.label)
        accuracy.append(figures.Series(name, [r.k for r in f.rows],
                                       [r.test_accuracy.mean for r in f.rows],
                                       [r.test_accuracy.std for r in f.rows], marker="s"))
        measured = [r for r in f.rows if r.barrier]
        if measured:
            barriers.append(figures.Series(name, [r.k for r in measured],
                                           [r.barrier["test"].mean for r in measured if r.barrier],
                                           [r.barrier["test"].std for r in measured if r.barrier],
                                           marker="s"))
        found = next((s.dense for s in _family_sections(f, imp) if s.dense), None)
        if found is not None:
            dense.append(figures.Reference("dense (level 0)" + _suffix(f.label), found.mean,
                                           color="gray"))
    if not accuracy:
        return None
    threshold = next((s.threshold for s in imp if s.threshold is not None), 0.02)
    return figures.sparse_vs_rewind(accuracy, barriers, dense, threshold)


def _family_sections(family: summary.SparseFamily, imp: Sequence[summary.ImpSection]
                     ) -> list[summary.ImpSection]:
    return sorted((s for s in imp if s.runs[0] in family.runs), key=lambda s: s.rewind_step)


def _sparse_levels(family: summary.SparseFamily) -> list[int]:
    """The levels drawn for an IMP family: level 0 (the dense network, as IMP
    trained it) and the family's own level."""
    return sorted({0, family.level})


def _instability_figure(instab: Sequence[summary.InstabilitySection],
                        imp: Sequence[summary.ImpSection],
                        sparse: Sequence[summary.SparseFamily]) -> Figure | None:
    curves: dict[str, list[figures.Series]] = {s: [] for s in SPLITS}
    references: dict[str, list[figures.Reference]] = {s: [] for s in SPLITS}
    for s in instab:
        rows = [r for r in s.rows if r.complete]
        for split in SPLITS:
            if rows:
                curves[split].append(figures.Series(
                    "dense" + _suffix(s.label), [r.k for r in rows],
                    [r.barrier[split].mean for r in rows],
                    [r.barrier[split].std for r in rows]))
            if s.independent:
                references[split].append(figures.Reference(
                    "independent networks" + _suffix(s.label), s.independent[split].mean,
                    s.independent[split].std, linestyle=":", color="gray"))
    for f in sparse:
        for level in _sparse_levels(f):
            measured = [(s.rewind_step, r.density, r.barrier)
                        for s in _family_sections(f, imp) for r in s.rows
                        if r.level == level and r.barrier]
            if not measured:
                continue
            for split in SPLITS:
                curves[split].append(figures.Series(
                    f"IMP subnetwork, {100 * measured[0][1]:.3g}% weights (level {level})"
                    + _suffix(f.label), [k for k, _, _ in measured],
                    [b[split].mean for _, _, b in measured],
                    [b[split].std for _, _, b in measured],
                    marker="s" if level else "D", linestyle="-" if level else "-."))
    thresholds = [s.threshold for s in instab] + [section.threshold for section in imp]
    threshold = next((t for t in thresholds if t is not None), 0.02)
    if not any(curves.values()):
        return None
    return figures.instability(curves, threshold, references)


def _path_figures(instab: Sequence[summary.InstabilitySection],
                  imp: Sequence[summary.ImpSection],
                  sparse: Sequence[summary.SparseFamily]) -> dict[str, Figure]:
    """``interpolation_k<k>.png`` per k and the independent networks', each
    on its own y axis (a 1 % barrier stays visible beside a 40 % one), and
    ``interpolation_all.png`` overlaying every k, the independent networks'
    paths in a panel of their own."""
    by_k: dict[int, list[tuple[str, list[Path]]]] = {}
    for s in instab:
        for k, paths in s.paths.items():
            by_k.setdefault(k, []).append(("dense" + _suffix(s.label), paths))
    for f in sparse:
        for section in _family_sections(f, imp):
            for row in section.rows:
                if row.level in _sparse_levels(f) and section.paths.get(row.level):
                    by_k.setdefault(section.rewind_step, []).append((
                        f"IMP level {row.level}, {100 * row.density:.3g}% weights"
                        + _suffix(section.label), section.paths[row.level]))
    independent = [("independent networks" + _suffix(s.label), s.independent_paths)
                   for s in instab if s.independent_paths]
    per_k = {k: [series for name, paths in by_k[k] for split in SPLITS
                 for series in [_path_series(name, paths, split)] if series]
             for k in sorted(by_k)}
    alone = [series for name, paths in independent for split in SPLITS
             for series in [_path_series(name, paths, split)] if series]
    out = {layout.interpolation_figure(k): figures.interpolation(
        f"Error along the linear path between children spawned at k = {k}", series,
        figures.paths_ylim(series))
        for k, series in per_k.items() if series}
    if alone:
        out[layout.INDEPENDENT_PATHS_FIGURE] = figures.interpolation(
            "Error along the path between independently trained networks", alone,
            figures.paths_ylim(alone))
    overlay = {split: [series for k in sorted(by_k) for name, paths in by_k[k]
                       for series in [_path_series(f"k = {k}, {name}", paths, split, "-",
                                                   overlay=True)]
                       if series] for split in SPLITS}
    apart = [series for name, paths in independent for split in SPLITS
             for series in [_path_series(name, paths, split)] if series]
    if len(by_k) + bool(independent) > 1:
        out[layout.PATHS_FIGURE] = figures.paths_overlay(overlay, apart)
    return out


def _imp_figure(imp: Sequence[summary.ImpSection]) -> Figure | None:
    accuracy: list[figures.Series] = []
    dense: list[figures.Reference] = []
    bands: list[figures.Band] = []
    barriers: list[figures.Series] = []
    for section in imp:
        tag = _suffix(section.label)
        if section.rows:
            accuracy.append(figures.Series(
                f"IMP, rewind to k = {section.rewind_step}" + tag,
                [100 * r.density for r in section.rows],
                [r.test_accuracy.mean for r in section.rows],
                [r.test_accuracy.std for r in section.rows]))
        for i, branch in enumerate(branches.baselines()):
            with_it = [r for r in section.rows if branch.name in r.baselines]
            if with_it:
                accuracy.append(figures.Series(
                    branch.title + tag, [100 * r.density for r in with_it],
                    [r.baselines[branch.name].mean for r in with_it],
                    [r.baselines[branch.name].std for r in with_it], linestyle="--",
                    marker=_BASELINE_MARKERS[i % len(_BASELINE_MARKERS)]))
        if section.dense:
            dense.append(figures.Reference(
                "dense (level 0)" + tag, section.dense.mean,
                section.dense.std if (section.dense.n or 0) >= 2 else None, color="gray"))
            if section.tolerance is not None:
                bands.append(figures.Band(
                    f"matching (within τ = {100 * section.tolerance:.2g} percentage points "
                    "of dense)" + tag,
                    section.dense.mean - section.tolerance, section.dense.mean))
        barriers += _sparse_barrier_series(section, tag)
    if not accuracy:
        return None
    thresholds = {section.threshold for section in imp if section.threshold is not None}
    return figures.imp(accuracy, dense, bands, barriers,
                       min(thresholds) if thresholds else None)


def _sparse_barrier_series(section: summary.ImpSection, tag: str) -> list[figures.Series]:
    """The sparse-instability panel: IMP's test and train barrier, then each
    baseline's test barrier (the baseline's marker), one series per branch."""
    out = []
    measured = [r for r in section.rows if r.barrier]
    for split in SPLITS:
        if measured:
            out.append(figures.Series(
                f"IMP {split} barrier at k = {section.rewind_step}" + tag,
                [100 * r.density for r in measured],
                [r.barrier[split].mean for r in measured if r.barrier],
                [r.barrier[split].std for r in measured if r.barrier],
                linestyle="-" if split == "test" else "--"))
    for i, branch in enumerate(branches.baselines()):
        rows = [r for r in section.rows if branch.name in r.baseline_barriers]
        if rows:
            out.append(figures.Series(
                f"{branch.title} test barrier" + tag, [100 * r.density for r in rows],
                [r.baseline_barriers[branch.name]["test"].mean for r in rows],
                [r.baseline_barriers[branch.name]["test"].std for r in rows], linestyle=":",
                marker=_BASELINE_MARKERS[i % len(_BASELINE_MARKERS)]))
    return out
