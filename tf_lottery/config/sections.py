"""The sections every experiment has: the recipe (model, data, training,
optimizer, schedule) and the runtime.

Each field declares its flag beside it (``knobs.knob``). The *recipe* is what
is trained and identifies a run; the *runtime* (where and how fast: strategy,
TPU name, loop size, cadences, data locations) may change between a run and
its resumption, e.g. when a preempted TPU job is resumed elsewhere.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, cast

from tf_lottery.config.knobs import (
    REQUIRED,
    Flag,
    FlagReader,
    Section,
    at_least,
    derived,
    epochs_to_steps,
    knob,
    must,
    positive,
    sorted_set,
)
from tf_lottery.data import registry as data_registry
from tf_lottery.errors import FieldError

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
SCHEDULES = ("constant", "step", "linear_decay", "exponential")
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")
AUGMENTATIONS = ("default", "none", "flip", "crop_flip", "inception", "resnet")
IMAGENET_RECIPES = ("inception", "resnet")  # --augment for streamed datasets
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

below_one = must(lambda v: 0 <= v < 1, "be in [0, 1)")
non_negative = at_least(0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(Section):
    """Which network to build (a name in ``tf_lottery.models.registry``) and how
    it computes: ``precision`` is a Keras mixed-precision policy (weights stay
    float32), ``cross_replica_bn`` computes BatchNorm batch statistics over
    the global batch instead of each replica's slice."""

    section = "model"

    name: str = knob("lenet_300_100", "Model: registry name.", flag="model")
    precision: str = knob(
        "float32",
        "Model: Keras dtype policy; mixed_bfloat16 for TPUs, mixed_float16 "
        "(with dynamic loss scaling) for GPUs. Weights, masks, the loss and "
        "the logits stay float32.", choices=PRECISIONS)
    cross_replica_bn: bool = knob(
        False,
        "Model: BatchNorm batch statistics over the global batch (synchronized "
        "across replicas) instead of each replica's slice.")

    @classmethod
    def from_flags(cls, flags: FlagReader, built: Mapping[str, Section]) -> ModelConfig:
        from tf_lottery.models import registry as model_registry

        name = flags.field(cls, "name")
        if name not in model_registry.names():
            raise FieldError("model.name", f"={name} is not a known model "
                             f"(known: {', '.join(model_registry.names())})")
        return cls(**flags.fields(cls))

    def validate_in(self, config: Any) -> None:
        if self.precision == "mixed_float16" and config.runtime.strategy == "tpu":
            raise FieldError("model.precision", "=mixed_float16 is for GPUs; use "
                             "mixed_bfloat16 with {runtime.strategy}=tpu")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig(Section):
    """Which data, how it is augmented, and how much is used for train error.

    Built from flags, ``augment`` 'default' becomes the dataset's own recipe,
    and ``image_size`` and ``shuffle_window_shards`` are 0 for in-memory
    datasets (they apply to streamed ones, see data/streaming.py).
    """

    section = "data"

    dataset: str = knob("fashion_mnist", "Data: dataset name.")
    augment: str = knob(
        "default",
        "Data: training augmentation; 'default' is the dataset's recipe "
        "(none for MNIST-like data, pad-4 crop + flip for CIFAR). For ImageNet "
        "it names the whole preprocessing recipe: 'resnet' (default) or "
        "'inception' (see data/imagenet_preprocessing.py).", choices=AUGMENTATIONS)
    train_eval_examples: int = knob(
        10000,
        "Data: size of the fixed train subset evaluated for train error "
        "(first N training examples, unaugmented).", check=non_negative)
    eval_batch_size: int = knob(1000, "Data: global eval batch size.", check=positive)
    image_size: int = knob(
        0,
        "Data: model input side for ImageNet (0: the recipe's, 224 resnet / "
        "299 inception); smaller sizes are for tests and quick runs.",
        check=must(lambda v: v == 0 or v >= 32, "be 0 (the recipe's) or >= 32"))
    shuffle_window_shards: int = knob(
        16,
        "Data: ImageNet shards read and shuffled together; each epoch visits "
        "random windows of this many random shards (more: better mixing, "
        "more host memory).", check=non_negative)

    @classmethod
    def from_flags(cls, flags: FlagReader, built: Mapping[str, Section]) -> DataConfig:
        values = flags.fields(cls)
        name = values["dataset"]
        if name not in data_registry.names():
            raise FieldError("data.dataset", f"={name} is not a known dataset "
                             f"(known: {', '.join(data_registry.names())})")
        spec = data_registry.get(name)
        if values["augment"] == "default":
            values["augment"] = spec.default_augment
        if values["train_eval_examples"] >= 0:
            values["train_eval_examples"] = min(values["train_eval_examples"],
                                                spec.train_examples)
        values.update(_streaming(spec, values))
        return cls(**values)


def _streaming(spec: data_registry.DatasetSpec, values: dict) -> dict:
    """``image_size`` and ``shuffle_window_shards`` checked against the dataset
    and resolved: the recipe's size for streamed data, both 0 in memory."""
    augment = values["augment"]
    if spec.in_memory:
        if augment in IMAGENET_RECIPES:
            raise FieldError("data.augment", f"={augment} is an ImageNet recipe; {spec.name} "
                             "takes none, flip or crop_flip")
        if values["image_size"]:
            raise FieldError("data.image_size", "applies to streamed datasets "
                             f"(imagenet2012), not {spec.name}")
        return {"image_size": 0, "shuffle_window_shards": 0}
    if augment not in IMAGENET_RECIPES:
        raise FieldError("data.augment", f"={augment} does not apply to {spec.name}; "
                         f"give one of {', '.join(IMAGENET_RECIPES)}")
    if values["shuffle_window_shards"] < 1:
        raise FieldError("data.shuffle_window_shards",
                         f"must be >= 1, got {values['shuffle_window_shards']}")
    from tf_lottery.data import imagenet_preprocessing

    return {"image_size": values["image_size"] or imagenet_preprocessing.DEFAULT_SIZE[augment]}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(Section):
    """Length, batch, seeds and the rewind checkpoints the run must keep.

    The three seeds are independent: ``init_seed`` fixes W_0, while
    ``data_order_seed`` and ``augment_seed`` together are the SGD noise.
    Lengths given in epochs are resolved to steps with ``steps_per_epoch``.
    """

    section = "train"

    batch_size: int = knob(60, "Training: global batch size.", check=positive)
    train_steps: int = knob(
        REQUIRED, "Training: length T in steps (or --train_epochs).", check=positive,
        epochs=Flag("train_epochs", None, "Training: length T in epochs (or --train_steps)."))
    steps_per_epoch: int = derived("Training: training examples // batch size.")
    init_seed: int = knob(0, "Seeds: initialization of W_0.")
    data_order_seed: int = knob(0, "Seeds: order of training examples.")
    augment_seed: int = knob(0, "Seeds: data augmentation draws.")
    rewind_steps: tuple[int, ...] = knob(
        (0,), "Checkpoints: steps k at which W_k is saved permanently for rewinding.",
        normalize=sorted_set,
        epochs=Flag("rewind_epochs", [],
                    "Checkpoints: --rewind_steps given in epochs (rounded to steps)."))

    @classmethod
    def from_flags(cls, flags: FlagReader, built: Mapping[str, Section]) -> TrainConfig:
        values = flags.fields(cls)
        spec = data_registry.get(cast(DataConfig, built["data"]).dataset)
        batch = values["batch_size"]
        if batch > spec.train_examples:
            raise FieldError("train.batch_size", f"={batch} exceeds the {spec.train_examples} "
                             f"training examples of {spec.name}")
        per_epoch = values["steps_per_epoch"] = spec.train_examples // batch if batch > 0 else 0
        epochs = flags.epochs(cls, "train_steps")
        if (values["train_steps"] is None) == (epochs is None):
            raise FieldError("train.train_steps", "is required, in steps or in epochs "
                             "(not both)")
        if epochs is not None:
            if not math.isfinite(epochs):
                raise FieldError("train.train_steps", f"must be finite, got {epochs} epochs")
            values["train_steps"] = epochs_to_steps(epochs, per_epoch)
        rewind_epochs = flags.epochs(cls, "rewind_steps")
        if rewind_epochs:
            if flags.given(cls, "rewind_steps"):
                raise FieldError("train.rewind_steps", "are both given; give one of them")
            values["rewind_steps"] = tuple(sorted({epochs_to_steps(e, per_epoch)
                                                   for e in rewind_epochs}))
        return cls(**values)

    def validate(self) -> None:
        for k in self.rewind_steps:
            if not 0 <= k <= self.train_steps:
                raise FieldError("train.rewind_steps", f"has {k}, outside [0, "
                                 f"{self.train_steps}] (the run's T)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerConfig(Section):
    """The update rule and the loss terms that shape gradients."""

    section = "optimizer"

    name: str = knob("adam", "Optimizer: update rule.", flag="optimizer", choices=OPTIMIZERS)
    momentum: float = knob(0.9, "Optimizer: momentum (momentum, rmsprop).", check=below_one)
    nesterov: bool = knob(False, "Optimizer: Nesterov momentum.")
    beta1: float = knob(0.9, "Optimizer: Adam beta_1.", flag="adam_beta1")
    beta2: float = knob(0.999, "Optimizer: Adam beta_2.", flag="adam_beta2")
    epsilon: float = knob(1e-7, "Optimizer: epsilon of Adam / RMSProp (Inception: 1.0).",
                          check=positive)
    rmsprop_decay: float = knob(0.9, "Optimizer: RMSProp decay (rho).")
    weight_decay: float = knob(
        0.0,
        "Optimizer: L2 coefficient; adds wd/2*||w||^2 over all trainable "
        "weights to the loss, i.e. grad += wd*w as in PyTorch SGD.", check=non_negative)
    label_smoothing: float = knob(0.0, "Optimizer: label smoothing.", check=below_one)
    grad_clip_norm: float = knob(
        0.0, "Optimizer: clip the global-batch gradient to this global norm (0: off).",
        check=at_least(0, " (0 disables)"))
    aux_loss_weight: float = knob(
        0.4,
        "Optimizer: weight of the auxiliary classifier's loss for models that "
        "have one (inception_v3); the head is ignored at evaluation.", check=non_negative)
    ema_decay: float = knob(
        0.0,
        "Optimizer: evaluate an exponential moving average of the weights "
        "with this decay (stock Inception: 0.9999; 0: off).", check=below_one)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScheduleConfig(Section):
    """The learning rate as a function of the step, resolved to steps.

    ``kind`` picks the base curve; a linear warmup from 0 over
    ``warmup_steps`` multiplies any of them.
    """

    section = "schedule"

    kind: str = knob("constant", "Schedule: base curve.", flag="lr_schedule",
                     choices=SCHEDULES)
    learning_rate: float = knob(
        1.2e-3, "Schedule: base learning rate.",
        check=must(lambda v: v > 0 and math.isfinite(v), "be a positive number"))
    drop_steps: tuple[int, ...] = knob(
        (), "Schedule: steps where 'step' drops.", flag="lr_drop_steps",
        check=must(lambda v: list(v) == sorted(v) and all(s > 0 for s in v),
                   "be positive and increasing"),
        epochs=Flag("lr_drop_epochs", [], "Schedule: epochs where 'step' drops."))
    drop_factor: float = knob(0.1, "Schedule: factor of each drop.", flag="lr_drop_factor",
                              check=must(lambda v: 0 < v <= 1, "be in (0, 1]"))
    warmup_steps: int = knob(
        0, "Schedule: linear warmup length.", check=non_negative,
        epochs=Flag("warmup_epochs", 0.0, "Schedule: linear warmup in epochs."))
    final_learning_rate: float = knob(
        0.0, "Schedule: learning rate reached at T by 'linear_decay'.", check=non_negative)
    decay_rate: float = knob(0.94, "Schedule: factor of each 'exponential' decay.",
                             flag="lr_decay_rate")
    decay_steps: int = derived(
        "Schedule: steps between 'exponential' decays (0 for the other curves).",
        epochs=Flag("lr_decay_epochs", 2.0, "Schedule: epochs between 'exponential' decays."))

    @classmethod
    def from_flags(cls, flags: FlagReader, built: Mapping[str, Section]) -> ScheduleConfig:
        values = flags.fields(cls)
        per_epoch = cast(TrainConfig, built["train"]).steps_per_epoch
        drop_epochs = flags.epochs(cls, "drop_steps")
        if drop_epochs:
            if values["drop_steps"]:
                raise FieldError("schedule.drop_steps", "are both given; give one of them")
            values["drop_steps"] = tuple(epochs_to_steps(e, per_epoch) for e in drop_epochs)
        warmup_epochs = flags.epochs(cls, "warmup_steps")
        if warmup_epochs < 0:
            raise FieldError("schedule.warmup_steps", f"must be >= 0, got {warmup_epochs} epochs")
        if values["warmup_steps"] and warmup_epochs:
            raise FieldError("schedule.warmup_steps", "are both given; give one of them")
        values["warmup_steps"] = values["warmup_steps"] or epochs_to_steps(warmup_epochs,
                                                                           per_epoch)
        values["decay_steps"] = 0
        if values["kind"] == "exponential":
            decay_epochs = flags.epochs(cls, "decay_steps")
            if not decay_epochs > 0:
                raise FieldError("schedule.decay_steps", f"must be positive, got {decay_epochs}")
            values["decay_steps"] = max(1, epochs_to_steps(decay_epochs, per_epoch))
        return cls(**values)

    def validate(self) -> None:
        if self.kind == "step" and not self.drop_steps:
            raise FieldError("schedule.drop_steps", "are needed by {schedule.kind}=step")
        if self.kind != "step" and self.drop_steps:
            raise FieldError("schedule.drop_steps", "only apply to {schedule.kind}=step, "
                             f"not {self.kind}")
        if self.kind == "exponential" and not 0 < self.decay_rate <= 1:
            raise FieldError("schedule.decay_rate", f"must be in (0, 1], got {self.decay_rate}")

    def validate_in(self, config: Any) -> None:
        if self.warmup_steps > config.train.train_steps:
            raise FieldError("schedule.warmup_steps", "must be at most the run's T "
                             f"({config.train.train_steps}), got {self.warmup_steps}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuntimeConfig(Section):
    """Where and how the recipe runs; never part of the run's identity."""

    section = "runtime"

    model_dir: str = knob(
        REQUIRED,
        "Experiment: directory (local or gs://) holding all state of the run; "
        "re-running with the same directory resumes.",
        check=lambda v: None if v else ("is required: the directory that will hold the "
                                        "run (re-running with the same directory resumes)"))
    data_dir: str | None = knob(
        None,
        "Data: TFDS data_dir (local or gs://) holding prepared datasets; "
        "defaults to TFDS's own (~/tensorflow_datasets).")
    tfds_manual_dir: str | None = knob(
        None,
        "Data: folder with the dataset's original archive files; TFDS "
        "prepares them into --data_dir without any download.")
    data_cache: bool = knob(
        True,
        "Data: keep a small dataset's decoded arrays in "
        "<data_dir>/tf_lottery_cache after the first decode and load them from "
        "there by memory map (same arrays; decoded again when the prepared "
        "dataset or the TFDS release changes). --nodata_cache decodes through "
        "TFDS every launch.")
    strategy: str = knob("default", "Runtime: tf.distribute.", choices=STRATEGIES)
    tpu: str | None = knob(None, "Runtime: TPU name for TPUClusterResolver, or 'local'.")
    cpu_devices: int = knob(
        1,
        "Runtime: split the host CPU into this many logical devices "
        "(lets 'mirrored' run on a CPU-only machine).", check=positive)
    steps_per_loop: int = knob(100, "Runtime: training steps per tf.function call.",
                               check=positive)
    checkpoint_every: int = knob(1000, "Runtime: steps between resume checkpoints.",
                                 check=positive)
    keep_checkpoints: int = knob(2, "Runtime: resume checkpoints kept on disk.",
                                 check=positive)
    eval_every: int = knob(
        0, "Runtime: steps between test/train evaluations (0: once per epoch).",
        check=at_least(0, " (0: once per epoch)"))
    log_every: int = knob(1000, "Runtime: steps between progress lines.", check=positive)
    deterministic: bool = knob(
        True,
        "Runtime: tf.config.experimental.enable_op_determinism() so that "
        "reruns and resumed runs are bit-identical.")
    jit_compile: bool = knob(
        False,
        "Runtime: compile each replica's training and evaluation step with XLA "
        "(tf.function(jit_compile=True)); the loops around them stay TensorFlow "
        "graphs. Losses agree with a run without it to float rounding, not bit for "
        "bit; reruns and resumes with it are bit-identical. No effect on TPUs (always "
        "XLA). Off by default: on a 2-core CPU it made LeNet 3-16 % faster but "
        "ResNet-20 3-4x slower, and compiling adds seconds to each launch "
        "(docs/benchmarks.md).")

    @classmethod
    def from_flags(cls, flags: FlagReader, built: Mapping[str, Section]) -> RuntimeConfig:
        values = flags.fields(cls)
        values["eval_every"] = (values["eval_every"]
                                or cast(TrainConfig, built["train"]).steps_per_epoch)
        return cls(**values)

    def validate(self) -> None:
        if self.strategy == "tpu" and not self.tpu:
            raise FieldError("runtime.strategy", "=tpu needs {runtime.tpu}=NAME (or "
                             "{runtime.tpu}=local on a TPU VM)")
        if self.jit_compile and self.strategy == "mirrored" and self.cpu_devices > 1:
            raise FieldError("runtime.jit_compile", " cannot run replicas on logical CPU "
                             "devices ({runtime.cpu_devices}>1): XLA would place every "
                             "replica's step on the first")


# Built in this order from flags (each may read those before it).
COMMON: tuple[type[Section], ...] = (
    ModelConfig, DataConfig, TrainConfig, OptimizerConfig, ScheduleConfig, RuntimeConfig)
