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
    """Which network to build and how it computes.

    ``name`` is a name in ``tf_lottery.models.registry`` or the import path of
    a user's builder, ``package.module:function`` (in Python, the function
    itself may be given: it is replaced by its import path). A user's network
    is identified by that path and ``architecture``, a hash of the layers it
    builds for the data (filled in when the whole config is built), so an
    edited builder is noticed on resume. ``precision`` is a Keras
    mixed-precision policy (weights stay float32), ``cross_replica_bn``
    computes BatchNorm batch statistics over the global batch instead of each
    replica's slice."""

    section = "model"
    optional = ("architecture",)

    name: str = knob(
        "lenet_300_100",
        "Model: registry name, or a builder's import path package.module:function "
        "((num_classes, image_shape) -> tf_keras.Model giving logits).", flag="model")
    precision: str = knob(
        "float32",
        "Model: Keras dtype policy; mixed_bfloat16 for TPUs, mixed_float16 "
        "(with dynamic loss scaling) for GPUs. Weights, masks, the loss and "
        "the logits stay float32.", choices=PRECISIONS)
    cross_replica_bn: bool = knob(
        False,
        "Model: BatchNorm batch statistics over the global batch (synchronized "
        "across replicas) instead of each replica's slice.")
    architecture: str = derived(
        "Model: hash of the layers a builder given by import path builds ('' for "
        "registry models).", default="")

    def __post_init__(self) -> None:
        if callable(self.name):  # a builder function handed over in Python
            from tf_lottery.models import registry as model_registry

            object.__setattr__(self, "name", model_registry.given(self.name))
        super().__post_init__()

    @classmethod
    def from_flags(cls, flags: FlagReader, built: Mapping[str, Section]) -> ModelConfig:
        from tf_lottery.models import registry as model_registry

        model_registry.resolve(flags.field(cls, "name"))  # known, or importable
        return cls(**flags.fields(cls))

    def validate_in(self, config: Any) -> None:
        if self.precision == "mixed_float16" and config.runtime.strategy == "tpu":
            raise FieldError("model.precision", "=mixed_float16 is for GPUs; use "
                             "mixed_bfloat16 with {runtime.strategy}=tpu")

    def with_architecture(self, data: DataConfig) -> ModelConfig:
        """This section with ``architecture`` filled in for a builder given by
        import path (built once, in a graph of its own); unchanged otherwise."""
        from tf_lottery.models import registry as model_registry

        if self.architecture or not model_registry.is_import_path(self.name):
            return self
        spec = data.spec()
        found = model_registry.architecture(self.name, spec.num_classes, spec.image_shape)
        return dataclasses.replace(self, architecture=found.digest)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig(Section):
    """Which data, how it is augmented, and how much is used for train error.

    Built from flags, ``augment`` 'default' becomes the dataset's own recipe,
    and ``image_size`` and ``shuffle_window_shards`` are 0 for in-memory
    datasets (they apply to streamed ones, see data/streaming.py).

    ``dataset`` is a registry name (``data.registry``) or any TFDS
    image-classification builder. For the latter, and for a registry dataset
    given other splits, what TFDS's info says (classes, image shape, split
    sizes, version, feature keys, whether it streams) is recorded in the
    derived fields, so that the recipe and everything read back from
    config.json (report, export, ``tf_lottery.load``) never needs the data.
    """

    section = "data"
    optional = ("train_split", "test_split", "num_classes", "image_shape",
                "train_examples", "test_examples", "tfds_version", "features", "streamed",
                "image_format")

    dataset: str = knob("fashion_mnist", "Data: dataset name (a registry dataset or any "
                        "TFDS image-classification builder, e.g. cifar100).")
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
    train_split: str = knob(
        "", "Data: TFDS split to train on, e.g. 'train[:90%]' (default: the dataset's "
        "training split).")
    test_split: str = knob(
        "", "Data: TFDS split whose error is the test error, e.g. 'train[90%:]' "
        "(default: the dataset's test split).")
    num_classes: int = derived("Data: classes (from TFDS's info).", default=0)
    image_shape: tuple[int, ...] = derived(
        "Data: stored image shape (from TFDS's info; 0: varies).", default=())
    train_examples: int = derived("Data: size of the training split.", default=0)
    test_examples: int = derived("Data: size of the test split.", default=0)
    tfds_version: str = derived("Data: the TFDS dataset version read.", default="")
    features: tuple[str, ...] = derived(
        "Data: the (image, label) feature names of the TFDS examples.", default=())
    streamed: bool = derived(
        "Data: streamed from the prepared shards (too large for host memory, or "
        "images of varying size) instead of held in host memory.", default=False)
    image_format: str = derived(
        "Data: how TFDS stores the images (jpeg, png).", default="")

    @classmethod
    def from_flags(cls, flags: FlagReader, built: Mapping[str, Section]) -> DataConfig:
        values = flags.fields(cls)
        name = values["dataset"]
        if (name not in data_registry.names() or values["train_split"]
                or values["test_split"]):
            from tf_lottery.data import describe

            values.update(describe.describe(
                name, values["train_split"], values["test_split"],
                flags.field(RuntimeConfig, "data_dir"),
                flags.field(RuntimeConfig, "tfds_manual_dir")).fields())
        spec = dataset_spec(values)
        if values["augment"] == "default":
            values["augment"] = spec.default_augment
        if values["train_eval_examples"] >= 0:
            values["train_eval_examples"] = min(values["train_eval_examples"],
                                                spec.train_examples)
        values.update(_streaming(spec, values))
        return cls(**values)

    def spec(self) -> data_registry.DatasetSpec:
        """The dataset as the pipeline and the model see it; reads no data."""
        spec = dataset_spec(dataclasses.asdict(self))
        if not spec.in_memory and self.image_size:
            spec = dataclasses.replace(spec, image_shape=(self.image_size, self.image_size, 3))
        return spec


def dataset_spec(values: Mapping[str, Any]) -> data_registry.DatasetSpec:
    """The ``DatasetSpec`` of a data section's fields: the registry's, with
    what TFDS's info said (derived fields) where it was read."""
    name = values["dataset"]
    if not values.get("num_classes"):
        if name not in data_registry.names():
            raise FieldError("data.dataset", f"={name} is not a registry dataset "
                             f"(known: {', '.join(data_registry.names())}) and its TFDS "
                             "info is not recorded; build the config with "
                             "tf_lottery.make_config or from flags")
        return data_registry.get(name)
    streamed = bool(values.get("streamed"))
    facts: dict[str, Any] = {
        "num_classes": values["num_classes"], "image_shape": tuple(values["image_shape"]),
        "train_examples": values["train_examples"], "test_examples": values["test_examples"],
        "train_split": values.get("train_split") or "train",
        "test_split": values.get("test_split") or "test",
        "image_key": values["features"][0], "label_key": values["features"][1],
        "version": values.get("tfds_version", ""),
        "image_format": values.get("image_format") or "jpeg"}
    if name in data_registry.names():
        base = data_registry.get(name)
        facts["train_split"] = values.get("train_split") or base.train_split
        facts["test_split"] = values.get("test_split") or base.test_split
        return dataclasses.replace(base, **facts)
    return data_registry.DatasetSpec(
        name=name, tfds_name=name, in_memory=not streamed,
        default_augment="resnet" if streamed else "none", **facts)


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
                             f"(imagenet2012, large TFDS datasets), not {spec.name}")
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
        spec = cast(DataConfig, built["data"]).spec()
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
    allow_numerics_change: bool = knob(
        False,
        "Runtime: resume a run although this machine's CPU numerics differ from "
        "those its checkpoints were computed with (numerics.json; see "
        "TF_LOTTERY_CPU_NUMERICS in docs/numerics.md). The run continues, no longer "
        "bit-reproducible, and numerics.json keeps the change; without it such a "
        "resume is refused.")
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
