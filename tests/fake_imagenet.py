"""A tiny imagenet2012 in the layout of the original ILSVRC-2012 tars, prepared by TFDS.

``write_tars`` writes ``ILSVRC2012_img_train.tar`` (one inner tar of JPEGs
per synset, as the real archive) and ``ILSVRC2012_img_val.tar`` (flat JPEGs
named ``ILSVRC2012_val_%08d.JPEG``, labelled by TFDS from its validation
label list) into a folder; ``prepare`` runs TFDS's own ``imagenet2012``
builder on them, offline, in under a second: the TFRecord shards and
``dataset_info.json`` a real preparation writes, split into several shards
so that windows of shards can be tested. Images have random sizes, so
crops and resizes have work to do.
"""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

SYNSETS = ("n01440764", "n01443537", "n01484850")  # first three TFDS labels
# The first validation images' labels in TFDS's validation_labels.txt.
VAL_LABELS = ("n01751748", "n09193705", "n02105855", "n04263257", "n03125729")


def _jpeg(rng: np.random.Generator, label: int) -> bytes:
    """Uniform noise tinted by the class colour: high pixel variance, like
    photographs, so BatchNorm statistics are well conditioned."""
    h, w = rng.integers(40, 120, size=2)
    tint = np.array([(60 + 90 * label) % 256, (200 - 70 * label) % 256, 30 * label])
    noise = rng.integers(0, 256, size=(h, w, 3))
    image = (noise + tint) // 2
    return tf.io.encode_jpeg(image.astype(np.uint8), quality=90).numpy()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_tars(folder: str, per_class: int = 20, num_val: int = 5, seed: int = 0) -> None:
    """Writes the two ILSVRC-2012 archives TFDS's imagenet2012 builder reads."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    with tarfile.open(os.path.join(folder, "ILSVRC2012_img_train.tar"), "w") as train:
        for label, synset in enumerate(SYNSETS):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as per_synset:
                for i in range(per_class):
                    _add(per_synset, f"{synset}_{i}.JPEG", _jpeg(rng, label))
            _add(train, f"{synset}.tar", inner.getvalue())
    with tarfile.open(os.path.join(folder, "ILSVRC2012_img_val.tar"), "w") as val:
        for i in range(num_val):
            _add(val, f"ILSVRC2012_val_{i + 1:08d}.JPEG", _jpeg(rng, i % 3))


def prepare(data_dir: str, manual_dir: str, num_shards: int = 4) -> tfds.core.DatasetBuilder:
    """Writes the fake archives and prepares them with TFDS into ``data_dir``."""
    write_tars(manual_dir)
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir, num_shards=num_shards, try_download_gcs=False))
    return builder
