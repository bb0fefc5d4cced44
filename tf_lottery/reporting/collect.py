"""Finds the experiments under a folder and reads what each has finished.

Every experiment directory holds the ``config.json`` of its launch: what it
was asked to do. What it has done is read from its JSON summaries first
(``results.json``, ``k_<k>.json``, ``pair_<i>_<j>.json``, a level's
``instability.json``) and, for a piece whose summary is missing, from its
TensorBoard event files (``events.read_scalars``). Whatever was asked for and
found nowhere is named in ``missing``, and so is a damaged summary (read as
absent: the report never alters an experiment; relaunching the experiment's
command recomputes it). All paths go through ``tf.io.gfile``,
so a ``gs://`` model_dir reads like a local one, and paths recorded inside
summaries are re-rooted when a model_dir was moved or copied.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf

from tf_lottery import config as config_lib
from tf_lottery import files, rundir
from tf_lottery.errors import ConfigError, CorruptFileError
from tf_lottery.pruning import branches
from tf_lottery.reporting import events
from tf_lottery.stability import barrier

SPLITS = ("test", "train")
_MAX_DEPTH = 4  # how deep below --model_dir experiment directories are looked for


@dataclasses.dataclass(frozen=True)
class Stat:
    """mean ± std over ``n`` values. Read from event files, ``n`` is None
    (not recorded) and so is ``std`` where no std was written."""

    mean: float
    std: float | None
    n: int | None = None

    @classmethod
    def of(cls, d: dict) -> Stat:
        return cls(float(d["mean"]), float(d["std"]), d.get("n"))


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
    """

    k: int | None
    barrier: dict[str, Stat]
    pair_barriers: dict[str, list[list[float]]]
    stable: bool | None
    children_accuracy: list[float]  # test accuracy of the children trained from W_k
    paths: list[Path]
    source: str
    complete: bool = True


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


@dataclasses.dataclass
class Experiment:
    """One experiment directory: its config, what it finished, what it lacks."""

    path: str
    name: str  # relative to the report's --model_dir ("." for itself)
    config: config_lib.ExperimentConfig
    complete: bool
    missing: list[str]


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
    not searched.

    Raises:
      ConfigError: ``root`` is not a directory.
    """
    if not tf.io.gfile.isdir(root):
        raise ConfigError(f"--model_dir={root} is not a directory")
    found: list[str] = []

    def visit(directory: str, depth: int) -> None:
        if tf.io.gfile.exists(os.path.join(directory, rundir.CONFIG_FILE)):
            found.append(directory)
            return
        if depth == _MAX_DEPTH:
            return
        for name in sorted(tf.io.gfile.listdir(directory)):
            sub = os.path.join(directory, name.rstrip("/"))
            if tf.io.gfile.isdir(sub):
                visit(sub, depth + 1)

    visit(root.rstrip("/") or "/", 0)
    return found


def load(path: str, name: str) -> Experiment:
    """Reads the experiment in ``path``, called ``name`` in the report.

    Raises:
      CorruptFileError: its config.json is damaged.
    """
    config_path = os.path.join(path, rundir.CONFIG_FILE)
    with tf.io.gfile.GFile(config_path) as f:
        text = f.read()
    try:
        config = config_lib.config_from_json(text)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise CorruptFileError(config_path, f"not a readable config: {reason}",
                               "restore it from a copy") from None
    reader = _Reader(path, config.runtime.model_dir)
    results = reader.json(rundir.RESULTS_FILE) or {}
    complete = results.get("status") == "complete"
    missing = [] if complete else [
        f"{name}: {rundir.RESULTS_FILE} does not say complete (stopped or still running; "
        "relaunch its command to finish it)"]
    run: InstabilityRun | ImpRun | OtherRun
    if config.experiment == "instability":
        run = InstabilityRun(path, name, config, complete, missing)
        _read_instability(run, results, reader)
    elif config.experiment == "imp":
        run = ImpRun(path, name, config, complete, missing)
        _read_imp(run, results, reader)
    else:
        run = OtherRun(path, name, config, complete, missing,
                       results.get("metrics", {}).get("test_accuracy"))
    run.missing.extend(f"{name}: {damaged}" for damaged in reader.damaged)
    return run


def rerooted(recorded: str, recorded_root: str, root: str) -> str:
    """A path recorded under ``recorded_root`` (the model_dir a run was launched
    with), moved along with the model_dir to ``root``."""
    recorded_root = recorded_root.rstrip("/")
    if recorded_root and recorded.startswith(recorded_root + "/"):
        return root + recorded[len(recorded_root):]
    return recorded


class _Reader:
    """JSON and event files of one experiment, with recorded paths re-rooted.

    A damaged JSON file reads as absent and is listed in ``damaged``.
    """

    def __init__(self, path: str, recorded_root: str):
        self.path = path
        self.recorded_root = recorded_root
        self.damaged: list[str] = []
        self._scalars: dict[str, dict[str, dict[int, float]]] = {}

    def local(self, recorded: str) -> str:
        return rerooted(recorded, self.recorded_root, self.path)

    def json(self, relative: str) -> dict | None:
        return self.json_at(os.path.join(self.path, relative))

    def json_at(self, path: str) -> dict | None:
        try:
            return files.read_json(path)
        except CorruptFileError as e:
            message = (f"{e.path} is damaged ({e.reason}); relaunch the experiment's "
                       "command to recompute it")
            if message not in self.damaged:
                self.damaged.append(message)
            return None

    def complete_json(self, relative: str) -> dict | None:
        found = self.json(relative)
        return found if found and found.get("status") == "complete" else None

    def scalars(self, relative: str = "") -> dict[str, dict[int, float]]:
        if relative not in self._scalars:
            self._scalars[relative] = events.read_scalars(os.path.join(self.path, relative))
        return self._scalars[relative]


# -- instability ---------------------------------------------------------------------

def _k_dir(k: int) -> str:
    return f"k_{k:09d}"


def _path(name: str, pair: dict) -> Path:
    return Path(name, list(pair["alphas"]), {s: list(pair[f"{s}_error"]) for s in SPLITS})


def _point_from_record(k: int | None, record: dict, source: str, threshold: float) -> Point:
    """A rewind step's aggregate (``k_<k>.json`` / ``results.json`` entry)."""
    replicates = record["replicates"]
    paths = [_path(f"replicate {rep['replicate']} pair {tuple(p['children'])}", p)
             for rep in replicates for p in rep["pairs"]]
    accuracy = [c["metrics"]["test_accuracy"] for rep in replicates for c in rep["children"]]
    return Point(
        k=k,
        barrier={s: Stat.of(record["barrier"][s]) for s in SPLITS},
        pair_barriers={s: [[p["barrier"][s] for p in rep["pairs"]] for rep in replicates]
                       for s in SPLITS},
        stable=record.get("stable", barrier.is_stable(record["barrier"]["test"]["mean"],
                                                      threshold)),
        children_accuracy=accuracy, paths=paths, source=source)


def _paths(pairs: list[list[dict]], names: list[list[str]]) -> list[Path]:
    return [_path(n, p) for rep, rep_names in zip(pairs, names, strict=True)
            for p, n in zip(rep, rep_names, strict=True)]


def _point_from_pairs(k: int | None, pairs: list[list[dict]], source: str,
                      threshold: float, complete: bool, names: list[list[str]]) -> Point:
    """A point aggregated from pair summaries, ``pairs[r]`` being replicate r's
    (as ``barrier.aggregate`` does: over replicates, or over the pairs of a
    single one)."""
    per_rep = {s: [[p["barrier"][s] for p in rep] for rep in pairs if rep] for s in SPLITS}
    agg = {s: barrier.aggregate(per_rep[s]) for s in SPLITS}
    return Point(
        k=k, barrier={s: Stat.of(agg[s]) for s in SPLITS}, pair_barriers=per_rep,
        stable=barrier.is_stable(agg["test"]["mean"], threshold),
        children_accuracy=[], paths=_paths(pairs, names), source=source, complete=complete)


def _pair_names(children: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(children) for j in range(i + 1, children)]


def _read_instability(run: InstabilityRun, results: dict, reader: _Reader) -> None:
    c = run.config
    ic = c.instability
    threshold = ic.stability_threshold
    recorded = {r["rewind_step"]: r for r in results.get("rewind_steps", [])}
    for parent in results.get("parents", []):
        run.parent_accuracy.append(parent["metrics"]["test_accuracy"])
    if not results:
        for r in range(ic.replicates):
            parent = reader.complete_json(f"replicate_{r}/parent/{rundir.RESULTS_FILE}")
            if parent:
                run.parent_accuracy.append(parent["metrics"]["test_accuracy"])
            else:
                run.missing.append(f"{run.name}: replicate {r}'s parent is not trained")
    root_scalars = None
    for k in c.train.rewind_steps:
        if k in recorded:
            run.points[k] = _point_from_record(k, recorded[k], rundir.RESULTS_FILE, threshold)
            continue
        marker = reader.complete_json(f"{_k_dir(k)}.json")
        if marker:
            run.points[k] = _point_from_record(k, marker, f"{_k_dir(k)}.json", threshold)
            continue
        pairs, names, done, expected = [], [], 0, 0
        for r in range(ic.replicates):
            rep_pairs, rep_names = [], []
            for i, j in _pair_names(ic.children):
                expected += 1
                found = reader.complete_json(f"replicate_{r}/{_k_dir(k)}/pair_{i}_{j}.json")
                if found:
                    rep_pairs.append(found)
                    rep_names.append(f"replicate {r} pair {(i, j)}")
                    done += 1
            pairs.append(rep_pairs)
            names.append(rep_names)
        if root_scalars is None:
            root_scalars = reader.scalars()
        from_events = {s: root_scalars.get(f"barrier/{s}", {}) for s in SPLITS}
        if all(k in from_events[s] for s in SPLITS):
            stats = {s: Stat(from_events[s][k], root_scalars.get(f"barrier/{s}_std", {}).get(k))
                     for s in SPLITS}
            run.points[k] = Point(
                k=k, barrier=stats,
                pair_barriers={s: [[stats[s].mean]] for s in SPLITS},
                stable=barrier.is_stable(stats["test"].mean, threshold),
                children_accuracy=[],
                paths=_paths(pairs, names) if done else _paths_from_events(reader, k, ic),
                source="event files")
            continue
        if done:
            run.points[k] = _point_from_pairs(
                k, pairs, f"{done} of {expected} pair summaries", threshold, False, names)
        run.missing.append(f"{run.name}: k={k} is not finished ({done} of {expected} pairs "
                           "evaluated)")
    if ic.replicates >= 2:
        _read_independent(run, results, reader, threshold)


def _paths_from_events(reader: _Reader, k: int, ic: config_lib.InstabilityConfig
                       ) -> list[Path]:
    """Path curves of rewind step k from the pairs' own event files."""
    prefix = f"interpolation/{_k_dir(k)}"
    paths = []
    for r in range(ic.replicates):
        for i, j in _pair_names(ic.children):
            found = reader.scalars(f"replicate_{r}/{_k_dir(k)}/pair_{i}_{j}")
            curves = {s: found.get(f"{prefix}/{s}_error", {}) for s in SPLITS}
            alphas = found.get(f"{prefix}/alpha", {})
            steps = sorted(alphas)
            if steps and len(steps) == ic.interpolation_points and all(
                    set(steps) <= set(curves[s]) for s in SPLITS):
                paths.append(Path(f"replicate {r} pair {(i, j)}", [alphas[t] for t in steps],
                                  {s: [curves[s][t] for t in steps] for s in SPLITS}))
    return paths


def _read_independent(run: InstabilityRun, results: dict, reader: _Reader,
                      threshold: float) -> None:
    """Paths between the final parents of every two replicates."""
    pairs, names = [], []
    stored = (results.get("independent") or {}).get("pairs")
    if stored:
        pairs, names = stored, [f"replicates {tuple(p['replicates'])}" for p in stored]
    else:
        for a, b in _pair_names(run.config.instability.replicates):
            found = reader.complete_json(f"independent/pair_{a}_{b}.json")
            if found:
                pairs.append(found)
                names.append(f"replicates {(a, b)}")
    if pairs:  # one group: mean ± std over the pairs, as results.json's
        run.independent = _point_from_pairs(None, [pairs], "independent", threshold,
                                            True, [names])
    else:
        run.missing.append(f"{run.name}: the independent networks' paths are not evaluated")


# -- IMP -------------------------------------------------------------------------------

def _network(record: dict) -> Network:
    return Network(record["density"], record["test_accuracy"], record.get("train_accuracy"))


def _level_instability(run: ImpRun, reader: _Reader, level: int, record: dict | None
                       ) -> Point | None:
    """Sparse instability of a level: its record, instability.json, or its pairs so far."""
    c = run.config
    ic, k = c.instability, c.pruning.rewind_step
    threshold = ic.stability_threshold
    level_dir = f"level_{level:02d}"
    found = (record or {}).get("instability") or reader.complete_json(
        f"{level_dir}/instability.json")
    pair_files = [f"{level_dir}/instability/pair_{i}_{j}.json"
                  for i, j in _pair_names(ic.children)]
    if found:
        pairs = [reader.json_at(reader.local(p)) for p in found.get("pairs", [])]
        if not pairs or not all(pairs):
            pairs = [reader.json(p) for p in pair_files]
        accuracy = [1.0 - ch["test_error"] for ch in found.get("children", [])]
        return Point(
            k=k, barrier={s: Stat.of(found["barrier"][s]) for s in SPLITS},
            pair_barriers={s: [[p["barrier"][s] for p in pairs if p]] for s in SPLITS},
            stable=found.get("stable"),
            children_accuracy=accuracy,
            paths=[_path(f"pair {tuple(p['children'])}", p) for p in pairs if p],
            source="instability.json")
    done = [p for p in (reader.complete_json(f) for f in pair_files) if p]
    if done:
        return _point_from_pairs(k, [done], f"{len(done)} of {len(pair_files)} pair summaries",
                                 threshold, False,
                                 [[f"pair {tuple(p['children'])}" for p in done]])
    return None


def _read_imp(run: ImpRun, results: dict, reader: _Reader) -> None:
    p = run.config.pruning
    for record in results.get("levels", []):
        level = record["level"]
        run.levels[level] = Level(
            level, _network(record),
            {name: _network(b) for name, b in record.get("baselines", {}).items()},
            None, rundir.RESULTS_FILE)
    expected = range(p.levels + 1)
    if any(level not in run.levels for level in expected):
        _imp_levels_from_events(run, reader.scalars())
    baseline_levels = p.baseline_levels or range(1, p.levels + 1)
    instability_levels = (p.instability_levels or expected) if p.instability else ()
    records = {r["level"]: r for r in results.get("levels", [])}
    baselines: dict[str, list[int]] = {name: [] for name in p.baselines}
    untrained, unmeasured = [], []
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
            found.instability = (_level_instability(run, reader, level, records.get(level))
                                 or found.instability)
            if found.instability is None or not found.instability.complete:
                unmeasured.append(str(level) + (f" ({found.instability.source})"
                                                if found.instability else ""))
    if untrained:
        run.missing.append(f"{run.name}: level(s) {level_list(untrained)} not trained")
    for name, levels in baselines.items():
        if levels:
            run.missing.append(f"{run.name}: {name} not trained at level(s) "
                               f"{level_list(levels)}")
    if unmeasured:
        run.missing.append(f"{run.name}: sparse instability not measured at level(s) "
                           f"{', '.join(unmeasured)}")


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
    density = scalars.get("imp/density", {})
    for level, value in density.items():
        if level in run.levels or level not in scalars.get("imp/test_accuracy", {}):
            continue
        baselines = {}
        for name in branches.baseline_names():
            acc = scalars.get(f"imp/{name}/test_accuracy", {})
            if level in acc:
                baselines[name] = Network(
                    value, acc[level], scalars.get(f"imp/{name}/train_accuracy", {}).get(level))
        network = Network(value, scalars["imp/test_accuracy"][level],
                          scalars.get("imp/train_accuracy", {}).get(level))
        run.levels[level] = Level(level, network, baselines, None, "event files")
    if not run.config.pruning.instability:
        return
    barriers = {s: scalars.get(f"imp/{s}_barrier", {}) for s in SPLITS}
    threshold = run.config.instability.stability_threshold
    for level, found in run.levels.items():
        if found.source == "event files" and all(level in barriers[s] for s in SPLITS):
            stats = {s: Stat(barriers[s][level], None) for s in SPLITS}
            found.instability = Point(
                run.config.pruning.rewind_step, stats,
                {s: [[stats[s].mean]] for s in SPLITS},
                barrier.is_stable(stats["test"].mean, threshold), [], [], "event files")

