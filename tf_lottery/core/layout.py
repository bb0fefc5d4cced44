"""Every file, directory and TensorBoard tag tf_lottery writes, and when a piece is done.

Writers (the trainer, checkpoints, the experiments, the TensorBoard writers,
the lease) and readers (``rundir``, the report) build every name from here,
so the layout of a ``--model_dir`` is written down once: a name changed here
changes for both sides, and ``docs/outputs.md`` shows the trees below
(``tree``; ``tests/test_layout.py`` checks that they agree).

Numbers in names are zero-padded so that they sort: a rewind step k with 9
digits (``step_000002000``, ``k_000002000``), an IMP level with 2
(``level_03``). Every path function also takes a string in place of a
number, used as is (``"<k>"``): that is how the documented trees are drawn.

A *record* (``records.py``) stores paths relative to its root (the run's own
directory for a run's ``results.json`` and checkpoint markers, the
experiment's model_dir for everything else): ``relative`` on the way out,
``resolve`` on the way in, so a model_dir moved or copied (``gs://`` to
local) still reads. Release 0.1.0 stored absolute paths; ``resolve``
re-roots those.

Pure Python: no TensorFlow, no I/O.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

Number = int | str  # a str is a placeholder, printed as is (``"<k>"``)

SPLITS = ("test", "train")  # evaluation splits, as named in tags and records

# -- completion ------------------------------------------------------------------------

COMPLETE = "complete"  # a piece's summary says so once everything in it is written
RUNNING = "running"  # an IMP results.json while levels or baselines remain


def is_complete(record: object | None) -> bool:
    """Whether a piece's record (run, pair, rewind point, sparse instability,
    experiment) says it is finished: the one completion check."""
    return record is not None and getattr(record, "status", None) == COMPLETE


# -- files and directories of every model_dir and run directory -------------------------

CONFIG_FILE = "config.json"
ARCHITECTURE_FILE = "architecture.json"  # the layers of a builder given by import path
RESULTS_FILE = "results.json"
LEASE_FILE = "lease.json"
MARKER_SUFFIX = ".json"  # a permanent checkpoint's commit marker: <dir>.json
CHECKPOINT_NAME = "ckpt"  # prefix inside a permanent checkpoint dir; resume ckpt-<step>
RESUME_DIR = "checkpoints"
RESUME_STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's list of checkpoints
FINAL_DIR = "final"
REWIND_DIR = "rewind"
MASK_FILE = "mask.npz"
NUMERICS_FILE = "numerics.json"  # the CPU numerics a run's checkpoints were computed with

# instability analysis
PARENT_DIR = "parent"
INDEPENDENT_DIR = "independent"

# IMP
SPARSE_INSTABILITY_DIR = "instability"
SPARSE_INSTABILITY_FILE = "instability.json"

# TensorBoard runs of the paper-level charts: summary/ (the experiment's),
# summary/<branch>/ (one per IMP branch: imp, random_prune, ...) and
# summary/independent/ (independent networks), so that a logdir shows the
# paper's charts in a few runs however many children it holds.
SUMMARY_DIR = "summary"
INDEPENDENT_RUN = "independent"
# The paper's charts in percent (summaries/paper.py) give every series a chart
# tells apart its own run, since TensorBoard colours by run: the dense curve,
# the stability threshold, IMP's dense reference and the lower edge of its
# matching band, each k's mean path (``k_name``) and each IMP level's sparse
# path (``level_name``). Per-child runs stay outside summary/, so the
# documented run filter ``summary`` keeps a logdir of two experiments far
# under TensorBoard's 40 runs checked by default.
DENSE_RUN = "dense"
THRESHOLD_RUN = "threshold"
DENSE_REFERENCE_RUN = "dense_reference"
MATCHING_RUN = "matching"
CURVE_RUN = "curve"  # --curve: the fitted curves' barrier beside the line's
CENTROID_RUN = "centroid"  # --centroid: the raw centroid's gap against k
ALIGNED_CENTROID_RUN = "centroid_aligned"  # and the aligned one's

# tasks (tasks/): each task's lease, apart from every output
LEASES_DIR = "leases"

# instruments (issue 16): layer-wise barriers, IMP level-to-level paths
LEVEL_PATHS_DIR = "level_paths"
ONSET_IMP_DIR = "imp"  # --onset_level=L: IMP levels 0..L, a model_dir of their own
INSTRUMENTS_FIGURE = "layerwise_k{k}.png"  # one bar chart per rewind step
PLANE_FIGURE = "plane_{plane}_k{k}{replicate}.png"  # --plane: a contour per k (and replicate)
BARRIER_MATRIX_FIGURE = "barrier_matrix_k{k}.png"  # N >= 3 children: pairwise heat map
CENTROID_FIGURE = "centroid.png"  # --centroid: gap vs k beside the pairwise barrier
IMP_LAYERWISE_FIGURE = "layerwise_level{level}.png"  # one per IMP level (sparse instability)
LEVEL_BARRIERS_FIGURE = "imp_level_barriers.png"
ONSET_FIGURE = "onset.png"
CURVES_FIGURE = "curves.png"  # --curve: error along curves and lines, barrier vs k

# report (default --out: <model_dir>/report)
REPORT_DIR = "report"
REPORT_MARKDOWN = "report.md"
REPORT_TABLES = "report.json"
REPORT_CSV_SUFFIX = ".csv"  # one CSV per table of report.md, named by the table
INSTABILITY_FIGURE = "instability.png"
IMP_FIGURE = "imp.png"
IMP_REWIND_FIGURE = "imp_rewind.png"  # IMP subnetworks' accuracy and barrier against k
INDEPENDENT_PATHS_FIGURE = "interpolation_independent.png"
ALIGNED_BARRIER_FIGURE = "aligned_barrier.png"  # raw vs aligned barrier (--align=weights)
PATHS_FIGURE = "interpolation_all.png"  # the paths of every k on one y axis
_INTERPOLATION_FIGURE = re.compile(r"interpolation_k(\d+)\.png$")


def _num(value: Number, width: int) -> str:
    return value if isinstance(value, str) else f"{value:0{width}d}"


def step_name(k: Number) -> str:
    return f"step_{_num(k, 9)}"


def k_name(k: Number) -> str:
    return f"k_{_num(k, 9)}"


def level_name(level: Number) -> str:
    return f"level_{_num(level, 2)}"


def replicate_name(replicate: Number) -> str:
    return f"replicate_{replicate}"


def child_name(child: Number) -> str:
    return f"child_{child}"


def pair_name(a: Number, b: Number) -> str:
    return f"pair_{a}_{b}"


def marker_file(directory: str) -> str:
    """The commit marker of a permanent checkpoint directory."""
    return directory.rstrip("/") + MARKER_SUFFIX


def permanent_checkpoint(directory: str) -> str:
    """The checkpoint prefix inside a permanent checkpoint directory."""
    return os.path.join(directory, CHECKPOINT_NAME)


# A damaged file is renamed, never deleted: <name>.<reason>-<UTC time>.
CORRUPT = "corrupt"  # a summary that is recomputed
DAMAGED = "damaged"  # a checkpoint's files, a resume state file
SUPERSEDED = "superseded"  # an aggregate that a relaunch with an add-on recomputes


def temporary(path: str, token: str) -> str:
    """Where ``path`` is written before it is renamed into place."""
    return f"{path}.tmp-{token}"


def write_probe(directory: str, token: str) -> str:
    """A file written and removed to prove ``directory`` writable."""
    return os.path.join(directory, f".write-probe-{token}")


def set_aside_path(path: str, reason: str, stamp: str) -> str:
    return f"{path}.{reason}-{stamp}"


def is_set_aside(path: str, reason: str) -> bool:
    return f".{reason}-" in path


# -- a run directory (a train experiment's model_dir, a parent, a child, a level) ---------

def config_file(model_dir: str) -> str:
    return os.path.join(model_dir, CONFIG_FILE)


def architecture_file(model_dir: str) -> str:
    """The layers a user's builder built when the run was launched (to name
    what an edited builder changed)."""
    return os.path.join(model_dir, ARCHITECTURE_FILE)


def export_mask_file(out: str) -> str:
    """The mask written beside an exported network (``ticket.keras`` ->
    ``ticket.mask.npz``; a SavedModel folder ``ticket`` -> ``ticket.mask.npz``)."""
    root, ext = os.path.splitext(out.rstrip("/"))
    return (root if ext in (".keras", ".h5") else out.rstrip("/")) + ".mask.npz"


def results_file(directory: str) -> str:
    """A run's or an experiment's results.json."""
    return os.path.join(directory, RESULTS_FILE)


def lease_file(directory: str) -> str:
    return os.path.join(directory, LEASE_FILE)


def resume_dir(run_dir: str) -> str:
    return os.path.join(run_dir, RESUME_DIR)


def resume_state_file(run_dir: str) -> str:
    return os.path.join(resume_dir(run_dir), RESUME_STATE_FILE)


def resume_index_pattern(run_dir: str) -> str:
    """Glob of the resume checkpoints' index files (ckpt-<step>.index)."""
    return os.path.join(resume_dir(run_dir), f"{CHECKPOINT_NAME}-*.index")


def resume_temp_pattern(run_dir: str) -> str:
    """Glob of the ``ckpt-<step>_temp`` folders a killed save leaves."""
    return os.path.join(resume_dir(run_dir), "*_temp")


_RESUME_PREFIX = re.compile(rf"{CHECKPOINT_NAME}-(\d+)$")


def resume_step(prefix: str) -> int | None:
    """The step of a resume checkpoint prefix (``.../ckpt-40`` -> 40)."""
    m = _RESUME_PREFIX.search(prefix)
    return int(m.group(1)) if m else None


def final_dir(run_dir: str) -> str:
    return os.path.join(run_dir, FINAL_DIR)


def final_checkpoint(run_dir: str) -> str:
    """Prefix of the run's final weights W_T."""
    return permanent_checkpoint(final_dir(run_dir))


def rewind_dir(run_dir: str, k: Number) -> str:
    return os.path.join(run_dir, REWIND_DIR, step_name(k))


def rewind_checkpoint(run_dir: str, k: Number) -> str:
    """Prefix of W_k, the weights the run kept at step k."""
    return permanent_checkpoint(rewind_dir(run_dir, k))


def rewind_marker_pattern(run_dir: str) -> str:
    """Glob of the commit markers of the run's rewind checkpoints."""
    return marker_file(rewind_dir(run_dir, "*"))


_REWIND_MARKER = re.compile(r"step_(\d+)\.json$")


def rewind_step_of_marker(path: str) -> int:
    """k of a rewind checkpoint's marker (``.../rewind/step_000000100.json``)."""
    m = _REWIND_MARKER.search(path)
    if not m:
        raise ValueError(f"{path} is not a rewind checkpoint marker")
    return int(m.group(1))


_RUN_CHECKPOINT = re.compile(rf"(?:^|/)({FINAL_DIR}/{CHECKPOINT_NAME}|"
                             rf"{REWIND_DIR}/step_\d{{9}}/{CHECKPOINT_NAME})$")


def run_relative_checkpoint(path: str) -> str | None:
    """A permanent checkpoint's prefix relative to its run directory, read off
    the path itself (``/a/b/child_0/final/ckpt`` -> ``final/ckpt``)."""
    m = _RUN_CHECKPOINT.search(path)
    return m.group(1) if m else None


def mask_file(run_dir: str) -> str:
    return os.path.join(run_dir, MASK_FILE)


def numerics_file(run_dir: str) -> str:
    return os.path.join(run_dir, NUMERICS_FILE)


# -- the instability experiment ----------------------------------------------------------

def replicate_dir(model_dir: str, replicate: Number) -> str:
    return os.path.join(model_dir, replicate_name(replicate))


def parent_dir(model_dir: str, replicate: Number) -> str:
    """Replicate ``replicate``'s parent run."""
    return os.path.join(replicate_dir(model_dir, replicate), PARENT_DIR)


def rewind_point_dir(model_dir: str, replicate: Number, k: Number) -> str:
    """Children spawned from replicate ``replicate``'s W_k, and their pairs."""
    return os.path.join(replicate_dir(model_dir, replicate), k_name(k))


def rewind_point_file(model_dir: str, k: Number) -> str:
    """Rewind step k aggregated over replicates, written when k is finished."""
    return os.path.join(model_dir, k_name(k) + ".json")


def independent_dir(model_dir: str) -> str:
    return os.path.join(model_dir, INDEPENDENT_DIR)


def independent_pair_file(model_dir: str, a: Number, b: Number) -> str:
    """The path between the final parents of replicates ``a`` and ``b``."""
    return pair_file(independent_dir(model_dir), a, b)


# children and pairs: under a rewind point (instability) or a level's instability/ (IMP)

def child_dir(point_dir: str, child: Number) -> str:
    return os.path.join(point_dir, child_name(child))


def pair_file(point_dir: str, a: Number, b: Number) -> str:
    """E(α) curves and barriers of the path between children (or replicates) a, b."""
    return os.path.join(point_dir, pair_name(a, b) + ".json")


def pair_events_dir(pair_path: str) -> str:
    """The pair's TensorBoard path curves: its file's name without ``.json``."""
    return pair_path[:-len(".json")] if pair_path.endswith(".json") else pair_path


def curve_file(point_dir: str, a: Number, b: Number) -> str:
    """The fitted curve between children a and b (``--curve``), beside their pair."""
    return os.path.join(point_dir, f"curve_{a}_{b}.json")


def curve_dir(curve_path: str) -> str:
    """The fit of a curve's bend (resume checkpoints, its final bend): the
    curve's file without ``.json``."""
    return curve_path.removesuffix(".json")


def plane_file(point_dir: str, plane: str) -> str:
    """The error surface in the plane ``plane`` (``--plane``) of a rewind
    point's networks."""
    return os.path.join(point_dir, f"plane_{plane}.json")


def centroid_file(point_dir: str) -> str:
    """The centroid of a rewind point's children (``--centroid``)."""
    return os.path.join(point_dir, "centroid.json")


# -- the IMP experiment -------------------------------------------------------------------

def layerwise_file(point_dir: str, a: Number, b: Number) -> str:
    """The layer-wise barriers of pair (a, b) of a rewind point's children
    (or of an IMP level's sparse-instability children)."""
    return os.path.join(point_dir, f"layerwise_{a}_{b}.json")


def onset_imp_dir(model_dir: str) -> str:
    """The IMP model_dir inside a sparse onset search's (``--onset_level``)."""
    return os.path.join(model_dir, ONSET_IMP_DIR)


def level_path_file(model_dir: str, a: Number, b: Number) -> str:
    """The raw linear path between IMP levels a and b's trained networks."""
    return os.path.join(model_dir, LEVEL_PATHS_DIR,
                        f"{level_name(a)}_{level_name(b)}.json")


def level_dir(model_dir: str, level: Number) -> str:
    return os.path.join(model_dir, level_name(level))


def chain_dir(model_dir: str, k: Number) -> str:
    """A rewind-step sweep's chain of IMP levels rewound to k: an IMP
    model_dir of its own (its config.json, results.json, levels 1.. and
    their analyses) whose level 0 is the sweep's shared dense run."""
    return os.path.join(model_dir, k_name(k))


def baseline_dir(model_dir: str, level: Number, name: str) -> str:
    """A baseline's run at a level: a branch of ``pruning/branches.py`` other
    than ``imp`` (``random_prune``, ``random_reinit``, ...), by name."""
    return os.path.join(level_dir(model_dir, level), name)


def _network_dir(model_dir: str, level: Number, baseline: str | None) -> str:
    return level_dir(model_dir, level) if baseline is None else baseline_dir(
        model_dir, level, baseline)


def sparse_instability_dir(model_dir: str, level: Number, baseline: str | None = None) -> str:
    """The sparse-instability children and pairs of the level's subnetwork
    (``baseline`` None) or of one of its baselines, inside that network's run."""
    return os.path.join(_network_dir(model_dir, level, baseline), SPARSE_INSTABILITY_DIR)


def sparse_instability_file(model_dir: str, level: Number, baseline: str | None = None) -> str:
    """The barriers of the level's (or a baseline's) children, written when
    the analysis is complete."""
    return os.path.join(_network_dir(model_dir, level, baseline), SPARSE_INSTABILITY_FILE)


# -- TensorBoard's summary runs --------------------------------------------------------------

def summary_dir(model_dir: str) -> str:
    """The experiment's run of paper-level charts, figures, layout and hparams columns."""
    return os.path.join(model_dir, SUMMARY_DIR)


def summary_run(model_dir: str, name: str) -> str:
    """A run beside it for one curve of a chart: an IMP branch by name
    (``imp``, ``random_prune``, ...) or ``INDEPENDENT_RUN``, so that
    TensorBoard draws each in its own colour under the same tag."""
    return os.path.join(summary_dir(model_dir), name)


# -- tasks (tf_lottery.tasks) ----------------------------------------------------------------
# A task's id is the path of its output relative to the model_dir: a run
# directory (``replicate_0/parent``, holding its results.json) or a record
# file without its ``.json`` (``k_000000100``, ``results``).

def task_id(path: str, root: str = "") -> str:
    """The id of the task whose output is ``path`` (built with ``root`` as
    the model_dir): relative to ``root``, without ``.json``."""
    rel = relative(root, path) if root else path
    return rel[:-len(".json")] if rel.endswith(".json") else rel


def task_run_dir(model_dir: str, task: str) -> str:
    """The run directory of a task that trains a network (its results.json)."""
    return os.path.join(model_dir, task)


def task_record_file(model_dir: str, task: str) -> str:
    """The record file of a task that writes one (a pair, an aggregate)."""
    return os.path.join(model_dir, task + ".json")


def task_lease_dir(model_dir: str, task: str) -> str:
    """Where a task's lease lives: under ``leases/``, apart from its outputs,
    so that no task's writes (a pair redrawing its curves, a run directory
    nested in another) ever touch another task's lease."""
    return os.path.join(model_dir, LEASES_DIR, task)


# -- the report's files --------------------------------------------------------------------

def report_dir(model_dir: str) -> str:
    return os.path.join(model_dir, REPORT_DIR)


def interpolation_figure(k: Number) -> str:
    return f"interpolation_k{k}.png"


def report_csv(table: str) -> str:
    """The CSV file of one of the report's tables (``instability`` -> ``instability.csv``)."""
    return table + REPORT_CSV_SUFFIX


def interpolation_figure_step(name: str) -> int | None:
    """k of an ``interpolation_k<k>.png``; None for any other name."""
    m = _INTERPOLATION_FIGURE.fullmatch(name)
    return int(m.group(1)) if m else None


# -- paths inside records -------------------------------------------------------------------

def is_absolute(path: str) -> bool:
    return path.startswith("/") or "://" in path


def relative(root: str, path: str) -> str:
    """``path`` relative to ``root`` as records store it; a path outside
    ``root`` stays as it is."""
    root = root.rstrip("/")
    if path.rstrip("/") == root:
        return "."
    if root and path.startswith(root + "/"):
        return path[len(root) + 1:]
    return path


def resolve(root: str, stored: str, recorded_root: str | None = None) -> str:
    """A path as a record stored it, made usable where the record is now.

    Relative paths are joined to ``root``. An absolute path under
    ``recorded_root`` (the model_dir that a release 0.1.0 run recorded in its
    ``config.json``) is moved along to ``root``; any other is kept.
    """
    if not is_absolute(stored):
        return os.path.join(root, stored) if stored != "." else root.rstrip("/") or "/"
    if recorded_root:
        old = recorded_root.rstrip("/")
        if old and (stored == old or stored.startswith(old + "/")):
            return root.rstrip("/") + stored[len(old):]
    return stored


# -- TensorBoard tags ------------------------------------------------------------------------
# Written by the trainer (train/, eval/), summaries/instability.py (interpolation/,
# barrier/, children/), experiments/imp.py (imp/, imp_vs_density/) and
# summaries/dashboards.py (session/); read back by the report.

TRAIN_LOSS = "train/loss"
TRAIN_BATCH_ACCURACY = "train/batch_accuracy"
TRAIN_LEARNING_RATE = "train/learning_rate"


def eval_tag(split: str, metric: str) -> str:
    """``eval/test_accuracy``, ``eval/train_loss``, ... of a run."""
    return f"eval/{split}_{metric}"


def path_prefix(k: Number | None) -> str:
    """Tag prefix of the paths at rewind step k (None: independent networks)."""
    return "interpolation/independent" if k is None else f"interpolation/{k_name(k)}"


def path_tag(k: Number | None, name: str) -> str:
    """A path's curve in its pair's events dir: ``name`` is ``alpha``,
    ``<split>_error`` or ``<split>_loss``, against the α index."""
    return f"{path_prefix(k)}/{name}"


PATH_STEPS = 1000  # a mean path's step: α in thousandths (α = 0.5 at step 500)


def mean_path_tag(k: Number | None, split: str) -> str:
    """The mean error along the paths at rewind step k (None: independent
    networks) in the summary run, against α × ``PATH_STEPS``."""
    return f"paths/{'independent' if k is None else k_name(k)}/{split}_error"


def figure_tag(figure: str) -> str:
    """The TensorBoard image of one of the report's figures (``imp.png`` -> ``figures/imp``)."""
    return "figures/" + figure.removesuffix(".png")


def barrier_tag(split: str, std: bool = False) -> str:
    """Mean (or std) barrier over pairs and replicates, against k."""
    return f"barrier/{split}" + ("_std" if std else "")


def loss_barrier_tag(split: str, std: bool = False) -> str:
    """Mean (or std) loss barrier over pairs and replicates, against k
    (beside ``barrier_tag``'s error barrier, the paper's criterion)."""
    return f"loss_barrier/{split}" + ("_std" if std else "")


def curve_barrier_tag(split: str, std: bool = False) -> str:
    """Mean (or std) barrier of the fitted curves (``--curve``) over pairs
    and replicates, against k (beside ``barrier_tag``'s linear one)."""
    return f"curve_barrier/{split}" + ("_std" if std else "")


def aligned_path_tag(k: Number | None, name: str) -> str:
    """A pair's aligned path (``--align=weights``) in its pair's events dir:
    ``name`` is ``alpha`` or ``<split>_error``, against the α index."""
    return f"{path_prefix(k)}/aligned/{name}"


def aligned_barrier_tag(split: str, std: bool = False) -> str:
    """Mean (or std) barrier of the aligned paths over pairs and replicates,
    against k (beside ``barrier_tag``'s raw one)."""
    return f"aligned_barrier/{split}" + ("_std" if std else "")


def independent_barrier_tag(split: str, aligned: bool = False, loss: bool = False) -> str:
    """Mean barrier between independently trained networks, raw or aligned,
    on error or (``loss``) on loss (one value, at step 0)."""
    name = "aligned_barrier" if aligned else "loss_barrier" if loss else "barrier"
    return f"independent/{name}/{split}"


def pct_tag(name: str) -> str:
    """A series of the paper's charts in percent (``summaries/paper.py``):
    ``paper/<name>_pct``, every value × 100."""
    return f"paper/{name}_pct"


def paper_barrier_tag(split: str, independent: bool = False, std: bool = False) -> str:
    """Error barrier (or its std) in percent against k: the dense curve's in
    ``DENSE_RUN``, the independent networks' (``independent``) in
    ``INDEPENDENT_RUN``; ``THRESHOLD_RUN`` holds the threshold under both."""
    return pct_tag(f"{'independent_' if independent else ''}{split}_barrier"
                   f"{'_std' if std else ''}")


def centroid_gap_tag(split: str) -> str:
    """The centroid's error gap to its children's mean error, in percent
    against k: raw in ``CENTROID_RUN``, aligned in ``ALIGNED_CENTROID_RUN``."""
    return pct_tag(f"{split}_centroid_gap")


def paper_path_tag(split: str, independent: bool = False) -> str:
    """A mean path's error in percent against α × ``PATH_STEPS``: each k's in
    its own run (``k_name``), each IMP level's sparse path in its own
    (``level_name``), the independent networks' (``independent``) in
    ``INDEPENDENT_RUN`` under a tag of its own (a chart of its own scale)."""
    return pct_tag(f"{'independent_' if independent else ''}path_{split}_error")


def children_error_tag(split: str) -> str:
    """The children's mean final error, against k."""
    return f"children/{split}_error"


def layerwise_tag(split: str, group: str) -> str:
    """A group's layer-wise barrier (mean over pairs and replicates), against k."""
    return f"layerwise/{split}_barrier/{group}"


def level_barrier_tag(split: str, gap: int | str, vs_pruned: bool = False) -> str:
    """The barrier between IMP levels L and L + gap, in IMP's summary run
    (``summary_run(model_dir, "imp")``, beside its accuracy): against L, or
    ``vs_pruned`` against ``ppm_pruned`` of L's density."""
    return branch_tag(f"{split}_level_barrier_{gap}", vs_pruned)


def onset_tag(split: str, std: bool = False) -> str:
    """The barrier at each rewind step the onset search probed, against k, in
    the onset's summary run (``summary_dir``)."""
    return f"onset/{split}_barrier" + ("_std" if std else "")


ONSET_BRACKET_LOW = "onset/last_unstable_k"
ONSET_BRACKET_HIGH = "onset/first_stable_k"

IMP_DENSITY = "imp/density"


def imp_layer_density_tag(layer: str) -> str:
    return f"imp/layer_density/{layer}"


def imp_tag(metric: str, branch: str = "imp", vs_density: bool = False) -> str:
    """An IMP level's ``metric`` (``test_accuracy``, ``test_barrier``, ...) of
    ``branch`` (the level itself, ``imp``, or a baseline) in the experiment's
    own events (release 0.1 and the report's fallback), against the level or,
    ``vs_density``, against the density in parts per million."""
    family = "imp_vs_density" if vs_density else "imp"
    return f"{family}/{metric}" if branch == "imp" else f"{family}/{branch}/{metric}"


PPM = 1_000_000


def ppm_pruned(density: float) -> int:
    """The step of a chart against density: parts per million of the prunable
    weights *pruned*, which grows level after level (TensorBoard keeps only
    increasing steps), dense at 0 on the left."""
    return PPM - int(round(PPM * density))


def branch_tag(metric: str, vs_pruned: bool = False) -> str:
    """An IMP network's ``metric`` in its branch's summary run
    (``summary_run(model_dir, branch)``): against the level, or
    ``vs_pruned`` against ``ppm_pruned``."""
    return f"{'imp_vs_pruned' if vs_pruned else 'imp'}/{metric}"


def session_metric(split: str, quantity: str) -> str:
    """A metric column of the hparams dashboard (``session/test_barrier``)."""
    return f"session/{split}_{quantity}"


def session_hparam(name: str) -> str:
    """A measurement's own hparams column (``session.rewind_step``)."""
    return f"session.{name}"


def session_group(recipe_hash: str, *, k: int | None = None, level: int | None = None,
                  branch: str | None = None) -> str:
    """The hparams session group (the dashboard's trial id) of a rewind point
    or an IMP network: what was measured first, so that it reads even cut
    short, then the recipe, so that experiments under one logdir stay apart."""
    what = f"k={k}" if k is not None else f"level {level} {branch}"
    return f"{what} (recipe {recipe_hash[:8]})"


# Custom-scalars charts select tags by regular expression; ``{split}`` in a
# tag stands for either split.

SPLIT_PATTERN = "(test|train)"


def tag_pattern(tag: str, prefix_only: bool = False) -> str:
    """The anchored regular expression of ``tag`` (tags hold no metacharacters)."""
    return "^" + tag.replace("{split}", SPLIT_PATTERN) + ("" if prefix_only else "$")


def mean_path_pattern(split: str) -> str:
    """Every mean path's tag of ``split``: each k's and the independent networks'."""
    family, _, name = mean_path_tag(None, split).split("/")
    return f"^{family}/[^/]+/{name}$"


# -- the documented trees ------------------------------------------------------------------

Entry = tuple[str, Sequence[str]]  # (path under the model_dir, description lines)
M = "<model_dir>"


def _rel(path: str, directory: bool = False) -> str:
    return relative(M, path) + ("/" if directory else "")


def _trees() -> dict[str, list[Entry]]:
    k, point = "<k>", rewind_point_dir(M, "<r>", "<k>")
    pair = pair_file(point, "<i>", "<j>")
    run_parts = (f"{_rel(rewind_checkpoint(M, k))} (W_k), {_rel(final_checkpoint(M))} (W_T)")
    both = "{" + ",".join(SPLITS) + "}"
    return {
        "train": [
            (_rel(config_file(M)), ["resolved config + recipe_hash; a different recipe",
                                    "in the same dir is refused; provenance: version,",
                                    "git commit, CPU numerics of the first launch"]),
            (_rel(architecture_file(M)), ["--model=package.module:function only: the layers",
                                          "it built (an edited builder is refused)"]),
            (_rel(results_file(M)), ["the run's record, written last, atomically;",
                                     f'"status": "{COMPLETE}" marks a finished run']),
            (_rel(lease_file(M)), ["held while an executor (inline, ray) runs here",
                                   "(host, pid, start)"]),
            (_rel(lease_file(task_lease_dir(M, "<task id>"))),
             ["held while a task runs (tf_lottery.tasks)"]),
            ("events.out.tfevents.*", [
                f"TensorBoard: {TRAIN_LOSS}, {TRAIN_BATCH_ACCURACY}, {TRAIN_LEARNING_RATE},",
                ", ".join(eval_tag(s, m) for s in SPLITS for m in ("accuracy", "loss"))]),
            (_rel(resume_dir(M), True), ["rolling resume checkpoints "
                                         "(tf.train.CheckpointManager)"]),
            (_rel(numerics_file(M)), ["the CPU numerics the run was computed with;",
                                      "a resume under others is refused"]),
            (_rel(rewind_checkpoint(M, k)), ["W_k, kept permanently; committed by",
                                             _rel(marker_file(rewind_dir(M, k)))]),
            (_rel(final_checkpoint(M)), [f"W_T; committed by {_rel(marker_file(final_dir(M)))}"]),
        ],
        "instability": [
            (_rel(results_file(M)), [f'"status": "{COMPLETE}"; settings, parents, every',
                                     "rewind point's record, independent"]),
            (_rel(rewind_point_file(M, k)), ["rewind step k over the replicates (written when",
                                             "k is finished)"]),
            (_rel(summary_dir(M), True), [
                f"TensorBoard: {barrier_tag(both)}, {barrier_tag(both, std=True)},",
                f"{loss_barrier_tag(both)} (and _std),",
                f"{children_error_tag(both)} against k;",
                f"{independent_barrier_tag(both, loss=True)} at 0 (R >= 2);",
                f"{mean_path_tag(k, both)} against α × {PATH_STEPS};",
                f"{figure_tag('<figure>')} images; layout, hparams columns;",
                f"with --align=weights {aligned_barrier_tag(both)} (and _std)",
                f"against k, {independent_barrier_tag(both)} and",
                f"{independent_barrier_tag(both, aligned=True)} at 0;",
                f"with --layerwise_barriers {layerwise_tag(both, '<group>')}",
                f"against k; with --curve {curve_barrier_tag(both)} (and _std)",
                "against k"]),
            (_rel(summary_run(M, INDEPENDENT_RUN), True),
             [f"{barrier_tag(both)} (and {aligned_barrier_tag(both)}) of",
              "independent networks at every k; in percent",
              f"{paper_barrier_tag(both, independent=True)} against k,",
              f"{paper_path_tag(both, independent=True)} against α × {PATH_STEPS}"]),
            (_rel(summary_run(M, DENSE_RUN), True),
             [f"the paper's charts in percent: {paper_barrier_tag(both)}",
              f"and {paper_barrier_tag(both, std=True)} against k (each",
              "also as <tag>/copy, so outlier clipping keeps every point)"]),
            (_rel(summary_run(M, THRESHOLD_RUN), True),
             ["the stability threshold (%) at the first and last k, under",
              "each barrier tag in percent it is drawn beside"]),
            (_rel(summary_run(M, CENTROID_RUN), True),
             [f"--centroid: {centroid_gap_tag(both)} (and /copy) against k;",
              f"the aligned centroid's in {_rel(summary_run(M, ALIGNED_CENTROID_RUN), True)}"]),
            (_rel(summary_run(M, k_name("<k>")), True),
             [f"{paper_path_tag(both)}: the mean path at k, against",
              f"α × {PATH_STEPS} (a run per k, a colour per k)"]),
            (_rel(summary_run(M, CURVE_RUN), True),
             [f"--curve: the fitted curves' {paper_barrier_tag(both)}",
              "(and <tag>/copy) against k, drawn beside the dense one"]),
            (_rel(parent_dir(M, "<r>"), True), [f"the parent run (its {run_parts})"]),
            (_rel(child_dir(point, "<i>"), True), ["child runs (each a run as above)"]),
            (_rel(pair), ["a pair's E(α) and L(α) curves, error and loss barriers",
                          "(with --align=weights also its aligned path and the",
                          "matching's cost)"]),
            (_rel(pair_events_dir(pair), True), [
                f"its {path_tag(k, 'alpha')}, .../{both}_{{error,loss}}",
                f"(aligned: {aligned_path_tag(k, both + '_error')})",
                "against the α index"]),
            (_rel(layerwise_file(point, "<i>", "<j>")),
             ["--layerwise_barriers: each layer group's path (it alone",
              "moves, the rest stay at child <i>) and barrier"]),
            (_rel(curve_file(point, "<i>", "<j>")),
             ["--curve: the fitted curve's E(t) and L(t), its error and",
              "loss barriers, the pair's linear barrier, the fit's loss"]),
            (_rel(curve_dir(curve_file(point, "<i>", "<j>")), True),
             ["the fit of its bend: resume checkpoints, final/ckpt (θ)"]),
            (_rel(plane_file(point, "<plane>")),
             ["--plane: error and loss on a grid in the plane through",
              "three networks (W_k or child 1 aligned, children 0, 1)"]),
            (_rel(centroid_file(point)),
             ["--centroid: the average of all children, raw and",
              "aligned to child 0; its error and gap to the children's"]),
            (_rel(independent_pair_file(M, "<r1>", "<r2>")),
             ["parents of two replicates (R >= 2); curves in",
              f"{_rel(pair_events_dir(independent_pair_file(M, '<r1>', '<r2>')), True)} as "
              f"{path_prefix(None)}/..."]),
        ],
        "imp": [
            (_rel(results_file(M)), ["a record per level and baseline; "
                                     f'"status": "{RUNNING}"', f'until all is done, then '
                                     f'"{COMPLETE}"']),
            (_rel(summary_dir(M), True), [
                f"TensorBoard: {IMP_DENSITY}, {imp_layer_density_tag('<layer>')} against",
                f"the level; {figure_tag('<figure>')} images; layout, hparams columns"]),
            (_rel(summary_run(M, "<branch>"), True), [
                f"{branch_tag('<metric>')} against the level, {branch_tag('<metric>', True)}",
                "against the ppm of weights pruned, also in percent as",
                f"{branch_tag('<metric>_pct')} (and <tag>/copy); a run per branch",
                "(imp, random_prune, ...); in imp/, with --imp_level_barriers,",
                f"{level_barrier_tag(both, '<j>')} (and imp_vs_pruned/...),",
                "with --instability --layerwise_barriers",
                f"{branch_tag(layerwise_tag(both, '<group>'))} (and imp_vs_pruned/...)"]),
            (_rel(summary_run(M, DENSE_REFERENCE_RUN), True),
             [f"level 0's accuracy at every level, {branch_tag(both + '_accuracy_pct')}",
              f"({MATCHING_RUN}/: the matching band's lower edge; {THRESHOLD_RUN}/:",
              f"the threshold beside {branch_tag(both + '_barrier_pct')})"]),
            (_rel(summary_run(M, level_name("<L>")), True),
             [f"{pct_tag('sparse_path_' + both + '_error')}: the level's mean",
              "sparse path (--instability), a run per level"]),
            (_rel(level_dir(M, 0), True), [f"the dense run: {run_parts}"]),
            (_rel(level_dir(M, "<L>"), True), ["the level's run; its W_k is the masked one"]),
            (_rel(mask_file(level_dir(M, "<L>"))), ["the level's mask (one uint8 array per",
                                                    'kernel, "<layer>/kernel")']),
            (_rel(baseline_dir(M, "<L>", "<baseline>"), True),
             ["a baseline's run (random_prune, random_reinit, ...);",
              f"one that draws its own mask keeps it in its {MASK_FILE}"]),
            (_rel(sparse_instability_dir(M, "<L>"), True),
             [f"sparse-instability {child_name('<i>')}/ and "
              f"{pair_name('<i>', '<j>')}.json"]),
            (_rel(layerwise_file(sparse_instability_dir(M, "<L>"), "<i>", "<j>")),
             ["--layerwise_barriers: each layer group's path and",
              "barrier, as in the instability analysis"]),
            (_rel(sparse_instability_file(M, "<L>")),
             ["the level's sparse instability (written when", "complete)"]),
            (_rel(sparse_instability_dir(M, "<L>", "<baseline>"), True),
             ["--instability at a baseline's level: the baseline's",
              "children and pairs, as the level's"]),
            (_rel(sparse_instability_file(M, "<L>", "<baseline>")),
             ["the baseline's sparse instability"]),
            (_rel(level_path_file(M, "<a>", "<b>")),
             ["--imp_level_barriers: the raw path between levels a and",
              "b = a + j's trained networks; its pair (curves, barrier)",
              f"in {_rel(level_path_file(M, '<a>', '<b>')).removesuffix('.json')}_pair.json"]),
        ],
        "imp_sweep": [
            (_rel(results_file(M)), ["every chain's results.json by k; \"status\":",
                                     f'"{RUNNING}" until all is done, then "{COMPLETE}"']),
            (_rel(level_dir(M, 0), True), ["the dense run shared by every chain: W_k for",
                                           "every k of --rewind_steps, W_T"]),
            (_rel(chain_dir(M, "<k>"), True), [
                "the chain rewound to k: an IMP model_dir (config.json",
                "with --rewind_step=k, results.json, level_<L>/ for L >= 1,",
                "baselines, level_00/instability/ etc.) as above"]),
        ],
        "onset": [
            (_rel(results_file(M)), ["the search: probes, bracket, child runs vs the full",
                                     f'grid; "status": "{RUNNING}" until it ends, then',
                                     f'"{COMPLETE}"']),
            (_rel(rewind_point_file(M, k)), ["a probed k: the instability analysis' rewind",
                                             "point record (only the k the search visits)"]),
            (_rel(summary_dir(M), True), [
                f"TensorBoard: {onset_tag(both)} (and _std) at each probed k,",
                f"{ONSET_BRACKET_LOW}, {ONSET_BRACKET_HIGH};",
                f"{barrier_tag(both)} against k as the instability",
                f"analysis writes it; {figure_tag('<figure>')} images"]),
            (_rel(parent_dir(M, "<r>"), True), ["dense: the parent, keeping W_k at every grid k"]),
            (_rel(child_dir(point, "<i>"), True), ["a probe's children, pairs (and layer-wise",
                                                   "barriers) as in the instability analysis"]),
            (_rel(results_file(onset_imp_dir(M))),
             ["--onset_level=L: IMP levels 0..L (an IMP model_dir", "of its own under imp/)"]),
        ],
    }


def tree(experiment: str) -> str:
    """The files ``experiment`` writes under its model_dir, as docs/outputs.md
    shows them."""
    entries = _trees()[experiment]
    width = max(len(path) for path, _ in entries) + 2
    lines = [f"{M}/"]
    for path, description in entries:
        lines.append(f"  {path:<{width}}{description[0]}")
        lines.extend(f"  {'':<{width}}{more}" for more in description[1:])
    return "\n".join(lines)


if __name__ == "__main__":  # python -m tf_lottery.core.layout: the trees for the docs
    for name in ("train", "instability", "imp", "imp_sweep", "onset"):
        print(f"{name}:\n```\n{tree(name)}\n```\n")
