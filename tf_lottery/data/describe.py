"""What TFDS's info says about a dataset outside the registry, read once per config.

``--dataset`` may name any TFDS image-classification builder (an ``Image``
and a ``ClassLabel`` feature): its classes, image shape, split sizes and
version come from the prepared builder's ``info`` and are recorded in the
run's config (``config.DataConfig``), so the report, ``export`` and
``tf_lottery.load`` read them back without the data. The same holds for a
registry dataset given other splits (``--train_split=train[:90%]``).

A dataset whose images fit in host memory (fixed shape, under
``IN_MEMORY_BYTES`` decoded) is held there like MNIST; a larger one, or one
whose images vary in size, streams from its shards like ImageNet (JPEG or
PNG images, cropped and resized by the ``--augment`` recipe to
``--image_size``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from tf_lottery.data import registry, sources
from tf_lottery.errors import ConfigError, FieldError

if TYPE_CHECKING:
    import tensorflow_datasets as tfds

IN_MEMORY_BYTES = 4 << 30  # decoded uint8 train + test images


@dataclasses.dataclass(frozen=True)
class TfdsFacts:
    """The derived fields of ``config.DataConfig`` for one dataset and its splits."""

    num_classes: int
    image_shape: tuple[int, ...]
    train_examples: int
    test_examples: int
    tfds_version: str
    features: tuple[str, str]
    streamed: bool
    image_format: str

    def fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _builder(name: str, data_dir: str | None, manual_dir: str | None
             ) -> tfds.core.DatasetBuilder:
    import tensorflow_datasets as tfds

    if name in registry.names():
        spec = registry.get(name)
    else:
        try:
            tfds.builder_cls(name.split("/")[0].split(":")[0])
        except Exception:  # DatasetNotFoundError, or a malformed name
            raise FieldError("data.dataset", f"={name} is neither a registry dataset "
                             f"({', '.join(registry.names())}) nor a TFDS builder "
                             "name") from None
        spec = registry.DatasetSpec(
            name=name, tfds_name=name, num_classes=0, image_shape=(0, 0, 0),
            train_examples=0, test_examples=0, manual_dir_hint=(
                f"prepare it first (tfds build {name} --data_dir=DIR, or "
                f"tfds.builder({name!r}).download_and_prepare()), or pass "
                "--tfds_manual_dir=FOLDER with its original files"))
    return sources.get_builder(spec, data_dir, manual_dir)


def _keys(builder: tfds.core.DatasetBuilder) -> tuple[str, str]:
    """(image, label) feature names: the supervised keys, else the only ones."""
    import tensorflow_datasets as tfds

    features = builder.info.features
    keys = builder.info.supervised_keys
    if isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        image, label = keys
    else:
        images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
        labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
        if len(images) != 1 or len(labels) != 1:
            raise FieldError("data.dataset", f"={builder.name} is not an image "
                             "classification dataset (one Image and one ClassLabel "
                             "feature)")
        image, label = images[0], ("label" if "label" in labels else labels[0])
    if not (isinstance(features[image], tfds.features.Image)
            and isinstance(features[label], tfds.features.ClassLabel)):
        raise FieldError("data.dataset", f"={builder.name} is not an image classification "
                         f"dataset ({image!r} is no Image or {label!r} no ClassLabel)")
    return image, label


def _split_size(builder: tfds.core.DatasetBuilder, split: str, field: str) -> int:
    known = builder.info.splits
    if not known:  # no recorded sizes (e.g. tfds.testing.mock_data): count
        try:
            ds = builder.as_dataset(split=split, shuffle_files=False)
        except Exception as e:
            raise FieldError(field, f"={split}: {str(e).splitlines()[0]}") from None
        return int(ds.reduce(0, lambda count, _: count + 1))
    try:
        return int(known[split].num_examples)
    except Exception as e:  # KeyError / ValueError for unknown or malformed splits
        raise FieldError(field, f"={split} is not a split of {builder.name} (has: "
                         f"{', '.join(known)}; slices like train[:90%] work too): "
                         f"{str(e).splitlines()[0]}") from None


def describe(name: str, train_split: str, test_split: str, data_dir: str | None,
             manual_dir: str | None) -> TfdsFacts:
    """Reads the facts of ``name`` from its prepared TFDS builder.

    Raises:
      ConfigError: (naming --dataset or a split flag) unknown or unprepared
        dataset, no image classification, unknown split, or a large dataset
        that cannot stream.
    """
    base = registry.get(name) if name in registry.names() else None
    builder = _builder(name, data_dir, manual_dir)
    image, label = _keys(builder)
    feature = builder.info.features[image]
    shape = tuple(int(d or 0) for d in feature.shape)
    train_split = train_split or (base.train_split if base else "train")
    test_split = test_split or (base.test_split if base else "test")
    sizes = (_split_size(builder, train_split, "data.train_split"),
             _split_size(builder, test_split, "data.test_split"))
    if base is not None:
        streamed = not base.in_memory
    else:
        pixels = shape[0] * shape[1] * shape[2] if 0 not in shape else 0
        streamed = not pixels or sum(sizes) * pixels > IN_MEMORY_BYTES
    image_format = getattr(feature, "encoding_format", None) or "png"  # TFDS's default
    if streamed and image_format not in ("jpeg", "png"):
        raise ConfigError(f"--dataset={name} streams from its shards (images of varying "
                          "size, or too large for host memory), which decodes JPEG or PNG "
                          f"images; its images are {image_format}")
    return TfdsFacts(
        num_classes=int(builder.info.features[label].num_classes), image_shape=shape,
        train_examples=sizes[0], test_examples=sizes[1], tfds_version=str(builder.version),
        features=(image, label), streamed=streamed, image_format=image_format)
