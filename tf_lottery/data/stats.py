"""Per-channel normalization statistics of a training split, computed once and kept beside the data.

A TFDS dataset outside the registry has no recorded constants (the registry's
CIFAR-10 keeps open_lth's), so its inputs are standardized with the mean and
standard deviation of each channel over its training split, pixels scaled to
[0, 1]. They are computed from the decoded arrays in one pass (float64
sums, so the result does not depend on chunking) and kept as JSON in the
array cache's folder of the dataset (``data.cache``):

    <data_dir>/tf_lottery_cache/<dataset>/<version>/stats/<split>.json

so later launches read them instead of passing over the data again. A
folder that cannot be written only costs the pass each launch.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tf_lottery import files
from tf_lottery.data import cache
from tf_lottery.errors import CorruptFileError

STATS_DIR = "stats"
_CHUNK = 4096


def stats_file(data_dir: str | None, dataset: str, version: str, split: str) -> str:
    """Where the statistics of one split are kept (the split's name hashed:
    slices such as ``train[:90%]`` hold characters object stores dislike)."""
    name = hashlib.sha256(split.encode()).hexdigest()[:16]
    return os.path.join(cache.tfds_data_dir(data_dir), cache.CACHE_DIR,
                        dataset.replace("/", "_"), version or "default", STATS_DIR,
                        f"{name}.json")


def compute(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel of uint8 images [N, H, W, C], in [0, 1] units."""
    channels = images.shape[-1]
    total = np.zeros(channels, np.float64)
    squares = np.zeros(channels, np.float64)
    for lo in range(0, len(images), _CHUNK):
        x = np.asarray(images[lo:lo + _CHUNK], np.float64).reshape(-1, channels) / 255.0
        total += x.sum(axis=0)
        squares += np.square(x).sum(axis=0)
    count = images.size // channels
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
    std = np.where(std > 0, std, 1.0)  # a constant channel is left unscaled
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def load_or_compute(data_dir: str | None, dataset: str, version: str, split: str,
                    images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The split's statistics, from their file when kept, else computed and kept."""
    path = stats_file(data_dir, dataset, version, split)
    try:
        kept = files.read_json(path)
    except CorruptFileError:
        kept = None
    if kept and kept.get("examples") == len(images):
        return tuple(kept["mean"]), tuple(kept["std"])
    mean, std = compute(images)
    try:
        tf.io.gfile.makedirs(os.path.dirname(path))
        files.write_json_atomic(path, {"dataset": dataset, "version": version, "split": split,
                                       "examples": len(images), "mean": mean, "std": std})
    except (OSError, tf.errors.OpError) as e:
        logging.warning("Could not keep %s's normalization statistics in %s (%s).",
                        dataset, path, str(e).splitlines()[0])
    return mean, std
