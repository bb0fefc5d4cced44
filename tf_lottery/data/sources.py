"""Reads a dataset's splits through TFDS, preparing it offline if asked.

Nothing here downloads: an unprepared dataset is prepared only from
``--tfds_manual_dir``; otherwise the user gets one line saying how to
provide the data. A small dataset's decoded arrays are kept in --data_dir
(``data.cache``), so later launches neither decode nor import TFDS (TFDS is
imported only where it is used).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from absl import logging

from tf_lottery import startup
from tf_lottery.data import cache
from tf_lottery.data.registry import DatasetSpec
from tf_lottery.errors import ConfigError

if TYPE_CHECKING:
    import tensorflow_datasets as tfds

# Debian's dataset-fashion-mnist ships the upstream IDX files re-gzipped
# without the original file names (24 bytes shorter each), so TFDS's
# registered checksums reject them although the decompressed data are the
# same. These are the Debian files' checksums (package 0.0~git20200523).
_DEBIAN_FASHION_MNIST = {
    "train-images-idx3-ubyte.gz": (
        26421856, "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
    "train-labels-idx1-ubyte.gz": (
        29491, "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
    "t10k-images-idx3-ubyte.gz": (
        4422079, "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
    "t10k-labels-idx1-ubyte.gz": (
        5125, "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
}


@dataclasses.dataclass(frozen=True)
class InMemoryData:
    """The splits of a small dataset as host arrays (uint8 images, int labels)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether TFDS has this dataset's files in its data_dir."""
    return builder.is_prepared()


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_debian_fashion_mnist(manual_dir: str) -> bool:
    for name, (size, _digest) in _DEBIAN_FASHION_MNIST.items():
        path = os.path.join(manual_dir, name)
        if not tf.io.gfile.exists(path) or tf.io.gfile.stat(path).length != size:
            return False
    return all(
        _sha256(os.path.join(manual_dir, n)) == d
        for n, (_, d) in _DEBIAN_FASHION_MNIST.items()
    )


def _debian_fashion_mnist_builder(data_dir: str | None) -> tfds.core.DatasetBuilder:
    """TFDS's fashion_mnist builder, accepting the Debian archives' checksums."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import mnist

    base = mnist.FashionMNIST
    infos = dict(base.url_infos or {})
    for url, _info in list(infos.items()):
        name = url.rsplit("/", 1)[-1]
        if name in _DEBIAN_FASHION_MNIST:
            size, digest = _DEBIAN_FASHION_MNIST[name]
            infos[url] = tfds.core.download.checksums.UrlInfo(
                size=size, checksum=digest, filename=name)

    # TFDS reads skip_registration in __init_subclass__, which its types do not declare.
    class DebianFashionMNIST(mnist.FashionMNIST, skip_registration=True):  # type: ignore[call-arg]
        name = "fashion_mnist"
        url_infos = infos

    return DebianFashionMNIST(data_dir=data_dir)


def _manual_files(builder_cls: type) -> dict[str, tuple[int, str]]:
    """File name -> (size, sha256) of each original file TFDS reads."""
    infos = getattr(builder_cls, "url_infos", None) or {}
    return {info.filename or url.rsplit("/", 1)[-1]: (int(info.size), info.checksum)
            for url, info in infos.items()}


def _missing_manual_files(builder: tfds.core.DatasetBuilder, manual_dir: str) -> list[str]:
    return [n for n in _manual_files(type(builder))
            if not tf.io.gfile.exists(os.path.join(manual_dir, n))]


def _damaged_manual_files(spec: DatasetSpec, manual_dir: str) -> list[str]:
    """The manual files that match no known copy, each with why.

    Known copies are TFDS's registered originals and, for Fashion-MNIST,
    Debian's re-gzipped files. Called once preparing has failed, to name the
    file at fault: TFDS names the first file whose checksum it rejects,
    which for a Debian folder is an intact file.
    """
    import tensorflow_datasets as tfds

    copies: dict[str, list[tuple[int, str]]] = {}
    stock = _manual_files(tfds.builder_cls(spec.tfds_name))
    extra = _DEBIAN_FASHION_MNIST if spec.tfds_name == "fashion_mnist" else {}
    for table in (stock, extra):
        for name, copy in table.items():
            copies.setdefault(name, []).append(copy)
    damaged = []
    for name, known in copies.items():
        path = os.path.join(manual_dir, name)
        if not tf.io.gfile.exists(path):
            continue
        size = tf.io.gfile.stat(path).length
        sizes = sorted({s for s, _ in known})
        if size not in sizes:
            damaged.append(f"{name} is damaged ({size} bytes; an intact copy has "
                           f"{' or '.join(str(s) for s in sizes)})")
        elif _sha256(path) not in {d for s, d in known if s == size}:
            damaged.append(f"{name} is damaged (its checksum matches no known copy)")
    return damaged


def get_builder(
    spec: DatasetSpec, data_dir: str | None, manual_dir: str | None
) -> tfds.core.DatasetBuilder:
    """Returns a prepared TFDS builder, preparing from ``manual_dir`` if needed.

    Raises:
      ConfigError: the data are not prepared and cannot be prepared offline.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    except Exception as e:  # TFDS raises several types for unknown / bad dirs.
        raise ConfigError(f"TFDS cannot open {spec.tfds_name} in --data_dir="
                          f"{data_dir}: {e}".splitlines()[0]) from None
    if is_prepared(builder):
        return builder
    where = data_dir or tfds.core.constants.DATA_DIR
    if not manual_dir:
        raise ConfigError(
            f"dataset {spec.name} is not prepared in --data_dir={where}; "
            f"to prepare it offline, {spec.manual_dir_hint or 'pass --tfds_manual_dir'}"
        )
    if not tf.io.gfile.isdir(manual_dir):
        raise ConfigError(f"--tfds_manual_dir={manual_dir} is not a directory; "
                          f"{spec.manual_dir_hint}")
    if spec.tfds_name == "fashion_mnist" and _is_debian_fashion_mnist(manual_dir):
        builder = _debian_fashion_mnist_builder(data_dir)
    missing = _missing_manual_files(builder, manual_dir)
    if missing:
        raise ConfigError(
            f"--tfds_manual_dir={manual_dir} lacks {', '.join(missing)} needed to "
            f"prepare {spec.name}; {spec.manual_dir_hint}"
        )
    logging.info("Preparing %s from %s into %s", spec.name, manual_dir, where)
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
        )
    except Exception as e:
        damaged = _damaged_manual_files(spec, manual_dir)
        if damaged:
            raise ConfigError(
                f"--tfds_manual_dir={manual_dir}: {'; '.join(damaged)}; replace it with an "
                f"intact copy ({spec.manual_dir_hint or 'the original file'})") from None
        raise ConfigError(
            f"TFDS could not prepare {spec.name} from --tfds_manual_dir={manual_dir}: "
            + str(e).splitlines()[0]
        ) from None
    return builder


def _split_arrays(builder: tfds.core.DatasetBuilder, split: str, image_key: str = "image",
                  label_key: str = "label") -> tuple[np.ndarray, np.ndarray]:
    # Batched reads (not batch_size=-1): same arrays, and also works under
    # tfds.testing.mock_data, whose generator has no known size.
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, batch_size=8192, shuffle_files=False)
    parts = [(p[image_key], p[label_key]) for p in tfds.as_numpy(ds)]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images.astype(np.uint8), labels.astype(np.int32)


def load_in_memory(
    spec: DatasetSpec, data_dir: str | None, manual_dir: str | None, use_cache: bool = True
) -> InMemoryData:
    """Loads train and test splits of a small dataset into host memory.

    TFDS reads the split in its fixed on-disk order (no file shuffling), so
    example i of the train split is the same for every run; all randomness in
    ordering comes from ``data_order_seed`` in the pipeline. With
    ``use_cache`` the arrays come from ``data.cache`` when it holds them
    (read-only memory maps of the same bytes), and are put there after a
    decode.
    """
    splits = (spec.train_split, spec.test_split)
    arrays = cache.load(data_dir, spec.name, splits) if use_cache else None
    startup.note("data_source", "cache" if arrays else "tfds")
    if arrays is None:
        builder = get_builder(spec, data_dir, manual_dir)
        arrays = {split: _split_arrays(builder, split, spec.image_key, spec.label_key)
                  for split in splits}
        if use_cache:
            cache.save(data_dir, spec.name, spec.tfds_name, str(builder.version),
                       os.fspath(builder.data_dir), arrays)
    (train_images, train_labels), (test_images, test_labels) = (arrays[s] for s in splits)
    expect = tuple(spec.image_shape)
    if tuple(train_images.shape[1:]) != expect or tuple(test_images.shape[1:]) != expect:
        raise ConfigError(f"{spec.name} images have shape {train_images.shape[1:]}, "
                          f"expected {expect}; check --data_dir")
    return InMemoryData(train_images, train_labels, test_images, test_labels)
