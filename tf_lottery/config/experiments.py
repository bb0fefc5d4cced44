"""Experiments by name, each with the config sections it uses.

Every experiment is one ``ExperimentSpec`` entry in ``EXPERIMENTS``: its
name (the ``--experiment`` choices and their help come from here) and the
sections it adds to the recipe (only those are validated, hashed and
compared on relaunch). Its code is ``tf_lottery.experiments``', registered
there by object; the config layer imports nothing above it. An
experiment's own section is declared here too, beside its entry.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from tf_lottery.config import branches
from tf_lottery.config.knobs import (
    FlagReader,
    Section,
    at_least,
    derived,
    knob,
    must,
    sorted_set,
    unique,
)
from tf_lottery.errors import ConfigError, FieldError

PRUNING_SCOPES = ("global", "layerwise")
REWIND_OPTIMIZER = ("reset", "restore")
ALIGN_MODES = ("none", "weights")
# Which SGD noise children redraw (analysis.child_noise): the first is the paper's.
CHILD_NOISE = ("both", "data_order", "augmentation", "none")
# The declared IMP branches but 'imp' itself (config/branches.py).
BASELINES = branches.baseline_names()


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstabilityConfig(Section):
    """Instability analysis: children, path, BatchNorm.

    For every rewind step k, ``children`` copies of the parent's W_k train to
    T with their own SGD noise; every pair is evaluated at
    ``interpolation_points`` evenly spaced points of the linear path between
    them. ``child_optimizer_state`` is 'restore' (the optimizer state saved
    with W_k: a child with the parent's seeds would retrace the parent) or
    'reset' (fresh optimizer state at k; the LR schedule still continues from
    k). ``bn_mode`` is 'interpolate' or 'recompute' (BatchNorm moving
    statistics re-estimated on ``bn_recompute_batches`` training batches at
    every point). ``replicates`` independent parents use init and SGD-noise
    seeds shifted by the replicate index. ``align`` 'weights' adds, to every
    pair, the path after aligning its second network to its first
    (``stability.aligned_paths``). ``child_noise`` says which of the two
    sources of SGD noise (data order, augmentation) differs between children
    (``analysis.child_noise``); 'both' is the paper's setting.
    """

    section = "instability"

    children: int = knob(
        2,
        "Instability: copies trained from each W_k with their own SGD noise "
        "(every pair is interpolated).", check=at_least(2, " (a pair)"))
    interpolation_points: int = knob(
        30,
        "Instability: evenly spaced alphas in [0, 1] on the path between two "
        "children.", check=at_least(2))
    stability_threshold: float = knob(
        0.02,
        "Instability: a rewind step is stable when its test error barrier is "
        "below this.", check=must(lambda v: 0 <= v < 1, "be in [0, 1)"))
    bn_mode: str = knob(
        "interpolate",
        "Instability: BatchNorm moving statistics of W(alpha): interpolated "
        "like weights, or re-estimated on training batches at each alpha.",
        choices=("interpolate", "recompute"))
    bn_recompute_batches: int = knob(
        100, "Instability: training batches used by --bn_mode=recompute.", check=at_least(1))
    replicates: int = knob(
        1,
        "Instability: independent parents (init and SGD-noise seeds + r); "
        "barriers are reported as mean +- std across them.", check=at_least(1))
    child_optimizer_state: str = knob(
        "restore",
        "Instability: children start from W_k with the optimizer state saved "
        "at k ('restore') or a fresh one ('reset').", choices=("restore", "reset"))
    align: str = knob(
        "none",
        "Instability: 'weights' also reports every pair's barrier after aligning "
        "the second network's hidden units to the first's by weight matching "
        "(Ainsworth et al. 2023), and the matching's cost.",
        choices=ALIGN_MODES, late=True)
    child_noise: str = knob(
        "both",
        "Instability: which SGD noise differs between children: 'both' (data "
        "order and augmentation), 'data_order' or 'augmentation' only (the other "
        "is child 0's), or 'none' (every child gets child 0's noise: a control "
        "whose barrier is 0 when ops are deterministic).",
        choices=CHILD_NOISE, late=True)
    layerwise_barriers: bool = knob(
        False,
        "Instability: also the barrier of every pair when one layer (or residual "
        "block / Inception module) alone moves along the path and the rest stay "
        "at child 1 (stability.layerwise).", late=True)
    layerwise_points: int = knob(
        5, "Instability: evenly spaced alphas (endpoints included) on each "
        "layer-wise path of --layerwise_barriers.", check=at_least(2), late=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CurveConfig(Section):
    """Curve connectivity: a quadratic Bézier curve between every two children.

    With ``enabled`` (``--curve``) every pair of children at every k (in
    IMP: of every analysed level's sparse instability) also
    gets a curve W₁ -> θ -> W₂ whose bend θ alone is trained for ``steps``
    steps of the recipe's optimizer at ``learning_rate`` (0: a quarter of the recipe's
    ``--learning_rate``), on the recipe's training loss at a point t drawn
    uniformly per step (``stability.curves``); it is evaluated at
    ``--interpolation_points`` t's like the line, and its barrier is
    reported beside the linear one. ``checkpoint_every`` steps the fit
    saves θ and its optimizer state, so a killed fit resumes bit for bit.

    An *add-on* section (``addon``): it only adds pieces beside finished
    ones, so a run launched without it may be relaunched with ``--curve``
    and only the curves are computed (``config.recipe_changes``).
    """

    section = "curve"
    addon = True

    enabled: bool = knob(
        False,
        "Curves: also fit a quadratic Bezier curve between every two children at "
        "every k (only its bend is trained) and report its barrier beside the "
        "line's; a finished run may be relaunched with it.", flag="curve", late=True)
    steps: int = knob(
        4000, "Curves: optimizer steps that fit each curve's bend.", flag="curve_steps",
        check=at_least(1), late=True)
    learning_rate: float = knob(
        0.0, "Curves: learning rate of the bend's fit (the recipe's optimizer, "
        "constant; 0: a quarter of the recipe's --learning_rate).",
        flag="curve_learning_rate", check=must(lambda v: v >= 0, "be >= 0 (0: a quarter "
                                               "of the recipe's)"), late=True)
    checkpoint_every: int = knob(
        500, "Curves: steps between resume checkpoints of a bend's fit.",
        flag="curve_checkpoint_every", check=at_least(1), late=True)

    # The default learning rate of a fit, as a fraction of the recipe's: on
    # LeNet-300-100 / Fashion-MNIST at k=0 (docs/connectivity.md) the recipe's
    # own rate left a noise floor that 4x the steps or a quarter of the rate
    # (at half those steps) removed.
    DEFAULT_RATE_FRACTION: ClassVar[float] = 0.25

    def rate(self, recipe_learning_rate: float) -> float:
        """The fit's learning rate."""
        return self.learning_rate or self.DEFAULT_RATE_FRACTION * recipe_learning_rate

    def validate_in(self, config: Any) -> None:
        pruning = next((s for s in config.sections if s.section == "pruning"), None)
        if self.enabled and pruning is not None and not pruning.instability:
            raise FieldError("curve.enabled", "in IMP fits curves between the children of "
                             "its sparse instability: add {pruning.instability}")


PLANES = ("none", "parent", "aligned", "curve")  # the three networks --plane spans (SurfaceConfig)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SurfaceConfig(Section):
    """Beyond the line: planes through three networks, centroids of all children.

    ``plane`` picks the three networks of each (replicate, k)'s plane:
    'parent' = (W_k, child 0, child 1), 'aligned' = (child 0, child 1,
    child 1 aligned to child 0), 'curve' = (child 0, child 1, the bend of
    their fitted curve; needs ``--curve``); ``plane_grid`` points per side, and
    ``plane_margin`` times the three networks' span beyond them on every
    side (``stability.plane``). ``centroid`` adds, per (replicate, k), the
    plain average of all children, raw and aligned to child 0 by weight
    matching (``stability.centroid``), and its gap to the children's mean
    error. Evaluation only: these knobs add pieces and change none, so the
    section is left out of the recipe (``measures_only``) and a finished
    run relaunched with them computes only the new pieces.
    """

    section = "surface"
    measures_only = True

    plane: str = knob(
        "none",
        "Surface: error on a grid in the plane through three networks per rewind step: "
        "'parent' (W_k, child 0, child 1) or 'aligned' (child 0, child 1, child 1 "
        "aligned to child 0 by weight matching) or 'curve' (child 0, child 1, the bend of "
        "their fitted curve; needs --curve).", choices=PLANES, late=True)
    plane_grid: int = knob(
        21, "Surface: grid points per side of --plane's grid (it evaluates the square "
        "of this many networks).", check=at_least(2), late=True)
    plane_margin: float = knob(
        0.2, "Surface: --plane's grid extends this fraction of the three networks' span "
        "beyond them on every side.", check=must(lambda v: v >= 0, "be >= 0"), late=True)
    centroid: bool = knob(
        False,
        "Surface: also the plain average of all children of each W_k (raw and aligned "
        "to child 0 by weight matching), its error and its gap to the children's mean "
        "error (BatchNorm statistics re-estimated).", late=True)

    def validate_in(self, config: Any) -> None:
        curve = next((s for s in config.sections if s.section == "curve"), None)
        if self.plane == "curve" and not (curve is not None and curve.enabled):
            raise FieldError("surface.plane", "'curve' spans the bend of the curve fitted "
                             "between children 0 and 1: add {curve.enabled}")


def geometric_grid(train_steps: int, max_fraction: float, min_step: int = 1
                   ) -> tuple[int, ...]:
    """0 and ``min_step`` * 2^i for every i with the step <= ``max_fraction`` * T.

    Raises:
      ValueError: the grid would hold k = 0 alone (no positive step fits).
    """
    if min_step < 1:
        raise ValueError(f"min_step must be >= 1, got {min_step}")
    top = int(max_fraction * train_steps)
    steps = [0]
    k = min_step
    while k <= top:
        steps.append(k)
        k *= 2
    if len(steps) < 2:
        raise ValueError(f"no rewind step in (0, {max_fraction:g} x {train_steps}] on a "
                         f"grid starting at {min_step}: the grid would be k=0 alone")
    return tuple(steps)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnsetConfig(Section):
    """Onset search: the earliest stable rewind step, bisected over a grid.

    The parent keeps W_k at every k of the grid: ``grid`` if given, else 0
    and ``min_step`` * 2^i up to ``max_fraction`` * T
    (``geometric_grid``). Children are trained only at the
    k the search asks for (``--children`` per replicate, as in the
    instability analysis); ``checks`` grid points above the first stable k
    are probed to check monotonicity. ``level`` 0 searches the dense network,
    L >= 1 IMP level L's subnetwork (its mask on level 0's W_k; the pruning
    section's recipe trains the levels first).
    """

    section = "onset"

    grid: tuple[int, ...] = knob(
        (), "Onset: rewind steps the search may probe (empty: 0 and powers of two "
        "from --onset_min_step up to --onset_max_fraction of T).", flag="onset_grid",
        normalize=sorted_set)
    max_fraction: float = knob(
        0.25, "Onset: largest k of the geometric grid, as a fraction of T.",
        flag="onset_max_fraction", check=must(lambda v: 0 < v <= 1, "be in (0, 1]"))
    min_step: int = knob(
        1, "Onset: smallest positive k of the geometric grid.", flag="onset_min_step",
        check=at_least(1))
    checks: int = knob(
        1, "Onset: grid points above the first stable k probed to check that "
        "stability persists (0: assume it).", flag="onset_checks", check=at_least(0))
    level: int = knob(
        0, "Onset: 0 searches the dense network; L >= 1 IMP level L's subnetwork.",
        flag="onset_level", check=at_least(0))

    def steps(self, train_steps: int) -> tuple[int, ...]:
        """The grid the parent keeps W_k at."""
        if self.grid:
            return self.grid
        return geometric_grid(train_steps, self.max_fraction, self.min_step)

    def validate_in(self, config: Any) -> None:
        t = config.train.train_steps
        for k in self.grid:
            if not 0 <= k <= t:
                raise FieldError("onset.grid", f"has {k}, outside [0, {t}] (the run's T)")
        try:
            self.steps(t)
        except ValueError as e:
            raise FieldError("onset.max_fraction", str(e)) from None
        if self.level:
            levels = config.pruning.levels
            if self.level > levels:
                raise FieldError("onset.level", f"={self.level} is beyond the IMP levels "
                                 f"1..{levels} ({{pruning.levels}})")


def _regexes(patterns: tuple[str, ...]) -> str | None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            return f"has an invalid regex {pattern!r} ({e})"
    return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruningConfig(Section):
    """IMP with rewinding: how levels prune and rewind.

    Level 0 trains the dense network; each of the ``levels`` following levels
    prunes ``prune_fraction`` of the remaining prunable weights by magnitude,
    rewinds the survivors to W_k (k = ``rewind_step``) and retrains to T.
    One-shot pruning to density D (--target_density) is resolved here to one
    level with fraction 1 - D.

    ``layer_rates`` holds ``"regex:rate"`` strings (see ``rates()``); a layer
    matching ``exclude`` is never pruned. ``baselines`` run at
    ``baseline_levels`` (empty: every pruned level) with seeds derived from
    ``baseline_seed``. ``rewind_optimizer`` is 'reset' (fresh optimizer state
    at k, as open_lth) or 'restore' (the state saved with W_k). With
    ``instability``, each level in ``instability_levels`` (empty: every level,
    0 included) gets the instability analysis of its subnetwork at k.
    """

    section = "pruning"

    levels: int = knob(
        15,
        "IMP: pruned levels after the dense level 0 (15 levels of 20% reach "
        "3.5% density).", flag="imp_levels", check=at_least(1))
    prune_fraction: float = knob(
        0.2, "IMP: fraction of the remaining prunable weights each level removes.",
        check=must(lambda v: 0 < v < 1, "be in (0, 1)"))
    scope: str = knob(
        "global",
        "IMP: 'global' ranks all prunable weights together; 'layerwise' prunes "
        "each layer by the same fraction.", flag="pruning_scope", choices=PRUNING_SCOPES)
    rewind_step: int = knob(
        0,
        "IMP: step k whose weights W_k the survivors are rewound to "
        "(0: the original lottery ticket procedure).", check=at_least(0))
    target_density: float = knob(
        0.0,
        "IMP: one-shot pruning straight to this density in one level "
        "(instead of --imp_levels/--prune_fraction; 0: iterative).",
        check=must(lambda v: 0 <= v < 1, "be in [0, 1) (0: iterative pruning)"))
    exclude: tuple[str, ...] = knob(
        (),
        "IMP: regexes; Dense/Conv layers whose name fully matches one are "
        "never pruned.", flag="prune_exclude", check=_regexes)
    layer_rates: tuple[str, ...] = knob(
        (),
        "IMP: regex:rate items; a matching layer is pruned on its own at rate "
        "times --prune_fraction (e.g. logits:0.5).", flag="prune_layer_rates")
    rewind_optimizer: str = knob(
        "reset",
        "IMP: optimizer state at the rewind step: 'reset' (fresh) or "
        "'restore' (the state saved with W_k).", flag="imp_rewind_optimizer",
        choices=REWIND_OPTIMIZER)
    baselines: tuple[str, ...] = knob(
        (),
        "IMP: baselines per level: " + ", ".join(
            f"{b.name} ({b.summary})" for b in branches.baselines()) + ".",
        flag="imp_baselines", choices=BASELINES, normalize=unique)
    baseline_levels: tuple[int, ...] = knob(
        (), "IMP: levels at which baselines run (empty: every pruned level).",
        flag="imp_baseline_levels", normalize=sorted_set)
    baseline_seed: int = knob(
        1, "IMP: seed of the baselines' random masks and reinitializations.",
        flag="imp_baseline_seed")
    instability: bool = knob(
        False,
        "IMP: instability analysis of each level's subnetwork at the rewind "
        "step (children start from the masked W_k and keep the mask; "
        "--children, --interpolation_points etc. apply).")
    instability_levels: tuple[int, ...] = knob(
        (), "IMP: levels analyzed with --instability (empty: every level, 0 included).",
        flag="imp_instability_levels", normalize=sorted_set)
    level_barriers: tuple[int, ...] = knob(
        (),
        "IMP: gaps j; the raw linear path between the trained networks of levels L "
        "and L + j is evaluated for every L (1: consecutive levels; empty: none).",
        flag="imp_level_barriers", normalize=sorted_set,
        check=must(lambda v: all(j >= 1 for j in v), "hold gaps >= 1"), late=True)

    dense_dir: str = derived(
        "IMP: the run directory of the dense level 0 that levels prune from and "
        "rewind to, when it is not the model_dir's own (a chain of a rewind-step "
        "sweep, ``experiments.imp_sweep.chain_config``); empty: <model_dir>/level_00.",
        default="", late=True)

    def rates(self) -> tuple[tuple[str, float], ...]:
        """``layer_rates`` as ``(pattern, rate)`` pairs."""
        return tuple((p, float(r)) for p, r in (s.rsplit(":", 1) for s in self.layer_rates))

    @classmethod
    def from_flags(cls, flags: FlagReader, built: Mapping[str, Section]) -> PruningConfig:
        """One-shot pruning to density D (--target_density) is one level of fraction 1 - D."""
        values = flags.fields(cls)
        if flags.given(cls, "target_density"):
            if flags.given(cls, "levels") or flags.given(cls, "prune_fraction"):
                raise FieldError("pruning.target_density", "(one-shot) or {pruning.levels}/"
                                 "{pruning.prune_fraction} (iterative): give one, not both")
            density = values["target_density"]
            if not 0 < density < 1:
                raise FieldError("pruning.target_density", f"must be in (0, 1), got {density}")
            values.update(levels=1, prune_fraction=1.0 - density)
        return cls(**values)

    def validate(self) -> None:
        for item in self.layer_rates:
            self._check_rate(item)
        for level in self.baseline_levels:
            if not 1 <= level <= self.levels:
                raise FieldError("pruning.baseline_levels", f"has {level}, outside the pruned "
                                 f"levels 1..{self.levels}")
        for level in self.instability_levels:
            if not 0 <= level <= self.levels:
                raise FieldError("pruning.instability_levels", f"has {level}, outside the "
                                 f"levels 0..{self.levels}")
        if self.instability_levels and not self.instability:
            raise FieldError("pruning.instability_levels", "needs {pruning.instability}")

    def _check_rate(self, item: str) -> None:
        pattern, sep, rate = item.rpartition(":")
        if not (sep and pattern):
            raise FieldError("pruning.layer_rates", f"items are regex:rate, got {item!r}")
        try:
            re.compile(pattern)
            value = float(rate)
        except (re.error, ValueError) as e:
            raise FieldError("pruning.layer_rates", f"has an invalid item {item!r} ({e})") from None
        if not (value > 0 and value * self.prune_fraction < 1):
            raise FieldError("pruning.layer_rates", f"rate {rate} in {item!r} must be > 0 and "
                             f"below 1/{self.prune_fraction:g} (rate x fraction is what a "
                             "level removes)")

    def validate_in(self, config: Any) -> None:
        train_steps = config.train.train_steps
        if self.rewind_step > train_steps:
            raise FieldError("pruning.rewind_step", f"={self.rewind_step} is outside "
                             f"[0, {train_steps}] (the run's T)")


def _no_rewind_step(config: Any) -> None:
    if config.pruning.rewind_step:
        raise FieldError("pruning.rewind_step", "is one k; --experiment=imp_sweep "
                         "rewinds to every k of {train.rewind_steps}: give those")


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """What the config knows of an experiment: its name and its sections.

    The experiment's code (planner, task kinds, hooks) is
    ``tf_lottery.experiments``'s, registered there by object under the same
    name; the config layer imports nothing above it, so it declares here only
    what parsing flags and validating a recipe need.

    Attributes:
      name: the ``--experiment`` value.
      summary: what it does, for ``--experiment``'s help.
      sections: the config sections it adds to the recipe, always.
      optional: ``(section, "section.field")``: a section it adds when that
        boolean field of another of its sections is true.
      check: ``config -> None``, raising ``FieldError`` for a combination of
        knobs the experiment cannot run; called when the config is validated.
    """

    name: str
    summary: str
    sections: tuple[type[Section], ...] = ()
    optional: tuple[tuple[type[Section], str], ...] = ()
    check: Callable[[Any], None] | None = None

    def section_types(self, value: Callable[[str], Any]) -> tuple[type[Section], ...]:
        """The sections it uses; ``value("section.field")`` reads a switch."""
        found = (*self.sections, *(cls for cls, switch in self.optional if value(switch)))
        return tuple(dict.fromkeys(found))  # a section two switches add: once


_IMP_OPTIONAL = ((InstabilityConfig, "pruning.instability"),
                 (InstabilityConfig, "pruning.level_barriers"),
                 (CurveConfig, "curve.enabled"))

EXPERIMENTS = {e.name: e for e in (
    ExperimentSpec("train", "trains the recipe once, saving rewind checkpoints"),
    ExperimentSpec(
        "instability", "runs the instability analysis (children from each W_k, "
        "interpolation, error barriers; with --curve, curves too)",
        sections=(InstabilityConfig, SurfaceConfig),
        optional=((CurveConfig, "curve.enabled"),)),
    ExperimentSpec(
        "imp", "runs IMP with rewinding (levels, baselines and, with --instability, "
        "the instability analysis of each level's subnetwork; with "
        "--imp_level_barriers, the paths between levels' trained networks)",
        sections=(PruningConfig,), optional=_IMP_OPTIONAL),
    ExperimentSpec(
        "imp_sweep", "runs IMP at every rewind step k of --rewind_steps: one dense "
        "run shared, then a chain of levels per k (as --experiment=imp "
        "--rewind_step=k), in k_<k>/",
        sections=(PruningConfig,), optional=_IMP_OPTIONAL, check=_no_rewind_step),
    ExperimentSpec(
        "onset", "searches for the earliest stable rewind step (children only at the "
        "k a bisection over --onset_grid needs), dense or at an IMP level",
        sections=(InstabilityConfig, OnsetConfig),
        optional=((PruningConfig, "onset.level"),)),
)}


def names() -> list[str]:
    return list(EXPERIMENTS)


def get(name: str) -> ExperimentSpec:
    if name not in EXPERIMENTS:
        raise ConfigError(f"--experiment={name} is not known (known: {', '.join(EXPERIMENTS)})")
    return EXPERIMENTS[name]


def section_types() -> tuple[type[Section], ...]:
    """Every experiment section, each once, in registration order."""
    found = [cls for e in EXPERIMENTS.values()
             for cls in (*e.sections, *(c for c, _ in e.optional))]
    return tuple(dict.fromkeys(found))


def help_text() -> str:
    return "Experiment: what to run. " + "; ".join(
        f"'{e.name}' {e.summary}" for e in EXPERIMENTS.values()) + "."


