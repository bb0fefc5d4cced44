"""The paper's charts in TensorBoard's Custom Scalars: in percent, one run per series.

TensorBoard colours a chart's lines by run (two tags of one run share a
colour and differ only by marker), and by default clips "outliers" from each
chart's y range. So every series a chart must tell apart is a run of its own
under ``summary/`` (``core.layout``: ``dense``, ``threshold``,
``independent``, ``k_<k>``, IMP's branches, ``dense_reference``,
``matching``, ``level_<L>``), each chart holds values of one scale (the
independent networks' barrier and path, ten times the dense ones, get their
own charts), test and train get a chart each, and every value is in percent
under a tag that says so (``layout.pct_tag``). The stability threshold is a
series of its own wherever a barrier is drawn.

TensorBoard's outlier clipping (on by default, kept in the browser's local
storage) leaves out of a chart's y range every value outside the 5th-95th
percentile (linearly interpolated) of the chart's values: for a chart of
n ≤ 21 values, any lowest or highest value that occurs only once, so a
two-point barrier curve loses both its points. The few-point series
(barrier and accuracy against k or the level) are therefore written twice,
under their tag and under ``<tag>/copy`` in the same run (one colour, the
copy drawn exactly over the original; TensorBoard keeps one value per step
and tag, so the copy needs a tag of its own), and the constant references
(threshold, independent barrier, dense accuracy, matching edge) at the
first and last step: every value of a chart of up to 10 points then occurs
at least twice, and clipping keeps them all. The mean paths (tens of α
points) are not copied: their chart keeps one scale, and their single
highest point (the barrier's peak) can still fall just outside the range
clipping computes; the Images tab draws them unclipped.

The fraction tags beside them (``barrier/test``, ``imp/test_accuracy``, …)
stay: the report reads them back, and earlier releases wrote them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tf_lottery import chief
from tf_lottery.core import layout
from tf_lottery.core.layout import SPLITS
from tf_lottery.summaries import tensorboard

PCT = 100.0
INSTABILITY_CATEGORY = "instability (%)"
PATHS_CATEGORY = "interpolation paths (%)"
IMP_CATEGORY = "IMP with rewinding (%)"
# The report's --matching_tolerance for a single dense run (half a percentage
# point): the lower edge of the matching band drawn beside IMP's accuracy.
MATCHING_TOLERANCE = 0.005

Points = Sequence[tuple[int, float]]


def _pct(points: Iterable[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(step, PCT * value) for step, value in points]


COPY = "/copy"


def _copied(tag: str, points: Iterable[tuple[int, float]]
            ) -> dict[str, list[tuple[int, float]]]:
    """``points`` in percent under ``tag`` and its copy ``<tag>/copy``, so
    that outlier clipping keeps each in range (the module's docstring)."""
    found = _pct(points)
    return {tag: found, tag + COPY: found}


def _pattern(tag: str) -> str:
    """A chart's regular expression for ``tag`` and its copy."""
    return layout.tag_pattern(tag, prefix_only=True) + f"({COPY})?$"


def _ends(steps: Iterable[int], value: float) -> list[tuple[int, float]]:
    """A constant reference (in percent) at the first and last step."""
    found = sorted(set(steps))
    return _pct([(step, value) for step in dict.fromkeys((found[0], found[-1]))])


def _run(model_dir: str, name: str) -> str:
    return layout.summary_run(model_dir, name)


def open_runs(model_dir: str, names: Sequence[str]) -> None:
    """Starts the runs ``names`` now, one after the other, before any child's.

    TensorBoard lists runs by the time of their first event and gives them
    the colours of its 7-colour palette in that order, counting every run
    (the per-child ones too). Started together, the runs of one chart hold
    consecutive places and so distinct colours (up to 7 series a chart).
    """
    for name in names:
        writer = chief.summary_writer(_run(model_dir, name))
        writer.flush()
        writer.close()


def instability_runs(rewind_steps: Sequence[int], independent: bool, curve: bool = False,
                     centroid: bool = False) -> list[str]:
    """The instability analysis' series runs, in the order they are started:
    the barrier chart's (dense, threshold, with ``curve`` the fitted
    curves') side by side, and the centroid chart's two after the paths'."""
    return [layout.DENSE_RUN, layout.THRESHOLD_RUN, *([layout.CURVE_RUN] if curve else []),
            *([layout.INDEPENDENT_RUN] if independent else []),
            *(layout.k_name(k) for k in rewind_steps),
            *([layout.CENTROID_RUN, layout.ALIGNED_CENTROID_RUN] if centroid else [])]


def imp_runs(baselines: Sequence[str], instability: bool, levels: Sequence[int]) -> list[str]:
    """IMP's series runs, in order: its branches, the dense reference, the
    matching edge and the threshold (one chart's runs side by side), then a
    run per level with a sparse path."""
    return ["imp", *baselines, layout.DENSE_REFERENCE_RUN, layout.MATCHING_RUN,
            *([layout.THRESHOLD_RUN, *(layout.level_name(level) for level in levels)]
              if instability else [])]


# -- the instability analysis -----------------------------------------------------------

def instability_charts(independent: bool, threshold: float, curve: bool = False,
                       centroid: bool = False) -> tensorboard.Layout:
    """Barrier vs k (dense, with ``curve`` the fitted curves', and the
    threshold), the independent networks' barrier on a chart of its own, the
    barrier's std, with ``centroid`` the centroid's gap to its children (raw
    and aligned), and the mean paths of every k (a run each), the
    independent path on its own chart."""
    t = f"{PCT * threshold:g} %"
    drawn = "dense line, fitted curve" if curve else "dense"
    charts = [(f"{split} error barrier (%) vs rewind step k: {drawn}, and the {t} "
               "stability threshold", [_pattern(layout.paper_barrier_tag(split))])
              for split in SPLITS]
    if independent:
        charts += [(f"{split} error barrier (%) of independently trained networks, "
                    f"and the {t} threshold (x: k)",
                    [layout.tag_pattern(layout.paper_barrier_tag(split, independent=True))])
                   for split in SPLITS]
    charts += [(f"{split} error barrier std (%) over pairs and replicates vs k",
                [_pattern(layout.paper_barrier_tag(split, std=True))])
               for split in SPLITS]
    if centroid:
        charts += [(f"{split} error of the centroid of all children minus their mean "
                    "(percentage points) vs k: raw, and aligned to child 0",
                    [_pattern(layout.centroid_gap_tag(split))])
                   for split in SPLITS]
    paths = [(f"mean {split} error (%) along the path: one run per rewind step k "
              f"(x: alpha x {layout.PATH_STEPS})",
              [layout.tag_pattern(layout.paper_path_tag(split))]) for split in SPLITS]
    if independent:
        paths += [(f"mean {split} error (%) along the path of independently trained "
                   f"networks (x: alpha x {layout.PATH_STEPS})",
                   [layout.tag_pattern(layout.paper_path_tag(split, independent=True))])
                  for split in SPLITS]
    return {INSTABILITY_CATEGORY: charts, PATHS_CATEGORY: paths}


def write_thresholds(model_dir: str, threshold: float, rewind_steps: Sequence[int],
                     independent: bool) -> None:
    """The stability threshold at every rewind step, under each barrier tag
    it is drawn beside."""
    tags = [layout.paper_barrier_tag(split, independent=ind)
            for split in SPLITS for ind in ((False, True) if independent else (False,))]
    tensorboard.write_scalars(_run(model_dir, layout.THRESHOLD_RUN), {
        tag: _ends(rewind_steps, threshold) for tag in tags})


def write_rewind_point(model_dir: str, k: int, barrier: Mapping[str, float],
                       std: Mapping[str, float], paths: Mapping[str, Points]) -> None:
    """Rewind step k: the dense barrier and its std (``dense``), and the
    mean path at k in k's own run (``paths``: split -> (α step, error))."""
    tensorboard.write_scalars(_run(model_dir, layout.DENSE_RUN), {
        tag: points for s in SPLITS for tag, points in {
            **_copied(layout.paper_barrier_tag(s), [(k, barrier[s])]),
            **_copied(layout.paper_barrier_tag(s, std=True), [(k, std[s])])}.items()})
    if paths:
        tensorboard.write_scalars(_run(model_dir, layout.k_name(k)), {
            layout.paper_path_tag(s): _pct(paths[s]) for s in SPLITS})


def write_curve_barrier(model_dir: str, k: int, barrier: Mapping[str, float]) -> None:
    """With ``--curve``: the fitted curves' mean barrier at k in the run
    ``curve``, under the dense barrier's tag, so that each barrier chart
    draws it beside the line's (and the threshold) in a colour of its own."""
    tensorboard.write_scalars(_run(model_dir, layout.CURVE_RUN), {
        tag: points for s in SPLITS
        for tag, points in _copied(layout.paper_barrier_tag(s), [(k, barrier[s])]).items()})


def write_independent(model_dir: str, barrier: Mapping[str, float],
                      rewind_steps: Sequence[int], paths: Mapping[str, Points]) -> None:
    """The independent networks' barrier at every k and their mean path, in
    ``independent``, under tags of their own."""
    scalars = {layout.paper_barrier_tag(s, independent=True): _ends(rewind_steps, barrier[s])
               for s in SPLITS}
    if paths:
        scalars.update({layout.paper_path_tag(s, independent=True): _pct(paths[s])
                        for s in SPLITS})
    tensorboard.write_scalars(_run(model_dir, layout.INDEPENDENT_RUN), scalars)


def write_centroid(model_dir: str, gaps: Sequence[tuple[int, Mapping[str, float],
                                                       Mapping[str, float]]]) -> None:
    """--centroid: the centroid's error gap to its children's (k, raw, aligned;
    split -> mean over replicates) in percent against k, raw and aligned
    each in a run of its own."""
    for run, aligned in ((layout.CENTROID_RUN, False), (layout.ALIGNED_CENTROID_RUN, True)):
        tensorboard.write_scalars(_run(model_dir, run), {
            tag: points for s in SPLITS for tag, points in _copied(
                layout.centroid_gap_tag(s),
                [(k, (both if aligned else raw)[s]) for k, raw, both in gaps]).items()})


# -- IMP ------------------------------------------------------------------------------------

def imp_charts(k: int, threshold: float | None) -> list[tuple[str, list[str]]]:
    """IMP's accuracy (each branch, the dense reference and the matching
    band's lower edge) and, with sparse instability (``threshold`` given),
    sparse barrier (each branch and the threshold), against the level and
    against the weights pruned, a chart per split."""
    band = f"dense and dense - {PCT * MATCHING_TOLERANCE:g} percentage points (matching)"
    charts = []
    for split in SPLITS:
        charts += [
            (f"{split} accuracy (%) vs level: IMP, baselines, {band}",
             [_pattern(layout.branch_tag(f"{split}_accuracy_pct"))]),
            (f"{split} accuracy (%) vs weights pruned (x: parts per million pruned)",
             [_pattern(layout.branch_tag(f"{split}_accuracy_pct", vs_pruned=True))])]
    if threshold is not None:
        t = f"{PCT * threshold:g} %"
        for split in SPLITS:
            charts += [
                (f"sparse {split} error barrier (%) at k={k} vs level: IMP, baselines, "
                 f"{t} threshold", [_pattern(layout.branch_tag(f"{split}_barrier_pct"))]),
                (f"sparse {split} error barrier (%) at k={k} vs weights pruned (x: parts "
                 "per million pruned)",
                 [_pattern(layout.branch_tag(f"{split}_barrier_pct", vs_pruned=True))])]
        charts += [(f"mean {split} error (%) along the sparse path at k={k}: one run per "
                    f"level (x: alpha x {layout.PATH_STEPS})",
                    [layout.tag_pattern(sparse_path_tag(split))]) for split in SPLITS]
    return charts


def write_imp_point(model_dir: str, branch: str, level: int, pruned: int,
                    values: Mapping[str, float], threshold: float | None) -> None:
    """A branch's accuracy or sparse barrier at a level (``values``: metric
    -> fraction), against the level and the weights pruned; a barrier
    (``threshold`` given) puts the threshold at the same steps."""
    def at_both(metric: str, value: float) -> dict[str, list[tuple[int, float]]]:
        return {**_copied(layout.branch_tag(f"{metric}_pct"), [(level, value)]),
                **_copied(layout.branch_tag(f"{metric}_pct", vs_pruned=True),
                          [(pruned, value)])}

    scalars: dict[str, list[tuple[int, float]]] = {}
    for metric, value in values.items():
        scalars.update(at_both(metric, value))
    tensorboard.write_scalars(_run(model_dir, branch), scalars)
    if threshold is not None:  # one value at every step: no copy needed
        tensorboard.write_scalars(_run(model_dir, layout.THRESHOLD_RUN), {
            tag: [(step, PCT * threshold)] for metric in values
            for tag, step in ((layout.branch_tag(f"{metric}_pct"), level),
                              (layout.branch_tag(f"{metric}_pct", vs_pruned=True), pruned))})


def write_dense_reference(model_dir: str, accuracy: Mapping[str, float],
                          levels: int) -> None:
    """The dense network's accuracy and the matching band's lower edge
    (dense - ``MATCHING_TOLERANCE``) from level 0 to ``levels``, each a run,
    beside IMP's accuracy against the level."""
    for run, offset in ((layout.DENSE_REFERENCE_RUN, 0.0),
                        (layout.MATCHING_RUN, MATCHING_TOLERANCE)):
        tensorboard.write_scalars(_run(model_dir, run), {
            layout.branch_tag(f"{s}_accuracy_pct"): _ends((0, levels), accuracy[s] - offset)
            for s in SPLITS})


def write_sparse_path(model_dir: str, level: int, paths: Mapping[str, Points]) -> None:
    """IMP's mean sparse path at a level, in the level's own run."""
    tensorboard.write_scalars(_run(model_dir, layout.level_name(level)), {
        sparse_path_tag(s): _pct(paths[s]) for s in SPLITS})


def sparse_path_tag(split: str) -> str:
    """IMP's mean sparse path (a tag apart from the dense paths', so that an
    instability run beside it under one logdir keeps its chart)."""
    return layout.pct_tag(f"sparse_path_{split}_error")
