"""Typed records of what tf_lottery writes: one dataclass per JSON shape, with a
schema version and a JSON round trip, shared by the writers and the report.

A record holds its paths absolute (usable as they are); its JSON holds them
relative to a *root*: the run's own directory for a run's ``results.json``
(``RunRecord``) and its checkpoint markers (``CheckpointMarker``), the
experiment's model_dir for every other record. ``to_json(root)`` writes,
``from_json(obj, root, recorded_root)`` reads (``layout.relative`` and
``layout.resolve``), so ``X.from_json(x.to_json(root), root) == x``.

Versions. Every record's JSON carries ``"schema"``; release 0.1.0's had 1
(or, for pieces and nested entries, none, which reads as 1). ``from_json``
migrates schema 1 explicitly (the ``_v1`` functions below say what changed)
and refuses a newer schema than it knows. Schema 2 (this release):

- paths are relative to the record's root (0.1.0 stored absolute paths,
  which broke when a model_dir was moved or copied);
- a child is one shape (``ChildRecord``) in the instability experiment and
  in IMP's sparse instability (0.1.0's IMP children had only their errors);
- IMP's sparse instability embeds its pairs (0.1.0 named the pair files);
- every entry says its status, and optional parts are ``null`` rather than
  absent, so that each concept has one shape.

Added within schema 2, with defaults (absent in older files, read as the
default): a pair's ``aligned`` path and the ``aligned_barrier`` of its
aggregates (``--align=weights``), the settings' ``align`` ("none").

Also added within schema 2 with defaults (issue 16): the instability
results' ``layerwise`` summaries, IMP's ``level_paths``, a level's sparse
instability's ``layerwise`` summary; new records for
layer-wise barriers (``LayerwiseRecord``), IMP level-to-level paths
(``LevelPathRecord``) and the onset search (``OnsetResults``).

Also added within schema 2 with defaults (issue 24): a pair's (and an
aligned path's) ``loss_barrier`` beside its error ``barrier``, the
``loss_barrier`` of the aggregates over pairs and replicates, and
``child_noise`` (``--child_noise``) of children, their pairs and the
instability settings. Absent (older records) they read as None ("both" for
the settings): a record that predates them still loads and reports its
error barriers; its loss curves are there, its loss barrier is not. They
stay within schema 2 because they only add keys: a reader of schema 2 that
does not know them loses nothing it knew, which a bump to 3 would refuse.

Pure Python: no TensorFlow, no I/O (``store.py`` reads and writes them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from tf_lottery.core import layout
from tf_lottery.core.layout import COMPLETE, SPLITS

SCHEMA = 2  # what this release writes, for every record
Json = dict[str, Any]


def _version(obj: Mapping[str, Any], kind: str) -> int:
    version = obj.get("schema", 1)
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{kind}: schema {version!r} is not a version")
    if version > SCHEMA:
        raise ValueError(f"{kind}: schema {version} is newer than this tf_lottery reads "
                         f"({SCHEMA}); read it with a newer tf_lottery")
    return version


def _migrated(obj: Mapping[str, Any], version: int,
              from_v1: Callable[[Mapping[str, Any]], Json]) -> Mapping[str, Any]:
    """``obj`` in the current shape: ``from_v1`` applied to a schema 1 one."""
    return from_v1(obj) if version == 1 else obj


class _Where:
    """Where a record's relative paths are rooted (and a 0.1.0 record's were)."""

    def __init__(self, root: str, recorded_root: str | None):
        self.root = root
        self.recorded_root = recorded_root

    def __call__(self, stored: str) -> str:
        return layout.resolve(self.root, stored, self.recorded_root)


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _by_split(obj: Mapping[str, Any], parse: Callable[[Any], Any]) -> dict[str, Any]:
    return {s: parse(obj[s]) for s in SPLITS}


# -- values -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Stat:
    """mean ± sample std over ``n`` values (``barrier.summarize``). Read back
    from TensorBoard events, ``n`` (and maybe ``std``) is unknown: None."""

    mean: float
    std: float | None
    n: int | None = None

    def to_json(self) -> Json:
        return {"mean": self.mean, "std": self.std, "n": self.n}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Stat:
        std = obj.get("std")
        return cls(float(obj["mean"]), None if std is None else float(std), obj.get("n"))


@dataclasses.dataclass(frozen=True)
class Aggregate(Stat):
    """Barriers over replicates (``barrier.aggregate``): each replicate's
    mean ± std over its pairs, and mean ± std over the replicates' means."""

    per_replicate: list[Stat] = dataclasses.field(default_factory=list)

    @property
    def stat(self) -> Stat:
        return Stat(self.mean, self.std, self.n)

    def to_json(self) -> Json:
        return {**super().to_json(), "per_replicate": [s.to_json() for s in self.per_replicate]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Aggregate:
        top = Stat.from_json(obj)
        return cls(top.mean, top.std, top.n,
                   [Stat.from_json(s) for s in obj.get("per_replicate", [])])


@dataclasses.dataclass(frozen=True, kw_only=True)
class Metrics:
    """A network's test and train-subset metrics (``Trainer.evaluate_all``).

    Loss and example counts are None only for IMP children of release 0.1.0,
    which recorded their errors alone.
    """

    test_accuracy: float
    test_error: float
    train_accuracy: float
    train_error: float
    test_loss: float | None = None
    train_loss: float | None = None
    test_examples: int | None = None
    train_examples: int | None = None

    def accuracy(self, split: str) -> float:
        return float(getattr(self, f"{split}_accuracy"))

    def error(self, split: str) -> float:
        return float(getattr(self, f"{split}_error"))

    def to_json(self) -> Json:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Metrics:
        return cls(
            test_accuracy=obj["test_accuracy"], test_error=obj["test_error"],
            train_accuracy=obj["train_accuracy"], train_error=obj["train_error"],
            test_loss=obj.get("test_loss"), train_loss=obj.get("train_loss"),
            test_examples=obj.get("test_examples"), train_examples=obj.get("train_examples"))


# -- a training run ------------------------------------------------------------------------

def _run_checkpoint_v1(path: str) -> str:
    """0.1.0 stored a run's checkpoints as absolute paths; their tail under the
    run directory is the layout's (``final/ckpt``, ``rewind/step_<k>/ckpt``)."""
    return layout.run_relative_checkpoint(path) or path


def _run_v1(obj: Mapping[str, Any]) -> Json:
    return {**obj,
            "final_checkpoint": _run_checkpoint_v1(obj["final_checkpoint"]),
            "rewind_checkpoints": {k: _run_checkpoint_v1(p)
                                   for k, p in obj["rewind_checkpoints"].items()}}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunRecord:
    """A training run's ``results.json`` (``Trainer.train``); root: its run dir.

    Attributes:
      status: ``complete`` (written only when the run is finished).
      step: T, the step the run ended at.
      metrics: of the evaluated weights at T.
      rewind_checkpoints: k -> prefix of W_k, for every rewind step kept.
      final_checkpoint: prefix of W_T.
      data_order_seed, augment_seed: the run's SGD noise.
      wall_time_s_last_session: training and evaluation in the last launch.
    """

    status: str
    step: int
    metrics: Metrics
    rewind_checkpoints: dict[int, str]
    final_checkpoint: str
    data_order_seed: int
    augment_seed: int
    wall_time_s_last_session: float | None = None

    def to_json(self, root: str) -> Json:
        return {
            "schema": SCHEMA, "status": self.status, "step": self.step,
            "metrics": self.metrics.to_json(),
            "rewind_checkpoints": {str(k): layout.relative(root, p)
                                   for k, p in sorted(self.rewind_checkpoints.items())},
            "final_checkpoint": layout.relative(root, self.final_checkpoint),
            "data_order_seed": self.data_order_seed, "augment_seed": self.augment_seed,
            "wall_time_s_last_session": self.wall_time_s_last_session,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> RunRecord:
        obj = _migrated(obj, _version(obj, "run"), _run_v1)
        at = _Where(root, recorded_root)
        return cls(
            status=obj["status"], step=int(obj["step"]),
            metrics=Metrics.from_json(obj["metrics"]),
            rewind_checkpoints={int(k): at(p) for k, p in obj["rewind_checkpoints"].items()},
            final_checkpoint=at(obj["final_checkpoint"]),
            data_order_seed=obj["data_order_seed"], augment_seed=obj["augment_seed"],
            wall_time_s_last_session=obj.get("wall_time_s_last_session"))


def _marker_v1(obj: Mapping[str, Any]) -> Json:
    return {**obj, "path": _run_checkpoint_v1(obj["path"])}


@dataclasses.dataclass(frozen=True)
class CheckpointMarker:
    """The commit marker of a permanent checkpoint (``final.json``,
    ``rewind/step_<k>.json``): the checkpoint exists once this does.
    Root: the run dir."""

    step: int
    checkpoint: str

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "step": self.step,
                "path": layout.relative(root, self.checkpoint)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> CheckpointMarker:
        obj = _migrated(obj, _version(obj, "checkpoint marker"), _marker_v1)
        return cls(int(obj["step"]), _Where(root, recorded_root)(obj["path"]))


# -- the instability analysis ----------------------------------------------------------------

def _child_v1(obj: Mapping[str, Any]) -> Json:
    """0.1.0's IMP children held only ``test_error`` and ``train_error``; they
    become the instability experiment's shape (accuracy = 1 − error, final
    checkpoint where the layout puts it, seeds and losses unknown)."""
    if "metrics" in obj:
        return dict(obj)
    errors = {f"{s}_error": obj[f"{s}_error"] for s in SPLITS}
    return {"child": obj["child"], "run_dir": obj["run_dir"],
            "final_checkpoint": layout.final_checkpoint(obj["run_dir"]),
            "data_order_seed": None, "augment_seed": None,
            "metrics": {**errors, **{f"{s}_accuracy": 1.0 - obj[f"{s}_error"]
                                     for s in SPLITS}}}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChildRecord:
    """A child trained from W_k to T with its own SGD noise: in the instability
    experiment and in IMP's sparse instability alike. Seeds are None only for
    IMP children of release 0.1.0. ``child_noise``: which seeds were the
    child's own (``--child_noise``); None in records from before that knob,
    whose children all drew both ('both')."""

    child: int
    run_dir: str
    final_checkpoint: str
    metrics: Metrics
    data_order_seed: int | None
    augment_seed: int | None
    child_noise: str | None = None

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "child": self.child,
                "run_dir": layout.relative(root, self.run_dir),
                "final_checkpoint": layout.relative(root, self.final_checkpoint),
                "metrics": self.metrics.to_json(), "data_order_seed": self.data_order_seed,
                "augment_seed": self.augment_seed, "child_noise": self.child_noise}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> ChildRecord:
        obj = _migrated(obj, _version(obj, "child"), _child_v1)
        at = _Where(root, recorded_root)
        return cls(child=obj["child"], run_dir=at(obj["run_dir"]),
                   final_checkpoint=at(obj["final_checkpoint"]),
                   metrics=Metrics.from_json(obj["metrics"]),
                   data_order_seed=obj.get("data_order_seed"),
                   augment_seed=obj.get("augment_seed"), child_noise=obj.get("child_noise"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParentRecord:
    """Replicate ``replicate``'s parent, trained 0 -> T from its own init."""

    replicate: int
    run_dir: str
    final_checkpoint: str
    metrics: Metrics
    init_seed: int
    data_order_seed: int
    augment_seed: int

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "replicate": self.replicate,
                "run_dir": layout.relative(root, self.run_dir),
                "final_checkpoint": layout.relative(root, self.final_checkpoint),
                "metrics": self.metrics.to_json(), "init_seed": self.init_seed,
                "data_order_seed": self.data_order_seed, "augment_seed": self.augment_seed}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> ParentRecord:
        _version(obj, "parent")  # schema 1: the same fields, absolute paths
        at = _Where(root, recorded_root)
        return cls(replicate=obj["replicate"], run_dir=at(obj["run_dir"]),
                   final_checkpoint=at(obj["final_checkpoint"]),
                   metrics=Metrics.from_json(obj["metrics"]), init_seed=obj["init_seed"],
                   data_order_seed=obj["data_order_seed"], augment_seed=obj["augment_seed"])


@dataclasses.dataclass(frozen=True, kw_only=True)
class MatchingRecord:
    """What weight matching cost for one pair (``stability.alignment``).

    Attributes:
      iterations: full passes over the permutation groups.
      converged: the last pass improved no group (False: stopped at the cap).
      objective: sum <W₁, P(W₂)> before the first pass and after each pass.
      groups: permutation groups of the network (its permutable axes).
      seed: seeds the order the groups are visited in.
      wall_time_s: the matching alone (not the path evaluation).
      unsupported_layers: layers the spec pinned, as not understood.
    """

    iterations: int
    converged: bool
    objective: list[float]
    groups: int
    seed: int
    wall_time_s: float
    unsupported_layers: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> Json:
        return {**dataclasses.asdict(self), "objective": list(self.objective),
                "unsupported_layers": list(self.unsupported_layers)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> MatchingRecord:
        return cls(iterations=int(obj["iterations"]), converged=bool(obj["converged"]),
                   objective=_floats(obj["objective"]), groups=int(obj["groups"]),
                   seed=int(obj["seed"]), wall_time_s=float(obj["wall_time_s"]),
                   unsupported_layers=list(obj.get("unsupported_layers", [])))


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlignedPathRecord:
    """A pair's path after aligning network 2 to network 1, W(α) = (1−α)·W₁ +
    α·P(W₂), on the pair's α grid (``--align=weights``).

    Attributes:
      error, loss: split -> the curve, one value per α.
      barrier: split -> max_α E(α) − ½(E(W₁) + E(P(W₂))).
      matching: the alignment's cost.
      wall_time_s: evaluating the aligned path (the matching excluded).
      loss_barrier: split -> the same of the loss curve (None in older records).
    """

    error: dict[str, list[float]]
    loss: dict[str, list[float]]
    barrier: dict[str, float]
    matching: MatchingRecord
    wall_time_s: float | None = None
    loss_barrier: dict[str, float] | None = None

    def to_json(self) -> Json:
        return {**{f"{s}_error": self.error[s] for s in SPLITS},
                **{f"{s}_loss": self.loss[s] for s in SPLITS},
                "barrier": dict(self.barrier), "matching": self.matching.to_json(),
                "wall_time_s": self.wall_time_s, "loss_barrier": _opt_dict(self.loss_barrier)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AlignedPathRecord:
        return cls(error={s: _floats(obj[f"{s}_error"]) for s in SPLITS},
                   loss={s: _floats(obj[f"{s}_loss"]) for s in SPLITS},
                   barrier=_by_split(obj["barrier"], float),
                   matching=MatchingRecord.from_json(obj["matching"]),
                   wall_time_s=obj.get("wall_time_s"),
                   loss_barrier=_optional(obj.get("loss_barrier"),
                                          lambda b: _by_split(b, float)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class PairRecord:
    """``pair_<i>_<j>.json``: error and loss along W(α) = (1−α)·W₁ + α·W₂
    between two networks, and the barrier of each split.

    Attributes:
      endpoints: the two checkpoints.
      alphas: the α of each point.
      error, loss: split -> the curve, one value per α.
      barrier: split -> max_α E(α) − ½(E(W₁) + E(W₂)), the paper's
        instability (on error).
      rewind_step, children: k and the two children, for children of one W_k.
      replicates: the two replicates, for independently trained parents.
      aligned: the path after aligning network 2 to network 1 (None
        without ``--align=weights``, and in results written before it).
      loss_barrier: split -> max_α L(α) − ½(L(W₁) + L(W₂)) of the loss curve
        (``barrier.loss_barrier``); None in records written before it.
      child_noise: the children's ``--child_noise`` (None for independent
        parents, and in records written before it).
    """

    status: str
    endpoints: list[str]
    bn_mode: str
    alphas: list[float]
    error: dict[str, list[float]]
    loss: dict[str, list[float]]
    barrier: dict[str, float]
    wall_time_s: float | None = None
    rewind_step: int | None = None
    children: list[int] | None = None
    replicates: list[int] | None = None
    aligned: AlignedPathRecord | None = None
    loss_barrier: dict[str, float] | None = None
    child_noise: str | None = None

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "status": self.status,
                "endpoints": [layout.relative(root, p) for p in self.endpoints],
                "bn_mode": self.bn_mode, "alphas": self.alphas,
                **{f"{s}_error": self.error[s] for s in SPLITS},
                **{f"{s}_loss": self.loss[s] for s in SPLITS},
                "barrier": dict(self.barrier), "wall_time_s": self.wall_time_s,
                "rewind_step": self.rewind_step, "children": self.children,
                "replicates": self.replicates,
                "aligned": None if self.aligned is None else self.aligned.to_json(),
                "loss_barrier": _opt_dict(self.loss_barrier), "child_noise": self.child_noise}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> PairRecord:
        _version(obj, "pair")  # schema 1: absent identity keys read as None
        at = _Where(root, recorded_root)
        return cls(status=obj["status"], endpoints=[at(p) for p in obj["endpoints"]],
                   bn_mode=obj["bn_mode"], alphas=_floats(obj["alphas"]),
                   error={s: _floats(obj[f"{s}_error"]) for s in SPLITS},
                   loss={s: _floats(obj[f"{s}_loss"]) for s in SPLITS},
                   barrier=_by_split(obj["barrier"], float),
                   wall_time_s=obj.get("wall_time_s"), rewind_step=obj.get("rewind_step"),
                   children=obj.get("children"), replicates=obj.get("replicates"),
                   aligned=_optional(obj.get("aligned"), AlignedPathRecord.from_json),
                   loss_barrier=_optional(obj.get("loss_barrier"),
                                          lambda b: _by_split(b, float)),
                   child_noise=obj.get("child_noise"))


def _optional(obj: Any, parse: Callable[[Any], Any]) -> Any:
    return None if obj is None else parse(obj)


def _opt_dict(by_split: Mapping[str, float] | None) -> Json | None:
    return None if by_split is None else dict(by_split)


def _stats_json(barriers: Mapping[str, Stat] | None) -> Json | None:
    return None if barriers is None else {s: barriers[s].to_json() for s in SPLITS}


def _pairs_json(pairs: list[PairRecord] | None, root: str) -> list[Json] | None:
    return None if pairs is None else [p.to_json(root) for p in pairs]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChildrenRecord:
    """Children spawned from one W_k, the paths between every two of them, and
    the barrier over those pairs (mean ± std): ``analysis.children_record``.
    ``aligned_barrier``: the same over the pairs' aligned paths (None
    without ``--align=weights``). ``loss_barrier``: the pairs' loss barriers,
    mean ± std (None in older records)."""

    children: list[ChildRecord]
    pairs: list[PairRecord]
    barrier: dict[str, Stat]
    aligned_barrier: dict[str, Stat] | None = None
    loss_barrier: dict[str, Stat] | None = None

    def _json(self, root: str) -> Json:
        return {"schema": SCHEMA, "children": [c.to_json(root) for c in self.children],
                "pairs": _pairs_json(self.pairs, root),
                "barrier": {s: self.barrier[s].to_json() for s in SPLITS},
                "aligned_barrier": _stats_json(self.aligned_barrier),
                "loss_barrier": _stats_json(self.loss_barrier)}

    @staticmethod
    def _fields(obj: Mapping[str, Any], root: str, recorded_root: str | None
                ) -> dict[str, Any]:
        pairs = obj["pairs"]
        return {
            "children": [ChildRecord.from_json(c, root, recorded_root)
                         for c in obj["children"]],
            "pairs": None if pairs is None else [PairRecord.from_json(p, root, recorded_root)
                                                 for p in pairs],
            "barrier": _by_split(obj["barrier"], Stat.from_json),
            "aligned_barrier": _optional(obj.get("aligned_barrier"),
                                         lambda b: _by_split(b, Stat.from_json)),
            "loss_barrier": _optional(obj.get("loss_barrier"),
                                      lambda b: _by_split(b, Stat.from_json))}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplicateRecord(ChildrenRecord):
    """The children of replicate ``replicate``'s W_k (instability experiment)."""

    replicate: int

    def to_json(self, root: str) -> Json:
        return {**self._json(root), "replicate": self.replicate}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> ReplicateRecord:
        _version(obj, "replicate")
        return cls(replicate=obj["replicate"], **cls._fields(obj, root, recorded_root))


def _status_v1(obj: Mapping[str, Any]) -> Json:
    """0.1.0 dropped ``status`` from entries embedded in a results.json; they
    were embedded only once complete."""
    return {"status": COMPLETE, **obj}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RewindPointRecord:
    """``k_<k>.json``: rewind step k over every replicate, and an entry of the
    instability experiment's ``results.json``.

    Attributes:
      barrier: split -> mean ± std over replicates (``barrier.aggregate``).
      children_error: split -> the children's final error, mean ± std.
      stable: the mean test barrier is below the stability threshold.
      aligned_barrier: ``barrier`` of the aligned paths (``--align=weights``).
      loss_barrier: ``barrier`` of the paths' loss curves (None in older
        records); reported beside the error barrier, never the criterion.
    """

    status: str
    rewind_step: int
    replicates: list[ReplicateRecord]
    barrier: dict[str, Aggregate]
    children_error: dict[str, Stat]
    stable: bool
    aligned_barrier: dict[str, Aggregate] | None = None
    loss_barrier: dict[str, Aggregate] | None = None

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "status": self.status, "rewind_step": self.rewind_step,
                "replicates": [r.to_json(root) for r in self.replicates],
                "barrier": {s: self.barrier[s].to_json() for s in SPLITS},
                "children_error": {s: self.children_error[s].to_json() for s in SPLITS},
                "stable": self.stable, "aligned_barrier": _stats_json(self.aligned_barrier),
                "loss_barrier": _stats_json(self.loss_barrier)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> RewindPointRecord:
        obj = _migrated(obj, _version(obj, "rewind point"), _status_v1)
        return cls(status=obj["status"], rewind_step=obj["rewind_step"],
                   replicates=[ReplicateRecord.from_json(r, root, recorded_root)
                               for r in obj["replicates"]],
                   barrier=_by_split(obj["barrier"], Aggregate.from_json),
                   children_error=_by_split(obj["children_error"], Stat.from_json),
                   stable=bool(obj["stable"]),
                   aligned_barrier=_optional(obj.get("aligned_barrier"),
                                             lambda b: _by_split(b, Aggregate.from_json)),
                   loss_barrier=_optional(obj.get("loss_barrier"),
                                          lambda b: _by_split(b, Aggregate.from_json)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class IndependentRecord:
    """Paths between the final parents of every two replicates (and, with
    ``--align=weights``, the barrier over their aligned paths)."""

    pairs: list[PairRecord]
    barrier: dict[str, Stat]
    aligned_barrier: dict[str, Stat] | None = None
    loss_barrier: dict[str, Stat] | None = None

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "pairs": [p.to_json(root) for p in self.pairs],
                "barrier": {s: self.barrier[s].to_json() for s in SPLITS},
                "aligned_barrier": _stats_json(self.aligned_barrier),
                "loss_barrier": _stats_json(self.loss_barrier)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> IndependentRecord:
        _version(obj, "independent")
        return cls(pairs=[PairRecord.from_json(p, root, recorded_root) for p in obj["pairs"]],
                   barrier=_by_split(obj["barrier"], Stat.from_json),
                   aligned_barrier=_optional(obj.get("aligned_barrier"),
                                             lambda b: _by_split(b, Stat.from_json)),
                   loss_barrier=_optional(obj.get("loss_barrier"),
                                          lambda b: _by_split(b, Stat.from_json)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstabilitySettings:
    """The analysis' knobs, as recorded with its results."""

    children: int
    interpolation_points: int
    stability_threshold: float
    bn_mode: str
    replicates: int
    child_optimizer_state: str
    train_eval_examples: int
    align: str = "none"
    child_noise: str = "both"

    def to_json(self) -> Json:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> InstabilitySettings:
        # A field added later (``align``, ``child_noise``) is absent from older
        # results: its default, which was the only behaviour then.
        return cls(**{f.name: obj[f.name] for f in dataclasses.fields(cls)
                      if f.name in obj or f.default is dataclasses.MISSING})


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstabilityResults:
    """The instability experiment's ``results.json``."""

    EXPERIMENT: ClassVar[str] = "instability"
    status: str
    settings: InstabilitySettings
    parents: list[ParentRecord]
    rewind_steps: list[RewindPointRecord]
    independent: IndependentRecord | None
    table: str
    wall_time_s_last_session: float | None = None
    layerwise: list[LayerwiseSummaryRecord] | None = None

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "status": self.status, "experiment": self.EXPERIMENT,
                "settings": self.settings.to_json(),
                "parents": [p.to_json(root) for p in self.parents],
                "rewind_steps": [r.to_json(root) for r in self.rewind_steps],
                "independent": (None if self.independent is None
                                else self.independent.to_json(root)),
                "table": self.table,
                "wall_time_s_last_session": self.wall_time_s_last_session,
                "layerwise": (None if self.layerwise is None
                              else [x.to_json() for x in self.layerwise])}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> InstabilityResults:
        _version(obj, "instability results")  # schema 1: its entries migrate
        independent = obj.get("independent")
        return cls(
            status=obj["status"], settings=InstabilitySettings.from_json(obj["settings"]),
            parents=[ParentRecord.from_json(p, root, recorded_root) for p in obj["parents"]],
            rewind_steps=[RewindPointRecord.from_json(r, root, recorded_root)
                          for r in obj["rewind_steps"]],
            independent=(None if independent is None
                         else IndependentRecord.from_json(independent, root, recorded_root)),
            table=obj["table"], wall_time_s_last_session=obj.get("wall_time_s_last_session"),
            layerwise=(None if obj.get("layerwise") is None
                       else [LayerwiseSummaryRecord.from_json(x) for x in obj["layerwise"]]))


# -- IMP ----------------------------------------------------------------------------------------

def _sparse_v1(obj: Mapping[str, Any]) -> Json:
    """0.1.0 named the pair files (absolute paths) instead of embedding the
    pairs: read as None, the pairs are the layout's files
    (``layout.pair_file(layout.sparse_instability_dir(...), i, j)``)."""
    return {**_status_v1(obj), "pairs": None}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SparseInstabilityRecord(ChildrenRecord):
    """A level's ``instability.json`` and its results.json entry: the
    children of the level's masked W_k, their pairs and barrier.

    ``pairs`` is None only in a record of release 0.1.0 (see ``_sparse_v1``).
    ``layerwise``: the layer-wise barriers of those pairs at the rewind step
    (``--layerwise_barriers``; None without it, and in older records).
    """

    pairs: list[PairRecord] | None  # type: ignore[assignment]
    status: str
    rewind_step: int
    stable: bool
    layerwise: LayerwiseSummaryRecord | None = None

    def to_json(self, root: str) -> Json:
        return {**self._json(root), "status": self.status, "rewind_step": self.rewind_step,
                "stable": self.stable,
                "layerwise": None if self.layerwise is None else self.layerwise.to_json()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> SparseInstabilityRecord:
        obj = _migrated(obj, _version(obj, "sparse instability"), _sparse_v1)
        return cls(status=obj["status"], rewind_step=obj["rewind_step"],
                   stable=bool(obj["stable"]),
                   layerwise=_optional(obj.get("layerwise"), LayerwiseSummaryRecord.from_json),
                   **cls._fields(obj, root, recorded_root))


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkRecord:
    """One trained network of IMP: a level's or a baseline's.

    Attributes:
      density: of the prunable weights; ``remaining_weights`` of
        ``prunable_weights`` survive; ``layer_density`` per kernel.
      wall_time_s: the run's training and evaluation in its last session.
    """

    level: int
    density: float
    remaining_weights: int
    prunable_weights: int
    layer_density: dict[str, float]
    test_accuracy: float
    test_error: float
    train_accuracy: float
    train_error: float
    wall_time_s: float | None
    run_dir: str

    def accuracy(self, split: str) -> float:
        return float(getattr(self, f"{split}_accuracy"))

    def _json(self, root: str) -> Json:
        return {"schema": SCHEMA,
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(NetworkRecord)},
                "layer_density": dict(self.layer_density),
                "run_dir": layout.relative(root, self.run_dir)}

    @staticmethod
    def _fields(obj: Mapping[str, Any], root: str, recorded_root: str | None
                ) -> dict[str, Any]:
        return {**{f.name: obj[f.name] for f in dataclasses.fields(NetworkRecord)},
                "layer_density": dict(obj["layer_density"]),
                "run_dir": layout.resolve(root, obj["run_dir"], recorded_root)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaselineRecord(NetworkRecord):
    """A baseline at a level (a registered branch of ``pruning/branches.py``:
    random pruning, random reinitialization); ``seed`` drew its random mask
    or weights (None for a branch that draws nothing); ``instability`` its
    sparse instability, as a level's (None unless measured, and in records
    written before baselines had it)."""

    seed: int | None
    instability: SparseInstabilityRecord | None = None

    def to_json(self, root: str) -> Json:
        return {**self._json(root), "seed": self.seed,
                "instability": (None if self.instability is None
                                else self.instability.to_json(root))}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> BaselineRecord:
        _version(obj, "baseline")  # schema 1: the same fields, absolute paths
        found = obj.get("instability")  # absent before baselines had sparse instability
        return cls(seed=obj.get("seed"),
                   instability=(None if found is None else
                                SparseInstabilityRecord.from_json(found, root, recorded_root)),
                   **cls._fields(obj, root, recorded_root))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LevelRecord(NetworkRecord):
    """An IMP level: its network, its baselines by name, and its sparse
    instability (None unless measured)."""

    baselines: dict[str, BaselineRecord] = dataclasses.field(default_factory=dict)
    instability: SparseInstabilityRecord | None = None

    def to_json(self, root: str) -> Json:
        return {**self._json(root),
                "baselines": {n: b.to_json(root) for n, b in self.baselines.items()},
                "instability": (None if self.instability is None
                                else self.instability.to_json(root))}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> LevelRecord:
        _version(obj, "level")  # schema 1: "instability" absent when not measured
        found = obj.get("instability")
        return cls(
            baselines={n: BaselineRecord.from_json(b, root, recorded_root)
                       for n, b in obj.get("baselines", {}).items()},
            instability=(None if found is None
                         else SparseInstabilityRecord.from_json(found, root, recorded_root)),
            **cls._fields(obj, root, recorded_root))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImpResults:
    """The IMP experiment's ``results.json``: ``running`` until every level and
    baseline is done, then ``complete``."""

    EXPERIMENT: ClassVar[str] = "imp"
    status: str
    rewind_step: int
    prune_fraction: float
    pruning_scope: str
    levels: list[LevelRecord]
    level_paths: list[LevelPathRecord] = dataclasses.field(default_factory=list)

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "status": self.status, "experiment": self.EXPERIMENT,
                "rewind_step": self.rewind_step, "prune_fraction": self.prune_fraction,
                "pruning_scope": self.pruning_scope,
                "levels": [r.to_json(root) for r in self.levels],
                "level_paths": [p.to_json(root) for p in self.level_paths]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> ImpResults:
        _version(obj, "imp results")  # schema 1: its levels migrate
        return cls(status=obj["status"], rewind_step=obj["rewind_step"],
                   prune_fraction=obj["prune_fraction"], pruning_scope=obj["pruning_scope"],
                   levels=[LevelRecord.from_json(r, root, recorded_root)
                           for r in obj["levels"]],
                   level_paths=[LevelPathRecord.from_json(p, root, recorded_root)
                                for p in obj.get("level_paths", [])])


# -- instruments (issue 16): layer-wise barriers, level-to-level paths, onset ---------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerGroupPathRecord:
    """One group's layer-wise path (``stability.layerwise``): the group moves
    from child 1 to child 2, every other weight stays at child 1.

    Attributes:
      name, layers: the group and the layers whose weights it holds.
      parameters: scalars in the group's floating-point weights (pruned
        zeros included, a pruning wrapper's mask and threshold not:
        ``layerwise.parameters``).
      error, loss: split -> the curve, one value per α of the record.
      barrier: split -> the curve's error barrier.
    """

    name: str
    layers: list[str]
    parameters: int
    error: dict[str, list[float]]
    loss: dict[str, list[float]]
    barrier: dict[str, float]

    def to_json(self) -> Json:
        return {"name": self.name, "layers": list(self.layers), "parameters": self.parameters,
                **{f"{s}_error": self.error[s] for s in SPLITS},
                **{f"{s}_loss": self.loss[s] for s in SPLITS},
                "barrier": dict(self.barrier)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LayerGroupPathRecord:
        return cls(name=obj["name"], layers=list(obj["layers"]),
                   parameters=int(obj["parameters"]),
                   error={s: _floats(obj[f"{s}_error"]) for s in SPLITS},
                   loss={s: _floats(obj[f"{s}_loss"]) for s in SPLITS},
                   barrier=_by_split(obj["barrier"], float))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerwiseRecord:
    """``layerwise_<i>_<j>.json``: the layer-wise barriers of one pair
    (``--layerwise_barriers``), every group on the same α grid."""

    status: str
    endpoints: list[str]
    bn_mode: str
    alphas: list[float]
    groups: list[LayerGroupPathRecord]
    rewind_step: int | None = None
    children: list[int] | None = None
    wall_time_s: float | None = None

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "status": self.status,
                "endpoints": [layout.relative(root, p) for p in self.endpoints],
                "bn_mode": self.bn_mode, "alphas": self.alphas,
                "groups": [g.to_json() for g in self.groups],
                "rewind_step": self.rewind_step, "children": self.children,
                "wall_time_s": self.wall_time_s}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> LayerwiseRecord:
        _version(obj, "layer-wise barriers")
        at = _Where(root, recorded_root)
        return cls(status=obj["status"], endpoints=[at(p) for p in obj["endpoints"]],
                   bn_mode=obj["bn_mode"], alphas=_floats(obj["alphas"]),
                   groups=[LayerGroupPathRecord.from_json(g) for g in obj["groups"]],
                   rewind_step=obj.get("rewind_step"), children=obj.get("children"),
                   wall_time_s=obj.get("wall_time_s"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerwiseSummaryRecord:
    """Layer-wise barriers at rewind step k over every pair of every replicate:
    group -> split -> mean ± std (groups in graph order)."""

    rewind_step: int
    groups: list[str]
    barrier: dict[str, dict[str, Stat]]

    def to_json(self) -> Json:
        return {"rewind_step": self.rewind_step, "groups": list(self.groups),
                "barrier": {g: {s: self.barrier[g][s].to_json() for s in SPLITS}
                            for g in self.groups}}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LayerwiseSummaryRecord:
        return cls(rewind_step=int(obj["rewind_step"]), groups=list(obj["groups"]),
                   barrier={g: _by_split(obj["barrier"][g], Stat.from_json)
                            for g in obj["groups"]})


@dataclasses.dataclass(frozen=True, kw_only=True)
class LevelPathRecord:
    """``level_paths/level_<a>_level_<b>.json``: the raw linear path between
    the trained networks of IMP levels a < b (``--imp_level_barriers``).

    Attributes:
      levels: (a, b); densities: theirs.
      pair: the path (endpoints: the levels' final checkpoints).
    """

    status: str
    levels: list[int]
    densities: list[float]
    pair: PairRecord

    @property
    def gap(self) -> int:
        return self.levels[1] - self.levels[0]

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "status": self.status, "levels": list(self.levels),
                "densities": list(self.densities), "pair": self.pair.to_json(root)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> LevelPathRecord:
        _version(obj, "level path")
        return cls(status=obj["status"], levels=[int(x) for x in obj["levels"]],
                   densities=_floats(obj["densities"]),
                   pair=PairRecord.from_json(obj["pair"], root, recorded_root))


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnsetProbeRecord:
    """A rewind step the onset search measured: its barrier over replicates
    (``barrier.aggregate``) and whether it counts as stable."""

    rewind_step: int
    barrier: dict[str, Aggregate]
    stable: bool

    def to_json(self) -> Json:
        return {"rewind_step": self.rewind_step,
                "barrier": {s: self.barrier[s].to_json() for s in SPLITS},
                "stable": self.stable}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> OnsetProbeRecord:
        return cls(rewind_step=int(obj["rewind_step"]),
                   barrier=_by_split(obj["barrier"], Aggregate.from_json),
                   stable=bool(obj["stable"]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnsetResults:
    """The onset experiment's ``results.json`` (``stability.onset``).

    Attributes:
      status: ``running`` while the search probes, then ``complete``.
      level: 0 for the dense network, L for IMP level L's subnetwork.
      grid: the rewind steps the parent keeps; threshold, checks: the rule.
      probes: the measured rewind steps, in the order the search used them.
      next_probe: the k being measured now (None once complete).
      bracket: [last unstable k, first stable k] (None: no such k on the grid).
      inconsistencies: [stable k, unstable k' > k] pairs among the probes.
      outcome: ``stability.onset``'s (found, stable_from_start, never_stable,
        searching).
      child_runs: children the search trained; full_grid_child_runs: what a
        sweep of the whole grid would train.
      layerwise: each probe's layer-wise barriers (``--layerwise_barriers``).
    """

    EXPERIMENT: ClassVar[str] = "onset"
    status: str
    level: int
    grid: list[int]
    threshold: float
    checks: int
    children: int
    replicates: int
    probes: list[OnsetProbeRecord]
    next_probe: int | None
    bracket: list[int | None]
    inconsistencies: list[list[int]]
    outcome: str
    child_runs: int
    full_grid_child_runs: int
    table: str
    wall_time_s_last_session: float | None = None
    layerwise: list[LayerwiseSummaryRecord] | None = None

    def to_json(self, root: str) -> Json:
        del root  # no paths: the probes' pieces are the instability layout's
        return {"schema": SCHEMA, "status": self.status, "experiment": self.EXPERIMENT,
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                   if f.name not in ("status", "probes", "layerwise")},
                "probes": [p.to_json() for p in self.probes],
                "layerwise": (None if self.layerwise is None
                              else [x.to_json() for x in self.layerwise])}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> OnsetResults:
        _version(obj, "onset results")
        del root, recorded_root
        names = {f.name for f in dataclasses.fields(cls)} - {"probes", "layerwise"}
        layerwise = obj.get("layerwise")
        return cls(probes=[OnsetProbeRecord.from_json(p) for p in obj["probes"]],
                   layerwise=(None if layerwise is None
                              else [LayerwiseSummaryRecord.from_json(x) for x in layerwise]),
                   **{k: obj[k] for k in names if k in obj})


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImpSweepResults:
    """A rewind-step sweep's ``results.json``: every chain's ``ImpResults``
    (as in its own ``k_<k>/results.json``), in the order of k; ``running``
    until every chain is complete."""

    EXPERIMENT: ClassVar[str] = "imp_sweep"
    status: str
    chains: list[ImpResults]

    def to_json(self, root: str) -> Json:
        return {"schema": SCHEMA, "status": self.status, "experiment": self.EXPERIMENT,
                "chains": [c.to_json(root) for c in self.chains]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> ImpSweepResults:
        _version(obj, "imp sweep results")
        return cls(status=obj["status"],
                   chains=[ImpResults.from_json(c, root, recorded_root) for c in obj["chains"]])


Results = RunRecord | InstabilityResults | ImpResults | OnsetResults | ImpSweepResults


class ExperimentResults:
    """An experiment's ``results.json``, whichever experiment wrote it: the
    ``train`` experiment's is its run's ``RunRecord``."""

    @staticmethod
    def from_json(obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> Results:
        kind = obj.get("experiment")
        if kind == InstabilityResults.EXPERIMENT:
            return InstabilityResults.from_json(obj, root, recorded_root)
        if kind == ImpResults.EXPERIMENT:
            return ImpResults.from_json(obj, root, recorded_root)
        if kind == OnsetResults.EXPERIMENT:
            return OnsetResults.from_json(obj, root, recorded_root)
        if kind == ImpSweepResults.EXPERIMENT:
            return ImpSweepResults.from_json(obj, root, recorded_root)
        return RunRecord.from_json(obj, root, recorded_root)
