"""What the report states, computed from the experiments found.

Runs whose recipes differ only in their seeds are *replicates* and are
pooled into one group (one curve, one table): barriers with
``barrier.aggregate`` over all their replicates (for a single run, its own
aggregate, unchanged), accuracies as mean ± sample std over runs.

Definitions the report uses (and prints):

- *stable* at k: mean test error barrier below the run's
  ``--stability_threshold`` (the paper's 2 %);
- *matching*: an IMP subnetwork whose mean test accuracy is at least the
  dense network's (level 0's) mean test accuracy minus τ, where τ is one
  sample standard deviation of the dense accuracy over replicate runs (the
  paper's criterion) when there are at least two, and ``--matching_tolerance``
  otherwise;
- the network *becomes stable* (and matching) at the smallest measured k
  from which every measured k is stable (and matching).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tf_lottery.config import branches
from tf_lottery.core.layout import SPLITS
from tf_lottery.core.records import Stat
from tf_lottery.reporting.collect import Experiment, ImpRun, InstabilityRun, Level, Point
from tf_lottery.stability import barrier
from tf_lottery.summaries import tensorboard

# Seeds distinguish replicates; rewind steps are what a group is measured at.
_NOT_RECIPE = ("train.init_seed", "train.data_order_seed", "train.augment_seed",
               "pruning.baseline_seed", "train.rewind_steps", "experiment")


@dataclasses.dataclass
class Group:
    """Replicate runs of one recipe."""

    runs: list
    key: dict
    label: str = ""  # the recipe fields that set it apart from its kind's other groups

    @property
    def config(self):
        return self.runs[0].config


def _key(config, ignore: Sequence[str]) -> dict:
    return {name: value for name, value in tensorboard.flat_hparams(config).items()
            if name not in _NOT_RECIPE and not name.startswith(tuple(ignore))}


def group_runs(runs: Sequence[Experiment], ignore: Sequence[str] = ()) -> list[Group]:
    """Runs pooled by recipe (seeds and fields starting with ``ignore`` aside),
    each group labelled by the fields in which it differs from the others."""
    groups: list[Group] = []
    for run in runs:
        key = _key(run.config, ignore)
        for g in groups:
            if g.key == key:
                g.runs.append(run)
                break
        else:
            groups.append(Group([run], key))
    for g, label in zip(groups, distinguishing_labels([g.key for g in groups]), strict=True):
        g.label = label
    return groups


def distinguishing_labels(keys: Sequence[dict]) -> list[str]:
    """'field=value, …' of the fields whose values differ among ``keys``."""
    fields = sorted({f for k in keys for f in k if len({str(k2.get(f)) for k2 in keys}) > 1})
    return [", ".join(f"{f}={k.get(f)}" for f in fields) for k in keys]


def pool_barriers(points: Sequence[Point]) -> dict[str, Stat]:
    """One point's barriers as stored, or several runs' points pooled."""
    if len(points) == 1:
        return points[0].barrier
    return {s: Stat.from_json(barrier.aggregate(
        [rep for p in points for rep in p.pair_barriers[s]])) for s in SPLITS}


def pool_loss_barriers(points: Sequence[Point]) -> dict[str, Stat] | None:
    """The points' loss barriers pooled as ``pool_barriers`` pools error
    barriers (one point: its own aggregate); None unless every point has them."""
    if not points or any(p.pair_loss_barriers is None for p in points):
        return None
    return {s: Stat.from_json(barrier.aggregate(
        [rep for p in points for rep in (p.pair_loss_barriers or {}).get(s, [])]))
        for s in SPLITS}


def stat(values: Sequence[float]) -> Stat | None:
    return Stat.from_json(barrier.summarize(values)) if values else None


def becomes_true_at(rows: Sequence[tuple[int, bool]]) -> int | None:
    """The smallest k from which every measured k (rows sorted by k) holds."""
    first = None
    for k, ok in rows:
        if not ok:
            first = None
        elif first is None:
            first = k
    return first


# -- the dense network's instability -------------------------------------------------

@dataclasses.dataclass
class RewindRow:
    k: int
    barrier: dict[str, Stat]
    stable: bool
    children_accuracy: Stat | None
    source: str
    complete: bool
    loss_barrier: dict[str, Stat] | None = None  # None: a pair has none recorded


@dataclasses.dataclass
class InstabilitySection:
    label: str
    runs: list[str]
    threshold: float
    rows: list[RewindRow]
    stable_from: int | None
    parent_accuracy: Stat | None  # the parents, trained 0 -> T
    independent: dict[str, Stat] | None
    paths: dict[int, list]  # k -> the paths measured at k (every run of the group)
    independent_paths: list
    independent_loss: dict[str, Stat] | None = None


def instability_sections(runs: Sequence[InstabilityRun]) -> list[InstabilitySection]:
    sections = []
    for g in group_runs(runs, ignore=("pruning.",)):
        threshold = g.config.instability.stability_threshold
        rows, paths = [], {}
        for k in sorted({k for r in g.runs for k in r.points}):
            points = [r.points[k] for r in g.runs if k in r.points]
            paths[k] = [p for point in points for p in point.paths]
            done = [p for p in points if p.complete]
            use = done or points
            stats = pool_barriers(use)
            rows.append(RewindRow(
                k, stats, barrier.is_stable(stats["test"].mean, threshold),
                stat([a for p in use for a in p.children_accuracy]),
                ", ".join(sorted({p.source for p in use})), bool(done),
                pool_loss_barriers(use)))
        independent = [r.independent for r in g.runs if r.independent]
        sections.append(InstabilitySection(
            label=g.label, runs=[r.name for r in g.runs], threshold=threshold, rows=rows,
            stable_from=becomes_true_at([(row.k, row.stable) for row in rows if row.complete]),
            parent_accuracy=stat([a for r in g.runs for a in r.parent_accuracy]),
            independent=pool_barriers(independent) if independent else None,
            paths=paths, independent_paths=[p for i in independent for p in i.paths],
            independent_loss=pool_loss_barriers(independent)))
    return sections


# -- IMP ---------------------------------------------------------------------------------

@dataclasses.dataclass
class LevelRow:
    level: int
    density: float
    test_accuracy: Stat
    train_accuracy: Stat | None
    matching: bool
    baselines: dict[str, Stat]
    barrier: dict[str, Stat] | None  # sparse instability at the rewind step
    stable: bool | None
    source: str
    # Each baseline's sparse instability (pooled as the level's), whether
    # stable, and whether its accuracy is matching, by name.
    baseline_barriers: dict[str, dict[str, Stat]] = dataclasses.field(default_factory=dict)
    baseline_stable: dict[str, bool | None] = dataclasses.field(default_factory=dict)
    baseline_matching: dict[str, bool] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ImpSection:
    label: str
    runs: list[str]
    rewind_step: int
    threshold: float | None  # with sparse instability (--instability)
    dense: Stat | None
    tolerance: float | None
    tolerance_source: str
    rows: list[LevelRow]
    sparsest_matching: LevelRow | None
    paths: dict[int, list]  # level -> its sparse-instability paths


def imp_sections(runs: Sequence[ImpRun], matching_tolerance: float) -> list[ImpSection]:
    sections = []
    for g in group_runs(runs):
        c = g.config
        threshold = c.instability.stability_threshold if c.pruning.instability else None
        dense = stat([r.levels[0].network.test_accuracy for r in g.runs if 0 in r.levels])
        if dense is not None and (dense.n or 0) >= 2:
            tolerance = dense.std or 0.0
            source = f"one std of the dense accuracy over {dense.n} runs"
        else:
            tolerance, source = matching_tolerance, "`--matching_tolerance`, a single dense run"
        rows, paths = [], {}
        for level in sorted({lv for r in g.runs for lv in r.levels}):
            found = [r.levels[level] for r in g.runs if level in r.levels]
            points = [f.instability for f in found if f.instability]
            paths[level] = [p for point in points for p in point.paths]
            rows.append(_level_row(level, found, dense, tolerance, threshold))
        matching = [row for row in rows if row.matching]
        sections.append(ImpSection(
            label=g.label, runs=[r.name for r in g.runs], rewind_step=c.pruning.rewind_step,
            threshold=threshold, dense=dense, tolerance=tolerance if dense else None,
            tolerance_source=source, rows=rows,
            sparsest_matching=min(matching, key=lambda row: row.density) if matching else None,
            paths=paths))
    return sections


def _level_row(level: int, found: Sequence[Level], dense: Stat | None, tolerance: float,
               threshold: float | None) -> LevelRow:
    """One level over the runs of a group: the level's network and each
    baseline's accuracy and sparse instability (mean ± std over the runs)."""
    def matching(accuracy: Stat) -> bool:
        return dense is not None and accuracy.mean >= dense.mean - tolerance

    def pooled(points: list[Point | None]) -> dict[str, Stat] | None:
        done = [p for p in points if p is not None and p.complete]
        return pool_barriers(done) if done else None

    accuracy = Stat.from_json(barrier.summarize([f.network.test_accuracy for f in found]))
    baselines = {}
    for name in branches.baseline_names():
        values = [f.baselines[name].test_accuracy for f in found if name in f.baselines]
        if values:
            baselines[name] = Stat.from_json(barrier.summarize(values))
    barriers = pooled([f.instability for f in found])
    baseline_barriers = {n: b for n in baselines
                         if (b := pooled([f.baseline_instability.get(n) for f in found]))}
    return LevelRow(
        level=level, density=sum(f.network.density for f in found) / len(found),
        test_accuracy=accuracy,
        train_accuracy=stat([f.network.train_accuracy for f in found
                             if f.network.train_accuracy is not None]),
        matching=matching(accuracy), baselines=baselines, barrier=barriers,
        stable=_stable(barriers, threshold), source=", ".join(sorted({f.source for f in found})),
        baseline_barriers=baseline_barriers,
        baseline_stable={n: _stable(b, threshold) for n, b in baseline_barriers.items()},
        baseline_matching={n: matching(a) for n, a in baselines.items()})


def _stable(barriers: dict[str, Stat] | None, threshold: float | None) -> bool | None:
    return (barrier.is_stable(barriers["test"].mean, threshold)
            if barriers and threshold is not None else None)


# -- IMP subnetworks across rewind steps (the paper's Figure 5) --------------------------

@dataclasses.dataclass
class SparseRow:
    k: int
    test_accuracy: Stat
    matching: bool
    barrier: dict[str, Stat] | None
    stable: bool | None


@dataclasses.dataclass
class SparseFamily:
    """IMP runs of one recipe at different rewind steps, at one level."""

    label: str
    runs: list[str]
    level: int
    density: float
    rows: list[SparseRow]
    stable_and_matching_from: int | None


def sparse_families(runs: Sequence[ImpRun], sections: Sequence[ImpSection],
                    level: int | None) -> list[SparseFamily]:
    """Per recipe (rewind step aside): the subnetwork at ``level`` (default: the
    sparsest level whose sparse barrier every rewind step has, else any has)
    against the rewind step k."""
    by_run = {name: s for s in sections for name in s.runs}
    families = []
    for g in group_runs(runs, ignore=("pruning.rewind_step", "pruning.instability_levels")):
        members = list({id(by_run[r.name]): by_run[r.name] for r in g.runs}.values())
        chosen = level if level is not None else _default_level(members)
        if chosen is None:
            continue
        rows = []
        for s in sorted(members, key=lambda s: s.rewind_step):
            row = next((r for r in s.rows if r.level == chosen), None)
            if row is not None:
                rows.append(SparseRow(s.rewind_step, row.test_accuracy, row.matching,
                                      row.barrier, row.stable))
        if not rows:
            continue
        density = next(r.density for s in members for r in s.rows if r.level == chosen)
        families.append(SparseFamily(
            g.label, [r.name for r in g.runs], chosen, density, rows,
            becomes_true_at([(r.k, bool(r.stable and r.matching)) for r in rows
                             if r.barrier is not None])))
    return families


def _default_level(sections: Sequence[ImpSection]) -> int | None:
    measured: list[set[int]] = [{r.level for r in s.rows if r.barrier} for s in sections]
    everywhere = set.intersection(*measured) if measured else set()
    candidates = everywhere or set().union(*measured)
    return max(candidates) if candidates else None

