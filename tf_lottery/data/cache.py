"""A small dataset's decoded arrays, kept once in --data_dir and loaded by memory map.

Decoding Fashion-MNIST's 70,000 PNGs from TFDS's TFRecords into NumPy takes
about 7 s on a 2-core CPU; every launch (each child, level and pair once
experiments run as separate tasks) paid it again. The first launch that
decodes a split through TFDS saves its arrays as ``.npy`` files:

    <data_dir>/tf_lottery_cache/<dataset>/<version>/<split>.images.npy
                                                   <split>.labels.npy
                                                   manifest.json

and later launches ``np.load(mmap_mode="r")`` them in milliseconds, without
importing TFDS. The arrays are exactly those TFDS decodes (same bytes, same
order), so batches and results are the same either way.

The manifest, written last (it commits the entry), names what the arrays were
decoded from: the TFDS package version and the name, size and modification
time of every file of the prepared dataset (``<data_dir>/<name>/<version>/``).
An entry is used only while all of that still holds: a dataset prepared
again, replaced, deleted, or read by another TFDS release is decoded through
TFDS again and its entry rewritten (entries of other dataset versions are then
deleted: at most one per dataset is current). Each array's SHA-256 is
recorded too, for whoever wants to check the files by hand.

Everything is written to a temporary name and renamed, so a killed or
concurrent writer leaves either no entry or a whole one. A cache that cannot
be written (a read-only --data_dir) only costs the decode each launch.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from importlib import metadata

import numpy as np
import tensorflow as tf
from absl import logging

from tf_lottery import files
from tf_lottery.errors import CorruptFileError

CACHE_DIR = "tf_lottery_cache"
MANIFEST = "manifest.json"
SCHEMA = 1


def tfds_data_dir(data_dir: str | None) -> str:
    """The data_dir TFDS uses for ``data_dir`` (its default when None).

    Mirrors ``tfds.core.constants.get_default_data_dir`` so that a cached
    dataset is found without importing TFDS.
    """
    if data_dir is None:
        data_dir = os.environ.get(
            "TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))
    if "://" in data_dir:
        return data_dir.rstrip("/")
    return os.path.abspath(os.path.expanduser(data_dir))


def _tfds_release() -> str:
    try:
        return metadata.version("tensorflow-datasets")
    except metadata.PackageNotFoundError:
        return "unknown"


def _source_files(directory: str) -> dict[str, list[int]]:
    """Name -> [size, mtime_ns] of each file of a prepared TFDS dataset."""
    if not tf.io.gfile.isdir(directory):
        return {}
    out = {}
    for name in sorted(tf.io.gfile.listdir(directory)):
        path = os.path.join(directory, name)
        if tf.io.gfile.isdir(path):
            continue
        if "://" in path:
            stat = tf.io.gfile.stat(path)
            out[name] = [int(stat.length), int(stat.mtime_nsec)]
        else:  # nanoseconds (gfile's local stat keeps whole seconds)
            stat = os.stat(path)
            out[name] = [stat.st_size, stat.st_mtime_ns]
    return out


def _entry_dir(data_dir: str | None, dataset: str, version: str) -> str:
    return os.path.join(tfds_data_dir(data_dir), CACHE_DIR, dataset, version)


def _array_file(split: str, part: str) -> str:
    return f"{split}.{part}.npy"


def _is_current(manifest: dict, root: str, splits: tuple[str, ...]) -> bool:
    """Whether ``manifest`` describes arrays decoded from the dataset TFDS
    would read today, with this TFDS release."""
    return (manifest.get("schema") == SCHEMA
            and manifest.get("tfds_release") == _tfds_release()
            and tuple(sorted(manifest.get("splits", {}))) == tuple(sorted(splits))
            and bool(manifest.get("source_files"))
            and manifest["source_files"] == _source_files(
                os.path.join(root, manifest["source_dir"])))


def _load_array(path: str, expect: dict) -> np.ndarray:
    if "://" in path:  # no memory map off the local disk: read it whole
        with tf.io.gfile.GFile(path, "rb") as f:
            array = np.load(io.BytesIO(f.read()), allow_pickle=False)
    else:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    if list(array.shape) != expect["shape"] or str(array.dtype) != expect["dtype"]:
        raise ValueError(f"{path} holds {array.dtype}{list(array.shape)}, its manifest "
                         f"says {expect['dtype']}{expect['shape']}")
    return array


def _load_split(entry: str, split: str, described: dict) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (_load_array(os.path.join(entry, _array_file(split, part)),
                                  described[part]) for part in ("images", "labels"))
    return images, labels


def load(data_dir: str | None, dataset: str,
         splits: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """{split: (images, labels)} from the cache, or None when it has no
    current entry for ``dataset`` (then decode through TFDS and ``save``)."""
    root = tfds_data_dir(data_dir)
    base = os.path.join(root, CACHE_DIR, dataset)
    try:
        versions = tf.io.gfile.listdir(base)
    except tf.errors.NotFoundError:
        return None
    for version in (v.rstrip("/") for v in versions):
        entry = os.path.join(base, version)
        try:
            manifest = files.read_json(os.path.join(entry, MANIFEST))
            if not manifest or not _is_current(manifest, root, splits):
                continue
            return {split: _load_split(entry, split, manifest["splits"][split])
                    for split in splits}
        except (CorruptFileError, ValueError, KeyError, TypeError, OSError,
                tf.errors.OpError) as e:
            logging.warning("Ignoring the damaged array cache %s (%s); decoding "
                            "through TFDS instead.", entry, str(e).splitlines()[0])
    return None


def _save_array(path: str, array: np.ndarray) -> dict:
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return {"shape": list(array.shape), "dtype": str(array.dtype),
            "sha256": hashlib.sha256(array.tobytes()).hexdigest()}


def save(data_dir: str | None, dataset: str, tfds_name: str, version: str,
         source_dir: str, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> bool:
    """Keeps ``arrays`` ({split: (images, labels)}, decoded by TFDS from the
    prepared dataset in ``source_dir``) for later launches; whether it did.

    Nothing is kept when ``source_dir`` holds no files (e.g. under
    ``tfds.testing.mock_data``): the entry could not tell when it is stale.
    """
    root = tfds_data_dir(data_dir)
    source_files = _source_files(source_dir)
    if not source_files:
        return False
    entry = _entry_dir(data_dir, dataset, version)
    try:
        tf.io.gfile.makedirs(entry)
        splits = {split: {part: _save_array(os.path.join(entry, _array_file(split, part)),
                                            array)
                          for part, array in zip(("images", "labels"), pair, strict=True)}
                  for split, pair in arrays.items()}
        files.write_json_atomic(os.path.join(entry, MANIFEST), {
            "schema": SCHEMA, "dataset": dataset, "tfds_name": tfds_name,
            "version": version, "tfds_release": _tfds_release(),
            "source_dir": os.path.relpath(source_dir, root), "source_files": source_files,
            "splits": splits})
    except (OSError, tf.errors.OpError) as e:
        logging.warning("Could not keep %s's arrays in %s (%s); each launch decodes "
                        "them again.", dataset, entry, str(e).splitlines()[0])
        return False
    logging.info("Kept %s's decoded arrays in %s for later launches.", dataset, entry)
    _drop_other_versions(os.path.dirname(entry), version)
    return True


def _drop_other_versions(base: str, version: str) -> None:
    """Deletes the entries of other dataset versions: TFDS now reads ``version``,
    so at most one entry per dataset is current."""
    for other in tf.io.gfile.listdir(base):
        if other.rstrip("/") != version:
            try:
                tf.io.gfile.rmtree(os.path.join(base, other.rstrip("/")))
            except tf.errors.OpError as e:
                logging.warning("Could not delete the stale array cache %s (%s).",
                                os.path.join(base, other), str(e).splitlines()[0])
