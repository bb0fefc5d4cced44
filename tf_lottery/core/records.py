"""Typed records of what tf_lottery writes: one dataclass per JSON shape, with a
schema version and a JSON round trip, shared by the writers and the report.

The JSON is cattrs' (``record_codec.py``): each record declares only its
fields, and where its JSON differs from them: a ``RecordPath`` field, a
``BY_SPLIT`` field stored as one key per split, a ``RENAMED`` key, and its
``migrate_v1`` from release 0.1.0.

A record holds its paths absolute (usable as they are); its JSON holds them
relative to a *root*: the run's own directory for a run's ``results.json``
(``RunRecord``) and its checkpoint markers (``CheckpointMarker``), the
experiment's model_dir for every other record. ``to_json(root)`` writes,
``from_json(obj, root, recorded_root)`` reads (``layout.relative`` and
``layout.resolve``), so ``X.from_json(x.to_json(root), root) == x``.

Versions. Every record's JSON carries ``"schema"``; release 0.1.0's had 1
(or, for pieces and nested entries, none, which reads as 1). ``from_json``
migrates schema 1 explicitly (each class' ``migrate_v1``, a ``_v1``
function below that says what changed, applied to the JSON before it is
structured) and refuses a newer schema than it knows. Schema 2 (this release):

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

Also added within schema 2 with defaults (issue 26): curves between
children (``CurveRecord``, ``--curve``), the ``curves`` and
``curve_barrier`` of a rewind point's children and the ``curve_barrier``
of a rewind point (None without ``--curve`` and in older records).
Also added within schema 2 with defaults (issue 26): the instability
results' ``centroid`` summaries and settings' ``plane`` and ``centroid``;
new records for planes (``PlaneRecord``) and centroids (``CentroidRecord``).

Pure Python: no TensorFlow, no I/O (``store.py`` reads and writes them).
"""

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from tf_lottery.core import layout
from tf_lottery.core.layout import COMPLETE, SPLITS
from tf_lottery.core.record_codec import SCHEMA as SCHEMA  # what this release writes
from tf_lottery.core.record_codec import Json, Record, RecordPath, Value

# -- values -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Stat(Value):
    """mean ± sample std over ``n`` values (``barrier.summarize``). Read back
    from TensorBoard events, ``n`` (and maybe ``std``) is unknown: None."""

    mean: float
    std: float | None
    n: int | None = None


@dataclasses.dataclass(frozen=True)
class Aggregate(Stat):
    """Barriers over replicates (``barrier.aggregate``): each replicate's
    mean ± std over its pairs, and mean ± std over the replicates' means."""

    per_replicate: list[Stat] = dataclasses.field(default_factory=list)

    @property
    def stat(self) -> Stat:
        return Stat(self.mean, self.std, self.n)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Metrics(Value):
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
class RunRecord(Record):
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
    rewind_checkpoints: dict[int, RecordPath]
    final_checkpoint: RecordPath
    data_order_seed: int
    augment_seed: int
    wall_time_s_last_session: float | None = None

    migrate_v1 = staticmethod(_run_v1)


def _marker_v1(obj: Mapping[str, Any]) -> Json:
    return {**obj, "path": _run_checkpoint_v1(obj["path"])}


@dataclasses.dataclass(frozen=True)
class CheckpointMarker(Record):
    """The commit marker of a permanent checkpoint (``final.json``,
    ``rewind/step_<k>.json``): the checkpoint exists once this does.
    Root: the run dir."""

    RENAMED: ClassVar[Mapping[str, str]] = {"checkpoint": "path"}
    step: int
    checkpoint: RecordPath

    migrate_v1 = staticmethod(_marker_v1)


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
class ChildRecord(Record):
    """A child trained from W_k to T with its own SGD noise: in the instability
    experiment and in IMP's sparse instability alike. Seeds are None only for
    IMP children of release 0.1.0. ``child_noise``: which seeds were the
    child's own (``--child_noise``); None in records from before that knob,
    whose children all drew both ('both')."""

    child: int
    run_dir: RecordPath
    final_checkpoint: RecordPath
    metrics: Metrics
    data_order_seed: int | None
    augment_seed: int | None
    child_noise: str | None = None

    migrate_v1 = staticmethod(_child_v1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParentRecord(Record):
    """Replicate ``replicate``'s parent, trained 0 -> T from its own init."""

    replicate: int
    run_dir: RecordPath
    final_checkpoint: RecordPath
    metrics: Metrics
    init_seed: int
    data_order_seed: int
    augment_seed: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class MatchingRecord(Value):
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlignedPathRecord(Value):
    """A pair's path after aligning network 2 to network 1, W(α) = (1−α)·W₁ +
    α·P(W₂), on the pair's α grid (``--align=weights``).

    Attributes:
      error, loss: split -> the curve, one value per α.
      barrier: split -> max_α E(α) − ½(E(W₁) + E(P(W₂))).
      matching: the alignment's cost.
      wall_time_s: evaluating the aligned path (the matching excluded).
      loss_barrier: split -> the same of the loss curve (None in older records).
    """

    BY_SPLIT: ClassVar[tuple[str, ...]] = ("error", "loss")  # test_error, train_error, ...
    error: dict[str, list[float]]
    loss: dict[str, list[float]]
    barrier: dict[str, float]
    matching: MatchingRecord
    wall_time_s: float | None = None
    loss_barrier: dict[str, float] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PairRecord(Record):
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

    BY_SPLIT: ClassVar[tuple[str, ...]] = ("error", "loss")  # test_error, train_error, ...
    status: str
    endpoints: list[RecordPath]
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class CurveRecord(Record):
    """``curve_<i>_<j>.json``: error and loss along the quadratic Bézier curve
    W(t) = (1−t)²·W₁ + 2t(1−t)·θ + t²·W₂ between two networks, whose bend θ
    was fitted (``stability.curves``; ``--curve``), and its barriers.

    Attributes:
      endpoints: the two checkpoints.
      bend: the fitted θ's checkpoint (``<curve dir>/final/ckpt``); None
        when both ends are the same network (the curve is the point).
      bn_mode: 'recompute' for a network with BatchNorm (statistics
        re-estimated at every point), else 'interpolate' (none to treat).
      alphas: the t of each point (the line's α grid).
      error, loss: split -> the curve, one value per t.
      barrier, loss_barrier: split -> max_t − ½(ends), as the line's.
      line_barrier: split -> the pair's linear error barrier, for reference.
      steps, learning_rate: the fit's.
      fit_loss: (step, mean training loss at W(t)) of each logged stretch
        of the fit: how the fit went.
    """

    BY_SPLIT: ClassVar[tuple[str, ...]] = ("error", "loss")  # test_error, train_error, ...
    status: str
    endpoints: list[RecordPath]
    bend: RecordPath | None
    bn_mode: str
    alphas: list[float]
    error: dict[str, list[float]]
    loss: dict[str, list[float]]
    barrier: dict[str, float]
    loss_barrier: dict[str, float]
    line_barrier: dict[str, float] | None
    steps: int
    learning_rate: float
    fit_loss: list[list[float]]
    rewind_step: int | None = None
    children: list[int] | None = None
    wall_time_s: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChildrenRecord(Record):
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
    curves: list[CurveRecord] | None = None
    curve_barrier: dict[str, Stat] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplicateRecord(ChildrenRecord):
    """The children of replicate ``replicate``'s W_k (instability experiment)."""

    replicate: int


def _status_v1(obj: Mapping[str, Any]) -> Json:
    """0.1.0 dropped ``status`` from entries embedded in a results.json; they
    were embedded only once complete."""
    return {"status": COMPLETE, **obj}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RewindPointRecord(Record):
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
    curve_barrier: dict[str, Aggregate] | None = None

    migrate_v1 = staticmethod(_status_v1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class IndependentRecord(Record):
    """Paths between the final parents of every two replicates (and, with
    ``--align=weights``, the barrier over their aligned paths)."""

    pairs: list[PairRecord]
    barrier: dict[str, Stat]
    aligned_barrier: dict[str, Stat] | None = None
    loss_barrier: dict[str, Stat] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstabilitySettings(Value):
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
    plane: str = "none"
    centroid: bool = False


# -- beyond the line: planes and centroids (issue 26) ---------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class PlaneRecord(Record):
    """``plane_<plane>.json`` beside a rewind point's children: error and
    loss on a grid in the plane through three networks (``stability.plane``).

    Attributes:
      plane: which three (``--plane``: 'parent', 'aligned').
      networks: their labels, in order (a, b, c: the plane's origin, its
        first axis' direction, the third).
      endpoints: their checkpoints (for 'aligned', c is b's checkpoint,
        aligned to a before it is placed).
      coordinates: each network's (x, y); x along b − a, distances are
        L2 distances between weight vectors.
      xs, ys: the grid's coordinates; error, loss: split -> [iy][ix] values.
      network_error: split -> each network's error at its own coordinates
        (evaluated through the plane, not from its run's record).
      grid, margin: ``--plane_grid``, ``--plane_margin``.
      matching: the alignment of c ('aligned' only).
    """

    BY_SPLIT: ClassVar[tuple[str, ...]] = ("error", "loss", "network_error")
    status: str
    plane: str
    rewind_step: int
    replicate: int
    networks: list[str]
    endpoints: list[RecordPath]
    coordinates: list[list[float]]
    xs: list[float]
    ys: list[float]
    error: dict[str, list[list[float]]]
    loss: dict[str, list[list[float]]]
    network_error: dict[str, list[float]]
    bn_mode: str
    grid: int
    margin: float
    matching: MatchingRecord | None = None
    wall_time_s: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class CentroidMetrics(Value):
    """A centroid's error and loss, and its error gap to the children's mean
    (split -> value)."""

    error: dict[str, float]
    loss: dict[str, float]
    gap: dict[str, float]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CentroidRecord(Record):
    """``centroid.json`` beside a rewind point's children: the plain average
    of all N children, raw and with children 2..N aligned to child 1
    (``stability.centroid``).

    Attributes:
      endpoints: the children's checkpoints.
      children_error: split -> the children's mean final error.
      bn_recomputed: the centroid's BatchNorm statistics were re-estimated.
      matching: one per aligned child (children 2..N).
    """

    status: str
    rewind_step: int
    replicate: int
    endpoints: list[RecordPath]
    children_error: dict[str, float]
    bn_recomputed: bool
    raw: CentroidMetrics
    aligned: CentroidMetrics
    matching: list[MatchingRecord]
    wall_time_s: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class CentroidSummaryRecord(Value):
    """Rewind step k's centroids over replicates: split -> mean ± std of the
    children's error, each centroid's error and its gap."""

    rewind_step: int
    children_error: dict[str, Stat]
    error: dict[str, Stat]
    gap: dict[str, Stat]
    aligned_error: dict[str, Stat]
    aligned_gap: dict[str, Stat]


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstabilityResults(Record):
    """The instability experiment's ``results.json``."""

    EXPERIMENT: ClassVar[str] = "instability"
    status: str
    settings: InstabilitySettings
    parents: list[ParentRecord]
    rewind_steps: list[RewindPointRecord]
    independent: IndependentRecord | None
    table: str
    wall_time_s_last_session: float | None = None
    layerwise: "list[LayerwiseSummaryRecord] | None" = None
    centroid: list[CentroidSummaryRecord] | None = None


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
    layerwise: "LayerwiseSummaryRecord | None" = None

    migrate_v1 = staticmethod(_sparse_v1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkRecord(Record):
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
    run_dir: RecordPath

    def accuracy(self, split: str) -> float:
        return float(getattr(self, f"{split}_accuracy"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaselineRecord(NetworkRecord):
    """A baseline at a level (a registered branch of ``pruning/branches.py``:
    random pruning, random reinitialization); ``seed`` drew its random mask
    or weights (None for a branch that draws nothing); ``instability`` its
    sparse instability, as a level's (None unless measured, and in records
    written before baselines had it)."""

    seed: int | None
    instability: SparseInstabilityRecord | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class LevelRecord(NetworkRecord):
    """An IMP level: its network, its baselines by name, and its sparse
    instability (None unless measured)."""

    baselines: dict[str, BaselineRecord] = dataclasses.field(default_factory=dict)
    instability: SparseInstabilityRecord | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImpResults(Record):
    """The IMP experiment's ``results.json``: ``running`` until every level and
    baseline is done, then ``complete``."""

    EXPERIMENT: ClassVar[str] = "imp"
    status: str
    rewind_step: int
    prune_fraction: float
    pruning_scope: str
    levels: list[LevelRecord]
    level_paths: "list[LevelPathRecord]" = dataclasses.field(default_factory=list)


# -- instruments (issue 16): layer-wise barriers, level-to-level paths, onset ---------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerGroupPathRecord(Value):
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

    BY_SPLIT: ClassVar[tuple[str, ...]] = ("error", "loss")  # test_error, train_error, ...
    name: str
    layers: list[str]
    parameters: int
    error: dict[str, list[float]]
    loss: dict[str, list[float]]
    barrier: dict[str, float]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerwiseRecord(Record):
    """``layerwise_<i>_<j>.json``: the layer-wise barriers of one pair
    (``--layerwise_barriers``), every group on the same α grid."""

    status: str
    endpoints: list[RecordPath]
    bn_mode: str
    alphas: list[float]
    groups: list[LayerGroupPathRecord]
    rewind_step: int | None = None
    children: list[int] | None = None
    wall_time_s: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerwiseSummaryRecord(Value):
    """Layer-wise barriers at rewind step k over every pair of every replicate:
    group -> split -> mean ± std (groups in graph order)."""

    rewind_step: int
    groups: list[str]
    barrier: dict[str, dict[str, Stat]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LevelPathRecord(Record):
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnsetProbeRecord(Value):
    """A rewind step the onset search measured: its barrier over replicates
    (``barrier.aggregate``) and whether it counts as stable."""

    rewind_step: int
    barrier: dict[str, Aggregate]
    stable: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnsetResults(Record):
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
    next_probe: int | None
    bracket: list[int | None]
    inconsistencies: list[list[int]]
    outcome: str
    child_runs: int
    full_grid_child_runs: int
    table: str
    wall_time_s_last_session: float | None = None
    probes: list[OnsetProbeRecord]  # here: where its results.json has always had it
    layerwise: list[LayerwiseSummaryRecord] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImpSweepResults(Record):
    """A rewind-step sweep's ``results.json``: every chain's ``ImpResults``
    (as in its own ``k_<k>/results.json``), in the order of k; ``running``
    until every chain is complete."""

    EXPERIMENT: ClassVar[str] = "imp_sweep"
    status: str
    chains: list[ImpResults]

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
