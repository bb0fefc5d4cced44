"""Finds the experiments under a folder and reads what each has finished.

Every experiment directory holds the ``config.json`` of its launch: what it
was asked to do. What it has done is read from its records first
(``core.records``: ``results.json``, ``k_<k>.json``, ``pair_<i>_<j>.json``, a
level's ``instability.json``, each where ``core.layout`` puts it) and, for a
piece whose record is missing, from its TensorBoard event files
(``events.read_scalars``, tags from ``core.layout``). Whatever was asked for
and found nowhere is named in ``missing``, and so is a damaged record (read
as absent: the report never alters an experiment; relaunching the
experiment's command recomputes it). All paths go through ``tf.io.gfile``,
so a ``gs://`` model_dir reads like a local one, and paths inside records
are resolved where the model_dir now is (``layout.resolve``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import TypeVar

import tensorflow as tf

from tf_lottery import config as config_lib
from tf_lottery import provenance
from tf_lottery.config import branches
from tf_lottery.core import layout, records, store
from tf_lottery.core.layout import SPLITS
from tf_lottery.core.records import Stat
from tf_lottery.errors import ConfigError, CorruptFileError
from tf_lottery.reporting import events
from tf_lottery.stability import barrier

_MAX_DEPTH = 4  # how deep below --model_dir experiment directories are looked for
R = TypeVar("R")


@dataclasses.dataclass
class Path:
    """Error along one linear path W(α) between two networks."""

    name: str
    alphas: list[float]
    error: dict[str, list[float]]  # split -> E(α)


@dataclasses.dataclass
class Point:
    """The instability analysis at rewind step k: of the dense network, or
    (in an IMP run) of one level's subnetwork.

    ``pair_barriers[split]`` lists, per replicate, its pairs' barriers: what
    pooling several runs needs. ``complete`` is False for a rewind step whose
    aggregate was not written yet (barrier over the pairs finished so far).
    ``pair_loss_barriers``: the same of the pairs' loss barriers (None where
    a pair was recorded before loss barriers, or only event files remain).
    """

    k: int | None
    barrier: dict[str, Stat]
    pair_barriers: dict[str, list[list[float]]]
    stable: bool | None
    children_accuracy: list[float]  # test accuracy of the children trained from W_k
    paths: list[Path]
    source: str
    complete: bool = True
    pair_loss_barriers: dict[str, list[list[float]]] | None = None


@dataclasses.dataclass
class Network:
    """One trained network of an IMP level: the level itself or a baseline."""

    density: float
    test_accuracy: float
    train_accuracy: float | None


@dataclasses.dataclass
class Level:
    level: int
    network: Network
    baselines: dict[str, Network]
    instability: Point | None
    source: str
    # Sparse instability of the level's baselines, by name (--instability at
    # a baseline level).
    baseline_instability: dict[str, Point] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Experiment:
    """One experiment directory: its config, what it finished, what it lacks."""

    path: str
    name: str  # relative to the report's --model_dir (its folder's name for itself)
    config: config_lib.ExperimentConfig
    complete: bool
    missing: list[str]
    # The CPU numerics its first launch recorded (None: a release before 0.2).
    numerics: str | None = None


@dataclasses.dataclass
class InstabilityRun(Experiment):
    points: dict[int, Point] = dataclasses.field(default_factory=dict)
    independent: Point | None = None
    parent_accuracy: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ImpRun(Experiment):
    levels: dict[int, Level] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class OtherRun(Experiment):
    """An experiment the report has no figure for (e.g. 'train')."""

    test_accuracy: float | None = None


def find_experiments(root: str) -> list[str]:
    """Experiment directories (with a ``config.json``) at or below ``root``.

    An experiment's own subdirectories are its runs, not experiments, and are
    not searched; but the chains of a rewind-step sweep (``layout.chain_dir``,
    each with its own config.json) are IMP experiments, found in its place.

    Raises:
      ConfigError: ``root`` is not a directory.
    """
    if not tf.io.gfile.isdir(root):
        raise ConfigError(f"--model_dir={root} is not a directory")
    found: list[str] = []

    def visit(directory: str, depth: int) -> None:
        if tf.io.gfile.exists(layout.config_file(directory)):
            chains = tf.io.gfile.glob(layout.config_file(layout.chain_dir(directory, "*")))
            found.extend(sorted(os.path.dirname(c) for c in chains) or [directory])
            return
        if depth == _MAX_DEPTH:
            return
        for name in sorted(tf.io.gfile.listdir(directory)):
            sub = os.path.join(directory, name.rstrip("/"))
            if tf.io.gfile.isdir(sub):
                visit(sub, depth + 1)

    visit(root.rstrip("/") or "/", 0)
    return found


def _instability_run(path: str, name: str, config: config_lib.ExperimentConfig,
                     complete: bool, missing: list[str], results: records.Results | None,
                     reader: _Reader) -> Experiment:
    run = InstabilityRun(path, name, config, complete, missing)
    _read_instability(run, results if isinstance(results, records.InstabilityResults)
                      else None, reader)
    return run


def _imp_run(path: str, name: str, config: config_lib.ExperimentConfig, complete: bool,
             missing: list[str], results: records.Results | None,
             reader: _Reader) -> Experiment:
    run = ImpRun(path, name, config, complete, missing)
    _read_imp(run, results if isinstance(results, records.ImpResults) else None, reader)
    return run


def _other_run(path: str, name: str, config: config_lib.ExperimentConfig, complete: bool,
               missing: list[str], results: records.Results | None,
               reader: _Reader) -> Experiment:
    return OtherRun(path, name, config, complete, missing,
                    test_accuracy=results.metrics.test_accuracy
                    if isinstance(results, records.RunRecord) else None)


# How each experiment's run is read, by its --experiment value; any other
# (train, onset, imp_sweep, whose chains are IMP runs) reads as an OtherRun.
RUN_READERS: dict[str, Callable[..., Experiment]] = {
    "instability": _instability_run,
    "imp": _imp_run,
}


def load(path: str, name: str) -> Experiment:
    """Reads the experiment in ``path``, called ``name`` in the report.

    Raises:
      CorruptFileError: its config.json is damaged.
    """
    config_path = layout.config_file(path)
    with tf.io.gfile.GFile(config_path) as f:
        text = f.read()
    try:
        config = config_lib.config_from_json(text)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise CorruptFileError(config_path, f"not a readable config: {reason}",
                               "restore it from a copy") from None
    reader = _Reader(path, config.runtime.model_dir)
    results = reader.record(layout.results_file(path), records.ExperimentResults)
    complete = layout.is_complete(results)
    missing = [] if complete else [
        f"{name}: {layout.RESULTS_FILE} does not say complete (stopped or still running; "
        "relaunch its command to finish it)"]
    read = RUN_READERS.get(config.experiment, _other_run)
    run = read(path, name, config, complete, missing, results, reader)
    run.missing.extend(f"{name}: {damaged}" for damaged in reader.damaged)
    first = provenance.recorded_numerics(json.loads(text))
    run.numerics = first.describe() if first else None
    return run


class _Reader:
    """Records and event files of one experiment (at ``path``; launched as
    ``recorded_root``, which release 0.1.0's absolute paths start with).

    A damaged record reads as absent and is listed in ``damaged``.
    """

    def __init__(self, path: str, recorded_root: str):
        self.path = path
        self.recorded_root = recorded_root
        self.damaged: list[str] = []
        self._scalars: dict[str, dict[str, dict[int, float]]] = {}

    def name(self, path: str) -> str:
        """``path`` as the report names it: relative to the experiment."""
        return layout.relative(self.path, path)

    def record(self, path: str, kind: store.Kind[R], root: str | None = None) -> R | None:
        """The record at ``path`` (its paths relative to ``root``, by default
        the experiment's directory)."""
        try:
            return store.read(path, kind, root or self.path, self.recorded_root)
        except CorruptFileError as e:
            message = (f"{e.path} is damaged ({e.reason}); relaunch the experiment's "
                       "command to recompute it")
            if message not in self.damaged:
                self.damaged.append(message)
            return None

    def complete(self, path: str, kind: store.Kind[R], root: str | None = None) -> R | None:
        found = self.record(path, kind, root)
        return found if layout.is_complete(found) else None

    def scalars(self, directory: str | None = None) -> dict[str, dict[int, float]]:
        directory = directory or self.path
        if directory not in self._scalars:
            self._scalars[directory] = events.read_scalars(directory)
        return self._scalars[directory]

    def experiment_scalars(self) -> dict[str, dict[int, float]]:
        """The experiment's own scalars under the tags of its model_dir's
        events (release 0.1), merged with its summary runs' (``summary/``,
        and ``summary/<branch>/``'s IMP tags as ``layout.imp_tag`` of that
        branch): one view of both layouts."""
        merged = {tag: dict(values) for tag, values in self.scalars().items()}
        for tag, values in self.scalars(layout.summary_dir(self.path)).items():
            merged.setdefault(tag, {}).update(values)
        for branch in (branches.IMP, *branches.baseline_names()):
            found = self.scalars(layout.summary_run(self.path, branch))
            for metric in ("test_accuracy", "train_accuracy", "test_barrier",
                           "train_barrier"):
                if layout.branch_tag(metric) in found:
                    merged.setdefault(layout.imp_tag(metric, branch), {}).update(
                        found[layout.branch_tag(metric)])
        return merged


# -- instability ---------------------------------------------------------------------

def _path(name: str, pair: records.PairRecord) -> Path:
    return Path(name, list(pair.alphas), {s: list(pair.error[s]) for s in SPLITS})


def _children(pair: records.PairRecord) -> tuple[int, ...]:
    return tuple(pair.children or ())


def _point_from_record(k: int, record: records.RewindPointRecord, source: str) -> Point:
    """A rewind step's record (``k_<k>.json`` / ``results.json`` entry)."""
    replicates = record.replicates
    paths = [_path(f"replicate {rep.replicate} pair {_children(p)}", p)
             for rep in replicates for p in rep.pairs]
    accuracy = [c.metrics.test_accuracy for rep in replicates for c in rep.children]
    return Point(
        k=k,
        barrier={s: record.barrier[s].stat for s in SPLITS},
        pair_barriers={s: [[p.barrier[s] for p in rep.pairs] for rep in replicates]
                       for s in SPLITS},
        stable=record.stable, children_accuracy=accuracy, paths=paths, source=source,
        pair_loss_barriers=loss_by_replicate([rep.pairs for rep in replicates]))


def _paths(pairs: list[list[records.PairRecord]], names: list[list[str]]) -> list[Path]:
    return [_path(n, p) for rep, rep_names in zip(pairs, names, strict=True)
            for p, n in zip(rep, rep_names, strict=True)]


def loss_by_replicate(pairs: list[list[records.PairRecord]]
                      ) -> dict[str, list[list[float]]] | None:
    """split -> per replicate (``pairs[r]``), its pairs' loss barriers; None
    unless every pair has one (pairs recorded before loss barriers have not)."""
    found = [rep for rep in pairs if rep]
    if not found or any(p.loss_barrier is None for rep in found for p in rep):
        return None
    return {s: [[p.loss_barrier[s] for p in rep if p.loss_barrier] for rep in found]
            for s in SPLITS}


def _point_from_pairs(k: int | None, pairs: list[list[records.PairRecord]], source: str,
                      threshold: float, complete: bool, names: list[list[str]]) -> Point:
    """A point aggregated from pair records, ``pairs[r]`` being replicate r's
    (as ``barrier.aggregate`` does: over replicates, or over the pairs of a
    single one)."""
    per_rep = {s: [[p.barrier[s] for p in rep] for rep in pairs if rep] for s in SPLITS}
    agg = {s: Stat.from_json(barrier.aggregate(per_rep[s])) for s in SPLITS}
    return Point(
        k=k, barrier=agg, pair_barriers=per_rep,
        stable=barrier.is_stable(agg["test"].mean, threshold),
        children_accuracy=[], paths=_paths(pairs, names), source=source, complete=complete,
        pair_loss_barriers=loss_by_replicate(pairs))


def _pair_names(children: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(children) for j in range(i + 1, children)]


def _read_instability(run: InstabilityRun, results: records.InstabilityResults | None,
                      reader: _Reader) -> None:
    c = run.config
    ic = c.instability
    threshold = ic.stability_threshold
    recorded = {r.rewind_step: r for r in results.rewind_steps} if results else {}
    if results:
        run.parent_accuracy.extend(p.metrics.test_accuracy for p in results.parents)
    else:
        for r in range(ic.replicates):
            parent_dir = layout.parent_dir(reader.path, r)
            parent = reader.complete(layout.results_file(parent_dir), records.RunRecord,
                                     parent_dir)
            if parent:
                run.parent_accuracy.append(parent.metrics.test_accuracy)
            else:
                run.missing.append(f"{run.name}: replicate {r}'s parent is not trained")
    for k in c.train.rewind_steps:
        if k in recorded:
            run.points[k] = _point_from_record(k, recorded[k], layout.RESULTS_FILE)
            continue
        marker_path = layout.rewind_point_file(reader.path, k)
        marker = reader.complete(marker_path, records.RewindPointRecord)
        if marker:
            run.points[k] = _point_from_record(k, marker, reader.name(marker_path))
            continue
        _read_unfinished_point(run, reader, k)
    if ic.replicates >= 2:
        _read_independent(run, results, reader, threshold)


def _read_unfinished_point(run: InstabilityRun, reader: _Reader, k: int) -> None:
    """Rewind step k without its record: from the barriers in the event files,
    or the pairs evaluated so far."""
    ic = run.config.instability
    threshold = ic.stability_threshold
    pairs, names, done, expected = [], [], 0, 0
    for r in range(ic.replicates):
        rep_pairs, rep_names = [], []
        for i, j in _pair_names(ic.children):
            expected += 1
            found = reader.complete(
                layout.pair_file(layout.rewind_point_dir(reader.path, r, k), i, j),
                records.PairRecord)
            if found:
                rep_pairs.append(found)
                rep_names.append(f"replicate {r} pair {(i, j)}")
                done += 1
        pairs.append(rep_pairs)
        names.append(rep_names)
    root_scalars = reader.experiment_scalars()
    from_events = {s: root_scalars.get(layout.barrier_tag(s), {}) for s in SPLITS}
    if all(k in from_events[s] for s in SPLITS):
        stats = {s: Stat(from_events[s][k],
                         root_scalars.get(layout.barrier_tag(s, std=True), {}).get(k))
                 for s in SPLITS}
        run.points[k] = Point(
            k=k, barrier=stats,
            pair_barriers={s: [[stats[s].mean]] for s in SPLITS},
            stable=barrier.is_stable(stats["test"].mean, threshold),
            children_accuracy=[],
            paths=_paths(pairs, names) if done else _paths_from_events(reader, k, ic),
            source="event files")
        return
    if done:
        run.points[k] = _point_from_pairs(
            k, pairs, f"{done} of {expected} pair summaries", threshold, False, names)
    run.missing.append(f"{run.name}: k={k} is not finished ({done} of {expected} pairs "
                       "evaluated)")


def _paths_from_events(reader: _Reader, k: int, ic: config_lib.InstabilityConfig
                       ) -> list[Path]:
    """Path curves of rewind step k from the pairs' own event files."""
    paths = []
    for r in range(ic.replicates):
        for i, j in _pair_names(ic.children):
            found = reader.scalars(layout.pair_events_dir(
                layout.pair_file(layout.rewind_point_dir(reader.path, r, k), i, j)))
            curves = {s: found.get(layout.path_tag(k, f"{s}_error"), {}) for s in SPLITS}
            alphas = found.get(layout.path_tag(k, "alpha"), {})
            steps = sorted(alphas)
            if steps and len(steps) == ic.interpolation_points and all(
                    set(steps) <= set(curves[s]) for s in SPLITS):
                paths.append(Path(f"replicate {r} pair {(i, j)}", [alphas[t] for t in steps],
                                  {s: [curves[s][t] for t in steps] for s in SPLITS}))
    return paths


def _read_independent(run: InstabilityRun, results: records.InstabilityResults | None,
                      reader: _Reader, threshold: float) -> None:
    """Paths between the final parents of every two replicates."""
    pairs: list[records.PairRecord] = []
    names: list[str] = []
    stored = results.independent.pairs if results and results.independent else None
    if stored:
        pairs = stored
        names = [f"replicates {tuple(p.replicates or ())}" for p in stored]
    else:
        for a, b in _pair_names(run.config.instability.replicates):
            found = reader.complete(layout.independent_pair_file(reader.path, a, b),
                                    records.PairRecord)
            if found:
                pairs.append(found)
                names.append(f"replicates {(a, b)}")
    if pairs:  # one group: mean ± std over the pairs, as results.json's
        run.independent = _point_from_pairs(None, [pairs], "independent", threshold,
                                            True, [names])
    else:
        run.missing.append(f"{run.name}: the independent networks' paths are not evaluated")


# -- IMP -------------------------------------------------------------------------------

def _network(record: records.NetworkRecord) -> Network:
    return Network(record.density, record.test_accuracy, record.train_accuracy)


def _level_instability(run: ImpRun, reader: _Reader, level: int,
                       record: records.LevelRecord | records.BaselineRecord | None,
                       baseline: str | None = None) -> Point | None:
    """Sparse instability of a level (or of its ``baseline``): its record,
    instability.json, or its pairs so far."""
    c = run.config
    ic, k = c.instability, c.pruning.rewind_step
    threshold = ic.stability_threshold
    found = (record.instability if record else None) or reader.complete(
        layout.sparse_instability_file(reader.path, level, baseline),
        records.SparseInstabilityRecord)
    point_dir = layout.sparse_instability_dir(reader.path, level, baseline)
    pair_files = [layout.pair_file(point_dir, i, j) for i, j in _pair_names(ic.children)]
    if found:
        # A record of release 0.1.0 named its pair files instead of holding
        # the pairs (``pairs`` None): they are where the layout puts them.
        pairs = found.pairs or [p for p in (reader.record(f, records.PairRecord)
                                            for f in pair_files) if p]
        return Point(
            k=k, barrier=dict(found.barrier),
            pair_barriers={s: [[p.barrier[s] for p in pairs]] for s in SPLITS},
            stable=found.stable,
            children_accuracy=[ch.metrics.test_accuracy for ch in found.children],
            paths=[_path(f"pair {_children(p)}", p) for p in pairs],
            source=layout.SPARSE_INSTABILITY_FILE, pair_loss_barriers=loss_by_replicate([pairs]))
    done = [p for p in (reader.complete(f, records.PairRecord) for f in pair_files) if p]
    if done:
        return _point_from_pairs(k, [done], f"{len(done)} of {len(pair_files)} pair summaries",
                                 threshold, False, [[f"pair {_children(p)}" for p in done]])
    return None


def _read_imp(run: ImpRun, results: records.ImpResults | None, reader: _Reader) -> None:
    p = run.config.pruning
    recorded = {r.level: r for r in results.levels} if results else {}
    for level, record in recorded.items():
        run.levels[level] = Level(
            level, _network(record),
            {name: _network(b) for name, b in record.baselines.items()},
            None, layout.RESULTS_FILE)
    expected = range(p.levels + 1)
    if any(level not in run.levels for level in expected):
        _imp_levels_from_events(run, reader.experiment_scalars())
    baseline_levels = p.baseline_levels or range(1, p.levels + 1)
    instability_levels = (p.instability_levels or expected) if p.instability else ()
    untrained: list[int] = []
    baselines: dict[str, list[int]] = {name: [] for name in p.baselines}
    unmeasured: list[str] = []
    for level in expected:
        found = run.levels.get(level)
        if found is None:
            untrained.append(level)
            continue
        if level in baseline_levels:
            for name in p.baselines:
                if name not in found.baselines:
                    baselines[name].append(level)
        if level in instability_levels:
            found.instability = (_level_instability(run, reader, level, recorded.get(level))
                                 or found.instability)
            if found.instability is None or not found.instability.complete:
                unmeasured.append(str(level) + (f" ({found.instability.source})"
                                                if found.instability else ""))
            if level in baseline_levels:
                unmeasured += _baseline_instability(run, reader, found, recorded.get(level))
    if untrained:
        run.missing.append(f"{run.name}: level(s) {level_list(untrained)} not trained")
    for name, levels in baselines.items():
        if levels:
            run.missing.append(f"{run.name}: {name} not trained at level(s) "
                               f"{level_list(levels)}")
    if unmeasured:
        run.missing.append(f"{run.name}: sparse instability not measured at level(s) "
                           f"{', '.join(unmeasured)}")


def _baseline_instability(run: ImpRun, reader: _Reader, found: Level,
                          record: records.LevelRecord | None) -> list[str]:
    """Reads the sparse instability of every baseline of an analysed level
    into ``found``; returns those not (completely) measured, as 'L name'.
    A run finished before baselines had sparse instability (complete, its
    baselines recorded without it) lacks nothing."""
    unmeasured = []
    for name in run.config.pruning.baselines:
        point = _level_instability(run, reader, found.level,
                                   record.baselines.get(name) if record else None, name)
        if point is not None:
            found.baseline_instability[name] = point
        older = run.complete and record is not None and name in record.baselines
        if (point is None or not point.complete) and not older:
            unmeasured.append(f"{found.level} {name}")
    return unmeasured


def level_list(levels: list[int]) -> str:
    """Sorted integers as ranges: [1, 2, 3, 5] -> '1-3, 5'."""
    runs: list[list[int]] = []
    for value in sorted(levels):
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _imp_levels_from_events(run: ImpRun, scalars: dict[str, dict[int, float]]) -> None:
    """Levels (and baselines, sparse barriers) found only in the event files."""
    density = scalars.get(layout.IMP_DENSITY, {})
    accuracy = scalars.get(layout.imp_tag("test_accuracy"), {})
    for level, value in density.items():
        if level in run.levels or level not in accuracy:
            continue
        baselines = {}
        for name in branches.baseline_names():
            acc = scalars.get(layout.imp_tag("test_accuracy", name), {})
            if level in acc:
                baselines[name] = Network(value, acc[level], scalars.get(
                    layout.imp_tag("train_accuracy", name), {}).get(level))
        network = Network(value, accuracy[level],
                          scalars.get(layout.imp_tag("train_accuracy"), {}).get(level))
        run.levels[level] = Level(level, network, baselines, None, "event files")
    if not run.config.pruning.instability:
        return
    barriers = {s: scalars.get(layout.imp_tag(f"{s}_barrier"), {}) for s in SPLITS}
    threshold = run.config.instability.stability_threshold
    for level, found in run.levels.items():
        if found.source == "event files" and all(level in barriers[s] for s in SPLITS):
            stats = {s: Stat(barriers[s][level], None) for s in SPLITS}
            found.instability = Point(
                run.config.pruning.rewind_step, stats,
                {s: [[stats[s].mean]] for s in SPLITS},
                barrier.is_stable(stats["test"].mean, threshold), [], [], "event files")
