"""Datasets the recipes know about: TFDS name, splits, shapes and sizes.

Any other TFDS image-classification builder can be used too; its facts are
read from TFDS's info once (``data.describe``) and recorded in the run's
config (``config.DataConfig``).

Sizes are recorded here (not read from TFDS) so that epoch-based flags resolve
to steps before any data is read, and a run's config hash never depends on
whether the data happened to be prepared yet.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts about one dataset.

    Attributes:
      name: the name used by --dataset.
      tfds_name: the TFDS builder name.
      train_split / test_split: TFDS split names.
      num_classes: number of labels.
      image_shape: (height, width, channels) of the model input.
      train_examples: size of the training split (for epochs -> steps).
      test_examples: size of the test split.
      default_augment: augmentation the paper's recipe uses for this data.
      in_memory: whether the split fits in host memory (small datasets are
        indexed by step; large ones stream from TFDS files).
      manual_dir_hint: how a user provides the raw files offline.
      image_key / label_key: the TFDS features holding image and label.
      version: the TFDS version read ('' : TFDS's default).
      image_format: how the TFDS files store images ('jpeg', 'png'); a
        streamed dataset decodes only the crop of a JPEG.
    """

    name: str
    tfds_name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    train_examples: int
    test_examples: int
    train_split: str = "train"
    test_split: str = "test"
    default_augment: str = "none"
    in_memory: bool = True
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    manual_dir_hint: str = ""
    image_key: str = "image"
    label_key: str = "label"
    version: str = ""
    image_format: str = "jpeg"


_DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Adds a dataset; later issues register CIFAR-10 and ImageNet here."""
    if spec.name in _DATASETS:
        raise ValueError(f"dataset {spec.name!r} registered twice")
    _DATASETS[spec.name] = spec
    return spec


def get(name: str) -> DatasetSpec:
    """Returns the spec for ``name``; KeyError lists the known names."""
    try:
        return _DATASETS[name]
    except KeyError:
        raise KeyError(
            f"unknown dataset {name!r} (known: {', '.join(names())})"
        ) from None


def names() -> list[str]:
    return sorted(_DATASETS)


register(
    DatasetSpec(
        name="mnist",
        tfds_name="mnist",
        num_classes=10,
        image_shape=(28, 28, 1),
        train_examples=60000,
        test_examples=10000,
        manual_dir_hint=(
            "put the four MNIST IDX .gz files in a folder and pass "
            "--tfds_manual_dir=FOLDER"
        ),
    )
)
register(
    DatasetSpec(
        name="fashion_mnist",
        tfds_name="fashion_mnist",
        num_classes=10,
        image_shape=(28, 28, 1),
        train_examples=60000,
        test_examples=10000,
        manual_dir_hint=(
            "apt-get install dataset-fashion-mnist and pass "
            "--tfds_manual_dir=/usr/share/datasets/fashion-mnist"
        ),
    )
)
register(
    DatasetSpec(
        name="cifar10",
        tfds_name="cifar10",
        num_classes=10,
        image_shape=(32, 32, 3),
        train_examples=50000,
        test_examples=10000,
        default_augment="crop_flip",
        # The per-channel constants of the paper's framework (open_lth's
        # CIFAR-10 ``Normalize``), which are ImageNet's channel statistics;
        # CIFAR-10's own are mean (0.491, 0.482, 0.447), std (0.247, 0.244,
        # 0.262). Kept for fidelity to the paper's runs.
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        manual_dir_hint=(
            "put cifar-10-binary.tar.gz (the binary version from the CIFAR "
            "page; TFDS cannot read the python version) in a folder and pass "
            "--tfds_manual_dir=FOLDER, or point --data_dir at a TFDS data_dir "
            "where cifar10 is prepared"
        ),
    )
)
register(
    DatasetSpec(
        name="imagenet2012",
        tfds_name="imagenet2012",
        num_classes=1000,
        # Nominal: the model input is --image_size (default: the recipe's,
        # 224 for --augment=resnet, 299 for --augment=inception).
        image_shape=(224, 224, 3),
        train_examples=1281167,
        test_examples=50000,
        # The labelled held-out split; TFDS's "test" has no labels.
        test_split="validation",
        default_augment="resnet",
        in_memory=False,
        manual_dir_hint=(
            "put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (the original "
            "ILSVRC-2012 archives from image-net.org) in a folder and pass "
            "--tfds_manual_dir=FOLDER; TFDS prepares them into --data_dir once "
            "(hours; prepare on a large disk, then copy to gs:// for TPUs)"
        ),
    )
)
