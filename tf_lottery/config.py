"""Every knob of an experiment: absl flag definitions -> frozen dataclasses.

Nothing outside this module reads ``FLAGS``. A config splits into the
*recipe* (what is trained: model, data, optimizer, schedule, length, seeds),
which is hashed and must not change under an existing run directory, and the
*runtime* (where and how fast: strategy, TPU name, loop size, cadences,
data locations), which may change between a run and its resumption, e.g.
when a preempted TPU job is resumed elsewhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from typing import Any

from absl import flags

from tf_lottery.data import registry as data_registry
from tf_lottery.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
SCHEDULES = ("constant", "step", "linear_decay", "exponential")
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
AUGMENTATIONS = ("default", "none", "flip", "crop_flip", "inception", "resnet")
IMAGENET_RECIPES = ("inception", "resnet")  # --augment for streamed datasets
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
PRUNING_SCOPES = ("global", "layerwise")
REWIND_OPTIMIZER = ("reset", "restore")
BASELINES = ("random_prune", "random_reinit")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network to build (a name in ``tf_lottery.models.registry``) and how
    it computes: ``precision`` is a Keras mixed-precision policy (weights stay
    float32), ``cross_replica_bn`` computes BatchNorm batch statistics over
    the global batch instead of each replica's slice."""

    name: str = "lenet_300_100"
    precision: str = "float32"
    cross_replica_bn: bool = False


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data, how it is augmented, and how much is used for train error."""

    dataset: str = "fashion_mnist"
    augment: str = "none"
    train_eval_examples: int = 10000
    eval_batch_size: int = 1000
    # Streamed datasets only (0 otherwise): model input side, and shards per
    # shuffle window (see data/streaming.py).
    image_size: int = 0
    shuffle_window_shards: int = 0


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The update rule and the loss terms that shape gradients."""

    name: str = "adam"
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-7
    rmsprop_decay: float = 0.9
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    grad_clip_norm: float = 0.0
    aux_loss_weight: float = 0.4
    ema_decay: float = 0.0


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """The learning rate as a function of the step, resolved to steps.

    ``kind`` picks the base curve; a linear warmup from 0 over
    ``warmup_steps`` multiplies any of them.
    """

    kind: str = "constant"
    learning_rate: float = 1.2e-3
    drop_steps: tuple[int, ...] = ()
    drop_factor: float = 0.1
    warmup_steps: int = 0
    final_learning_rate: float = 0.0
    decay_rate: float = 0.94
    decay_steps: int = 0


@dataclasses.dataclass(frozen=True)
class InstabilityConfig:
    """Instability analysis (experiment 'instability'): children, path, BatchNorm.

    For every rewind step k, ``children`` copies of the parent's W_k train to
    T with their own SGD noise; every pair is evaluated at
    ``interpolation_points`` evenly spaced points of the linear path between
    them. ``child_optimizer_state`` is 'restore' (the optimizer state saved
    with W_k: a child with the parent's seeds would retrace the parent) or
    'reset' (fresh optimizer state at k; the LR schedule still continues from
    k). ``bn_mode`` is 'interpolate' or 'recompute' (BatchNorm moving
    statistics re-estimated on ``bn_recompute_batches`` training batches at
    every point). ``replicates`` independent parents use init and SGD-noise
    seeds shifted by the replicate index.
    """

    children: int = 2
    interpolation_points: int = 30
    stability_threshold: float = 0.02
    bn_mode: str = "interpolate"
    bn_recompute_batches: int = 100
    replicates: int = 1
    child_optimizer_state: str = "restore"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Length, batch, seeds and the rewind checkpoints the run must keep.

    The three seeds are independent: ``init_seed`` fixes W_0, while
    ``data_order_seed`` and ``augment_seed`` together are the SGD noise.
    """

    batch_size: int = 60
    train_steps: int = 24000
    steps_per_epoch: int = 1000
    init_seed: int = 0
    data_order_seed: int = 0
    augment_seed: int = 0
    rewind_steps: tuple[int, ...] = (0,)


@dataclasses.dataclass(frozen=True)
class PruningConfig:
    """IMP with rewinding (experiment 'imp'): how levels prune and rewind.

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

    levels: int = 15
    prune_fraction: float = 0.2
    scope: str = "global"
    rewind_step: int = 0
    target_density: float = 0.0
    exclude: tuple[str, ...] = ()
    layer_rates: tuple[str, ...] = ()
    rewind_optimizer: str = "reset"
    baselines: tuple[str, ...] = ()
    baseline_levels: tuple[int, ...] = ()
    baseline_seed: int = 1
    instability: bool = False
    instability_levels: tuple[int, ...] = ()

    def rates(self) -> tuple[tuple[str, float], ...]:
        """``layer_rates`` as ``(pattern, rate)`` pairs."""
        return tuple((p, float(r)) for p, r in (s.rsplit(":", 1) for s in self.layer_rates))


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the recipe runs; never part of the run's identity."""

    model_dir: str = ""
    data_dir: str | None = None
    tfds_manual_dir: str | None = None
    strategy: str = "default"
    tpu: str | None = None
    cpu_devices: int = 1
    steps_per_loop: int = 100
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    eval_every: int = 0
    log_every: int = 1000
    deterministic: bool = True


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """The whole experiment; ``recipe_dict()`` is what identifies a run."""

    experiment: str = "train"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    instability: InstabilityConfig = dataclasses.field(default_factory=InstabilityConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    pruning: PruningConfig = dataclasses.field(default_factory=PruningConfig)

    def recipe_dict(self) -> dict[str, Any]:
        """The fields that determine results (everything but ``runtime``)."""
        d = dataclasses.asdict(self)
        d.pop("runtime")
        return d

    def recipe_hash(self) -> str:
        """Short content hash of the recipe, as in open_lth's run names."""
        blob = json.dumps(self.recipe_dict(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def to_json(self) -> str:
        return json.dumps(
            {"recipe_hash": self.recipe_hash(), **dataclasses.asdict(self)},
            indent=2,
            sort_keys=True,
        )


def diff_recipes(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the recipe fields that differ between two dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_recipes(va, vb, name + ".")
        elif va != vb and not (
            isinstance(va, list | tuple) and isinstance(vb, list | tuple)
            and list(va) == list(vb)
        ):
            out.append(name)
    return out


# ----------------------------------------------------------------------------
# Flags. Help strings start with their group so `--helpfull` reads by group.
# ----------------------------------------------------------------------------

class _FlagDefiner:
    """``absl.flags`` with every ``DEFINE_*`` bound to one ``FlagValues``."""

    def __init__(self, fv: flags.FlagValues):
        self._fv = fv

    def __getattr__(self, name: str):
        define = getattr(flags, name)
        return lambda *args, **kwargs: define(*args, flag_values=self._fv, **kwargs)


def define_flags(fv: flags.FlagValues | None = None) -> None:
    """Defines every tf_lottery flag on ``fv`` (default: absl's global FLAGS).

    Idempotent; tests pass a fresh ``FlagValues`` to parse flags in isolation.
    """
    fv = flags.FLAGS if fv is None else fv
    if "model_dir" in fv:
        return
    d = _FlagDefiner(fv)

    # Experiment.
    d.DEFINE_string(
        "experiment", "train",
        "Experiment: what to run. 'train' trains the recipe once, saving "
        "rewind checkpoints; 'instability' runs the instability analysis "
        "(children from each W_k, interpolation, error barriers).")
    d.DEFINE_string(
        "model_dir", None,
        "Experiment: directory (local or gs://) holding all state of the run; "
        "re-running with the same directory resumes.")

    # Model.
    d.DEFINE_string("model", "lenet_300_100", "Model: registry name.")
    d.DEFINE_enum(
        "precision", "float32", PRECISIONS,
        "Model: Keras dtype policy; mixed_bfloat16 for TPUs, mixed_float16 "
        "(with dynamic loss scaling) for GPUs. Weights, masks, the loss and "
        "the logits stay float32.")
    d.DEFINE_boolean(
        "cross_replica_bn", False,
        "Model: BatchNorm batch statistics over the global batch (synchronized "
        "across replicas) instead of each replica's slice.")

    # Data.
    d.DEFINE_string("dataset", "fashion_mnist", "Data: dataset name.")
    d.DEFINE_string(
        "data_dir", None,
        "Data: TFDS data_dir (local or gs://) holding prepared datasets; "
        "defaults to TFDS's own (~/tensorflow_datasets).")
    d.DEFINE_string(
        "tfds_manual_dir", None,
        "Data: folder with the dataset's original archive files; TFDS "
        "prepares them into --data_dir without any download.")
    d.DEFINE_enum(
        "augment", "default", AUGMENTATIONS,
        "Data: training augmentation; 'default' is the dataset's recipe "
        "(none for MNIST-like data, pad-4 crop + flip for CIFAR). For ImageNet "
        "it names the whole preprocessing recipe: 'resnet' (default) or "
        "'inception' (see data/imagenet_preprocessing.py).")
    d.DEFINE_integer(
        "image_size", 0,
        "Data: model input side for ImageNet (0: the recipe's, 224 resnet / "
        "299 inception); smaller sizes are for tests and quick runs.")
    d.DEFINE_integer(
        "shuffle_window_shards", 16,
        "Data: ImageNet shards read and shuffled together; each epoch visits "
        "random windows of this many random shards (more: better mixing, "
        "more host memory).")
    d.DEFINE_integer(
        "train_eval_examples", 10000,
        "Data: size of the fixed train subset evaluated for train error "
        "(first N training examples, unaugmented).")
    d.DEFINE_integer("eval_batch_size", 1000, "Data: global eval batch size.")

    # Training length, batch, seeds.
    d.DEFINE_integer("batch_size", 60, "Training: global batch size.")
    d.DEFINE_integer(
        "train_steps", None, "Training: length T in steps (or --train_epochs).")
    d.DEFINE_float(
        "train_epochs", None, "Training: length T in epochs (or --train_steps).")
    d.DEFINE_integer("init_seed", 0, "Seeds: initialization of W_0.")
    d.DEFINE_integer("data_order_seed", 0, "Seeds: order of training examples.")
    d.DEFINE_integer("augment_seed", 0, "Seeds: data augmentation draws.")
    d.DEFINE_list(
        "rewind_steps", ["0"],
        "Checkpoints: steps k at which W_k is saved permanently for rewinding.")
    d.DEFINE_list(
        "rewind_epochs", [],
        "Checkpoints: --rewind_steps given in epochs (rounded to steps).")

    # Instability analysis.
    d.DEFINE_integer(
        "children", 2,
        "Instability: copies trained from each W_k with their own SGD noise "
        "(every pair is interpolated).")
    d.DEFINE_integer(
        "interpolation_points", 30,
        "Instability: evenly spaced alphas in [0, 1] on the path between two "
        "children.")
    d.DEFINE_float(
        "stability_threshold", 0.02,
        "Instability: a rewind step is stable when its test error barrier is "
        "below this.")
    d.DEFINE_enum(
        "bn_mode", "interpolate", ("interpolate", "recompute"),
        "Instability: BatchNorm moving statistics of W(alpha): interpolated "
        "like weights, or re-estimated on training batches at each alpha.")
    d.DEFINE_integer(
        "bn_recompute_batches", 100,
        "Instability: training batches used by --bn_mode=recompute.")
    d.DEFINE_integer(
        "replicates", 1,
        "Instability: independent parents (init and SGD-noise seeds + r); "
        "barriers are reported as mean +- std across them.")
    d.DEFINE_enum(
        "child_optimizer_state", "restore", ("restore", "reset"),
        "Instability: children start from W_k with the optimizer state saved "
        "at k ('restore') or a fresh one ('reset').")

    # Optimizer.
    d.DEFINE_enum("optimizer", "adam", OPTIMIZERS, "Optimizer: update rule.")
    d.DEFINE_float("momentum", 0.9, "Optimizer: momentum (momentum, rmsprop).")
    d.DEFINE_boolean("nesterov", False, "Optimizer: Nesterov momentum.")
    d.DEFINE_float("adam_beta1", 0.9, "Optimizer: Adam beta_1.")
    d.DEFINE_float("adam_beta2", 0.999, "Optimizer: Adam beta_2.")
    d.DEFINE_float(
        "epsilon", 1e-7, "Optimizer: epsilon of Adam / RMSProp (Inception: 1.0).")
    d.DEFINE_float("rmsprop_decay", 0.9, "Optimizer: RMSProp decay (rho).")
    d.DEFINE_float(
        "weight_decay", 0.0,
        "Optimizer: L2 coefficient; adds wd/2*||w||^2 over all trainable "
        "weights to the loss, i.e. grad += wd*w as in PyTorch SGD.")
    d.DEFINE_float("label_smoothing", 0.0, "Optimizer: label smoothing.")
    d.DEFINE_float(
        "grad_clip_norm", 0.0,
        "Optimizer: clip the global-batch gradient to this global norm (0: off).")
    d.DEFINE_float(
        "aux_loss_weight", 0.4,
        "Optimizer: weight of the auxiliary classifier's loss for models that "
        "have one (inception_v3); the head is ignored at evaluation.")
    d.DEFINE_float(
        "ema_decay", 0.0,
        "Optimizer: evaluate an exponential moving average of the weights "
        "with this decay (stock Inception: 0.9999; 0: off).")

    # Learning-rate schedule.
    d.DEFINE_float("learning_rate", 1.2e-3, "Schedule: base learning rate.")
    d.DEFINE_enum("lr_schedule", "constant", SCHEDULES, "Schedule: base curve.")
    d.DEFINE_list("lr_drop_steps", [], "Schedule: steps where 'step' drops.")
    d.DEFINE_list("lr_drop_epochs", [], "Schedule: epochs where 'step' drops.")
    d.DEFINE_float("lr_drop_factor", 0.1, "Schedule: factor of each drop.")
    d.DEFINE_integer("warmup_steps", 0, "Schedule: linear warmup length.")
    d.DEFINE_float("warmup_epochs", 0.0, "Schedule: linear warmup in epochs.")
    d.DEFINE_float(
        "final_learning_rate", 0.0,
        "Schedule: learning rate reached at T by 'linear_decay'.")
    d.DEFINE_float(
        "lr_decay_rate", 0.94, "Schedule: factor of each 'exponential' decay.")
    d.DEFINE_float(
        "lr_decay_epochs", 2.0, "Schedule: epochs between 'exponential' decays.")

    # IMP with rewinding.
    d.DEFINE_integer(
        "imp_levels", 15,
        "IMP: pruned levels after the dense level 0 (15 levels of 20% reach "
        "3.5% density).")
    d.DEFINE_float(
        "prune_fraction", 0.2,
        "IMP: fraction of the remaining prunable weights each level removes.")
    d.DEFINE_enum(
        "pruning_scope", "global", PRUNING_SCOPES,
        "IMP: 'global' ranks all prunable weights together; 'layerwise' prunes "
        "each layer by the same fraction.")
    d.DEFINE_integer(
        "rewind_step", 0,
        "IMP: step k whose weights W_k the survivors are rewound to "
        "(0: the original lottery ticket procedure).")
    d.DEFINE_float(
        "target_density", None,
        "IMP: one-shot pruning straight to this density in one level "
        "(instead of --imp_levels/--prune_fraction).")
    d.DEFINE_list(
        "prune_exclude", [],
        "IMP: regexes; Dense/Conv layers whose name fully matches one are "
        "never pruned.")
    d.DEFINE_list(
        "prune_layer_rates", [],
        "IMP: regex:rate items; a matching layer is pruned on its own at rate "
        "times --prune_fraction (e.g. logits:0.5).")
    d.DEFINE_enum(
        "imp_rewind_optimizer", "reset", REWIND_OPTIMIZER,
        "IMP: optimizer state at the rewind step: 'reset' (fresh) or "
        "'restore' (the state saved with W_k).")
    d.DEFINE_list(
        "imp_baselines", [],
        "IMP: baselines per level: random_prune (same per-layer densities, "
        "random positions), random_reinit (same mask, new initialization).")
    d.DEFINE_list(
        "imp_baseline_levels", [],
        "IMP: levels at which baselines run (empty: every pruned level).")
    d.DEFINE_integer(
        "imp_baseline_seed", 1,
        "IMP: seed of the baselines' random masks and reinitializations.")
    d.DEFINE_boolean(
        "instability", False,
        "IMP: instability analysis of each level's subnetwork at the rewind "
        "step (children start from the masked W_k and keep the mask; "
        "--children, --interpolation_points etc. apply).")
    d.DEFINE_list(
        "imp_instability_levels", [],
        "IMP: levels analyzed with --instability (empty: every level, 0 included).")

    # Runtime.
    d.DEFINE_enum("strategy", "default", STRATEGIES, "Runtime: tf.distribute.")
    d.DEFINE_string(
        "tpu", None, "Runtime: TPU name for TPUClusterResolver, or 'local'.")
    d.DEFINE_integer(
        "cpu_devices", 1,
        "Runtime: split the host CPU into this many logical devices "
        "(lets 'mirrored' run on a CPU-only machine).")
    d.DEFINE_integer(
        "steps_per_loop", 100, "Runtime: training steps per tf.function call.")
    d.DEFINE_integer(
        "checkpoint_every", 1000, "Runtime: steps between resume checkpoints.")
    d.DEFINE_integer(
        "keep_checkpoints", 2, "Runtime: resume checkpoints kept on disk.")
    d.DEFINE_integer(
        "eval_every", 0,
        "Runtime: steps between test/train evaluations (0: once per epoch).")
    d.DEFINE_integer("log_every", 1000, "Runtime: steps between progress lines.")
    d.DEFINE_boolean(
        "deterministic", True,
        "Runtime: tf.config.experimental.enable_op_determinism() so that "
        "reruns and resumed runs are bit-identical.")


def _ints(values: list[str], flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in values if str(v).strip() != "")
    except ValueError:
        raise ConfigError(f"--{flag} must be a comma-separated list of integers, "
                          f"got {','.join(values)!r}") from None


def _floats(values: list[str], flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values if str(v).strip() != "")
    except ValueError:
        raise ConfigError(f"--{flag} must be a comma-separated list of numbers, "
                          f"got {','.join(values)!r}") from None


def _instability_config(f: flags.FlagValues) -> InstabilityConfig:
    """Validates the instability flags."""
    _check(f.children >= 2, f"--children must be >= 2 (a pair), got {f.children}")
    _check(f.interpolation_points >= 2,
           f"--interpolation_points must be >= 2, got {f.interpolation_points}")
    _check(0 <= f.stability_threshold < 1 and math.isfinite(f.stability_threshold),
           f"--stability_threshold must be in [0, 1), got {f.stability_threshold}")
    _check(f.bn_recompute_batches >= 1,
           f"--bn_recompute_batches must be >= 1, got {f.bn_recompute_batches}")
    _check(f.replicates >= 1, f"--replicates must be >= 1, got {f.replicates}")
    return InstabilityConfig(
        children=f.children,
        interpolation_points=f.interpolation_points,
        stability_threshold=f.stability_threshold,
        bn_mode=f.bn_mode,
        bn_recompute_batches=f.bn_recompute_batches,
        replicates=f.replicates,
        child_optimizer_state=f.child_optimizer_state,
    )


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _pruning_config(f: flags.FlagValues, train_steps: int) -> PruningConfig:
    """Validates the IMP flags; one-shot becomes one level of fraction 1-D."""
    levels, fraction = f.imp_levels, f.prune_fraction
    if f.target_density is not None:
        _check(not (f["imp_levels"].present or f["prune_fraction"].present),
               "give --target_density (one-shot) or --imp_levels/--prune_fraction "
               "(iterative), not both")
        _check(0 < f.target_density < 1,
               f"--target_density must be in (0, 1), got {f.target_density}")
        levels, fraction = 1, 1.0 - f.target_density
    _check(levels >= 1, f"--imp_levels must be >= 1, got {levels}")
    _check(0 < fraction < 1, f"--prune_fraction must be in (0, 1), got {fraction}")
    _check(0 <= f.rewind_step <= train_steps,
           f"--rewind_step={f.rewind_step} is outside [0, {train_steps}] (the run's T)")
    for pattern in f.prune_exclude:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"--prune_exclude has an invalid regex {pattern!r} "
                              f"({e})") from None
    for item in f.prune_layer_rates:
        pattern, sep, rate = item.rpartition(":")
        _check(bool(sep and pattern), f"--prune_layer_rates items are regex:rate, "
               f"got {item!r}")
        try:
            re.compile(pattern)
            value = float(rate)
        except (re.error, ValueError) as e:
            raise ConfigError(f"--prune_layer_rates has an invalid item {item!r} "
                              f"({e})") from None
        _check(value > 0 and value * fraction < 1,
               f"--prune_layer_rates rate {rate} in {item!r} must be > 0 and below "
               f"1/{fraction:g} (rate x fraction is what a level removes)")
    for name in f.imp_baselines:
        _check(name in BASELINES, f"--imp_baselines has unknown baseline {name!r} "
               f"(known: {', '.join(BASELINES)})")
    baseline_levels = tuple(sorted(set(_ints(f.imp_baseline_levels, "imp_baseline_levels"))))
    for level in baseline_levels:
        _check(1 <= level <= levels,
               f"--imp_baseline_levels has {level}, outside the pruned levels 1..{levels}")
    instability_levels = tuple(sorted(set(_ints(f.imp_instability_levels,
                                                "imp_instability_levels"))))
    for level in instability_levels:
        _check(0 <= level <= levels,
               f"--imp_instability_levels has {level}, outside the levels 0..{levels}")
    _check(f.instability or not instability_levels,
           "--imp_instability_levels needs --instability")
    return PruningConfig(
        levels=levels,
        prune_fraction=fraction,
        scope=f.pruning_scope,
        rewind_step=f.rewind_step,
        target_density=f.target_density or 0.0,
        exclude=tuple(f.prune_exclude),
        layer_rates=tuple(f.prune_layer_rates),
        rewind_optimizer=f.imp_rewind_optimizer,
        baselines=tuple(dict.fromkeys(f.imp_baselines)),
        baseline_levels=baseline_levels,
        baseline_seed=f.imp_baseline_seed,
        instability=f.instability,
        instability_levels=instability_levels,
    )


def _streaming_data(f: flags.FlagValues, spec: data_registry.DatasetSpec) -> tuple[int, int]:
    """Checks --augment/--image_size against the dataset; returns the resolved
    (image_size, shuffle_window_shards), both 0 for in-memory datasets."""
    augment = spec.default_augment if f.augment == "default" else f.augment
    if spec.in_memory:
        _check(augment not in IMAGENET_RECIPES,
               f"--augment={augment} is an ImageNet recipe; {spec.name} takes none, "
               "flip or crop_flip")
        _check(f.image_size == 0, f"--image_size applies to streamed datasets "
               f"(imagenet2012), not {spec.name}")
        return 0, 0
    _check(augment in IMAGENET_RECIPES,
           f"--augment={augment} does not apply to {spec.name}; give one of "
           f"{', '.join(IMAGENET_RECIPES)}")
    _check(f.image_size == 0 or f.image_size >= 32,
           f"--image_size must be 0 (the recipe's) or >= 32, got {f.image_size}")
    _check(f.shuffle_window_shards >= 1,
           f"--shuffle_window_shards must be >= 1, got {f.shuffle_window_shards}")
    from tf_lottery.data import imagenet_preprocessing

    size = f.image_size or imagenet_preprocessing.DEFAULT_SIZE[augment]
    return size, f.shuffle_window_shards


def config_from_flags(fl: flags.FlagValues | None = None) -> ExperimentConfig:
    """Resolves parsed flags into a validated ``ExperimentConfig``.

    Epoch-valued flags become steps here (with the dataset's train size and the
    batch size), so everything downstream works in steps only.
    """
    from tf_lottery.models import registry as model_registry

    f = fl or flags.FLAGS
    _check(bool(f.model_dir), "--model_dir is required: the directory that will "
           "hold the run (re-running with the same directory resumes)")
    _check(f.model in model_registry.names(),
           f"--model={f.model} is not a known model "
           f"(known: {', '.join(model_registry.names())})")
    _check(f.dataset in data_registry.names(),
           f"--dataset={f.dataset} is not a known dataset "
           f"(known: {', '.join(data_registry.names())})")
    spec = data_registry.get(f.dataset)

    _check(f.batch_size > 0, f"--batch_size must be positive, got {f.batch_size}")
    _check(f.eval_batch_size > 0,
           f"--eval_batch_size must be positive, got {f.eval_batch_size}")
    _check(f.train_eval_examples >= 0,
           f"--train_eval_examples must be >= 0, got {f.train_eval_examples}")
    _check(f.batch_size <= spec.train_examples,
           f"--batch_size={f.batch_size} exceeds the {spec.train_examples} "
           f"training examples of {f.dataset}")
    steps_per_epoch = spec.train_examples // f.batch_size

    def epochs_to_steps(e: float) -> int:
        return int(round(e * steps_per_epoch))

    _check((f.train_steps is None) != (f.train_epochs is None),
           "give exactly one of --train_steps and --train_epochs")
    if f.train_steps is not None:
        train_steps = f.train_steps
    else:
        _check(math.isfinite(f.train_epochs), "--train_epochs must be finite")
        train_steps = epochs_to_steps(f.train_epochs)
    _check(train_steps > 0, f"training length must be positive, got {train_steps} "
           "steps (--train_steps / --train_epochs)")

    rewind_steps = tuple(sorted(set(_ints(f.rewind_steps, "rewind_steps"))))
    if f.rewind_epochs:
        _check(not f["rewind_steps"].present,
               "give --rewind_steps or --rewind_epochs, not both")
        rewind_steps = tuple(sorted({epochs_to_steps(e) for e in
                                     _floats(f.rewind_epochs, "rewind_epochs")}))
    for k in rewind_steps:
        _check(0 <= k <= train_steps,
               f"--rewind_steps has {k}, outside [0, {train_steps}] (the run's T)")
    instability = _instability_config(f)

    _check(f.learning_rate > 0 and math.isfinite(f.learning_rate),
           f"--learning_rate must be a positive number, got {f.learning_rate}")
    drop_steps = _ints(f.lr_drop_steps, "lr_drop_steps")
    drop_epochs = _floats(f.lr_drop_epochs, "lr_drop_epochs")
    _check(not (drop_steps and drop_epochs),
           "give --lr_drop_steps or --lr_drop_epochs, not both")
    if drop_epochs:
        drop_steps = tuple(epochs_to_steps(e) for e in drop_epochs)
    _check(list(drop_steps) == sorted(drop_steps) and all(s > 0 for s in drop_steps),
           "--lr_drop_steps/--lr_drop_epochs must be positive and increasing")
    if f.lr_schedule == "step":
        _check(bool(drop_steps), "--lr_schedule=step needs --lr_drop_steps "
               "or --lr_drop_epochs")
    else:
        _check(not drop_steps, f"--lr_drop_steps/--lr_drop_epochs only apply to "
               f"--lr_schedule=step, not {f.lr_schedule}")
    _check(f.warmup_steps >= 0 and f.warmup_epochs >= 0,
           "--warmup_steps/--warmup_epochs must be >= 0")
    _check(not (f.warmup_steps and f.warmup_epochs),
           "give --warmup_steps or --warmup_epochs, not both")
    warmup_steps = f.warmup_steps or epochs_to_steps(f.warmup_epochs)
    _check(warmup_steps <= train_steps,
           f"warmup of {warmup_steps} steps is longer than training ({train_steps})")
    decay_steps = 0
    if f.lr_schedule == "exponential":
        _check(f.lr_decay_epochs > 0, "--lr_decay_epochs must be positive")
        _check(0 < f.lr_decay_rate <= 1, "--lr_decay_rate must be in (0, 1]")
        decay_steps = max(1, epochs_to_steps(f.lr_decay_epochs))
    _check(f.final_learning_rate >= 0, "--final_learning_rate must be >= 0")
    _check(0 < f.lr_drop_factor <= 1, "--lr_drop_factor must be in (0, 1]")

    _check(f.weight_decay >= 0, f"--weight_decay must be >= 0, got {f.weight_decay}")
    _check(0 <= f.label_smoothing < 1,
           f"--label_smoothing must be in [0, 1), got {f.label_smoothing}")
    _check(f.grad_clip_norm >= 0, "--grad_clip_norm must be >= 0 (0 disables)")
    _check(0 <= f.momentum < 1, f"--momentum must be in [0, 1), got {f.momentum}")
    _check(f.epsilon > 0, f"--epsilon must be positive, got {f.epsilon}")
    _check(f.aux_loss_weight >= 0,
           f"--aux_loss_weight must be >= 0, got {f.aux_loss_weight}")
    _check(0 <= f.ema_decay < 1, f"--ema_decay must be in [0, 1), got {f.ema_decay}")
    if f.precision == "mixed_float16":
        _check(f.strategy != "tpu", "--precision=mixed_float16 is for GPUs; use "
               "mixed_bfloat16 with --strategy=tpu")
    image_size, window_shards = _streaming_data(f, spec)

    _check(f.steps_per_loop > 0, "--steps_per_loop must be positive")
    _check(f.checkpoint_every > 0, "--checkpoint_every must be positive")
    _check(f.keep_checkpoints > 0, "--keep_checkpoints must be positive")
    _check(f.log_every > 0, "--log_every must be positive")
    _check(f.eval_every >= 0, "--eval_every must be >= 0 (0: once per epoch)")
    _check(f.cpu_devices > 0, "--cpu_devices must be positive")
    if f.strategy == "tpu":
        _check(bool(f.tpu), "--strategy=tpu needs --tpu=NAME (or --tpu=local on "
               "a TPU VM)")

    pruning = _pruning_config(f, train_steps)
    augment = spec.default_augment if f.augment == "default" else f.augment
    return ExperimentConfig(
        experiment=f.experiment,
        instability=instability,
        model=ModelConfig(name=f.model, precision=f.precision,
                          cross_replica_bn=f.cross_replica_bn),
        data=DataConfig(
            dataset=f.dataset,
            augment=augment,
            train_eval_examples=min(f.train_eval_examples, spec.train_examples),
            eval_batch_size=f.eval_batch_size,
            image_size=image_size,
            shuffle_window_shards=window_shards,
        ),
        optimizer=OptimizerConfig(
            name=f.optimizer,
            momentum=f.momentum,
            nesterov=f.nesterov,
            beta1=f.adam_beta1,
            beta2=f.adam_beta2,
            epsilon=f.epsilon,
            rmsprop_decay=f.rmsprop_decay,
            weight_decay=f.weight_decay,
            label_smoothing=f.label_smoothing,
            grad_clip_norm=f.grad_clip_norm,
            aux_loss_weight=f.aux_loss_weight,
            ema_decay=f.ema_decay,
        ),
        schedule=ScheduleConfig(
            kind=f.lr_schedule,
            learning_rate=f.learning_rate,
            drop_steps=drop_steps,
            drop_factor=f.lr_drop_factor,
            warmup_steps=warmup_steps,
            final_learning_rate=f.final_learning_rate,
            decay_rate=f.lr_decay_rate,
            decay_steps=decay_steps,
        ),
        train=TrainConfig(
            batch_size=f.batch_size,
            train_steps=train_steps,
            steps_per_epoch=steps_per_epoch,
            init_seed=f.init_seed,
            data_order_seed=f.data_order_seed,
            augment_seed=f.augment_seed,
            rewind_steps=rewind_steps,
        ),
        pruning=pruning,
        runtime=RuntimeConfig(
            model_dir=f.model_dir,
            data_dir=f.data_dir,
            tfds_manual_dir=f.tfds_manual_dir,
            strategy=f.strategy,
            tpu=f.tpu,
            cpu_devices=f.cpu_devices,
            steps_per_loop=f.steps_per_loop,
            checkpoint_every=f.checkpoint_every,
            keep_checkpoints=f.keep_checkpoints,
            eval_every=f.eval_every or steps_per_epoch,
            log_every=f.log_every,
            deterministic=f.deterministic,
        ),
    )


def config_from_json(text: str) -> ExperimentConfig:
    """Inverse of ``ExperimentConfig.to_json`` (lists come back as tuples)."""
    d = json.loads(text)
    d.pop("recipe_hash", None)

    def build(cls, values):
        kwargs = {}
        for field in dataclasses.fields(cls):
            if field.name not in values:
                continue
            v = values[field.name]
            if dataclasses.is_dataclass(field.default_factory if field.default_factory
                                        is not dataclasses.MISSING else None):
                v = build(field.default_factory, v)
            elif isinstance(v, list):
                v = tuple(v)
            kwargs[field.name] = v
        return cls(**kwargs)

    return build(ExperimentConfig, d)
