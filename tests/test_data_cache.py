"""The array cache: the arrays TFDS decodes, bit for bit; stale entries noticed; no TFDS import."""

import contextlib
import json
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.conftest import parse_config
from tf_lottery import main as main_lib
from tf_lottery.data import cache, registry, sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = registry.get("fashion_mnist")
ENTRY = os.path.join(cache.CACHE_DIR, "fashion_mnist", "3.0.1")


@pytest.fixture
def tfds_dir(tmp_path):
    """A --data_dir whose fashion_mnist looks prepared: a stand-in shard file,
    whose name, size and time the cache keys on (mock data are served instead)."""
    data_dir = tmp_path / "tfds"
    version_dir = data_dir / "fashion_mnist" / "3.0.1"
    version_dir.mkdir(parents=True)
    (version_dir / "fashion_mnist-train.tfrecord-00000-of-00001").write_bytes(b"shard")
    return data_dir


@contextlib.contextmanager
def mock_tfds(data_dir):
    with tfds.testing.mock_data(num_examples=60, data_dir=str(data_dir)), \
            mock.patch.object(sources, "is_prepared", lambda builder: True):
        yield


def load(data_dir, use_cache=True):
    return sources.load_in_memory(SPEC, str(data_dir), None, use_cache=use_cache)


@contextlib.contextmanager
def counting_decodes():
    calls = []
    decode = sources._split_arrays

    def counted(builder, split, *keys):
        calls.append(split)
        return decode(builder, split, *keys)

    with mock.patch.object(sources, "_split_arrays", counted):
        yield calls


def assert_same_arrays(a, b):
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype, field
        np.testing.assert_array_equal(x, y, err_msg=field)


def test_cached_arrays_are_the_decoded_ones_loaded_by_memory_map(tfds_dir):
    with mock_tfds(tfds_dir), counting_decodes() as decodes:
        direct = load(tfds_dir, use_cache=False)
        assert not (tfds_dir / cache.CACHE_DIR).exists()
        first = load(tfds_dir)  # decodes, then keeps the arrays
        assert len(decodes) == 4
        cached = load(tfds_dir)
        assert len(decodes) == 4  # nothing decoded
    assert_same_arrays(direct, first)
    assert_same_arrays(direct, cached)
    assert isinstance(cached.train_images, np.memmap)
    assert not cached.train_images.flags.writeable
    manifest = json.loads((tfds_dir / ENTRY / cache.MANIFEST).read_text())
    assert manifest["source_dir"] == os.path.join("fashion_mnist", "3.0.1")
    assert list(manifest["source_files"]) == ["fashion_mnist-train.tfrecord-00000-of-00001"]
    assert manifest["splits"]["train"]["images"]["shape"] == [60, 28, 28, 1]
    assert not [f for f in os.listdir(tfds_dir / ENTRY) if ".tmp-" in f]


def test_a_dataset_prepared_again_is_decoded_again(tfds_dir):
    with mock_tfds(tfds_dir):
        load(tfds_dir)
        shard = tfds_dir / "fashion_mnist" / "3.0.1" / "fashion_mnist-train.tfrecord-00000-of-00001"
        shard.write_bytes(b"shard, prepared again")
        with counting_decodes() as decodes:
            load(tfds_dir)  # stale: decoded, and the entry rewritten
            load(tfds_dir)  # current again
    assert len(decodes) == 2


def test_writing_an_entry_drops_other_versions(tfds_dir):
    old = tfds_dir / cache.CACHE_DIR / "fashion_mnist" / "1.0.0"
    old.mkdir(parents=True)
    (old / cache.MANIFEST).write_text("{}")
    with mock_tfds(tfds_dir):
        load(tfds_dir)
    assert sorted(os.listdir(tfds_dir / cache.CACHE_DIR / "fashion_mnist")) == ["3.0.1"]


def test_another_tfds_release_decodes_again(tfds_dir):
    with mock_tfds(tfds_dir):
        load(tfds_dir)
        with mock.patch.object(cache, "_tfds_release", lambda: "0.0.0"), \
                counting_decodes() as decodes:
            load(tfds_dir)
            load(tfds_dir)
    assert len(decodes) == 2


def test_a_damaged_entry_is_decoded_again_and_rewritten(tfds_dir):
    with mock_tfds(tfds_dir):
        good = load(tfds_dir)
        images = tfds_dir / ENTRY / "train.images.npy"
        images.write_bytes(images.read_bytes()[:1000])
        with counting_decodes() as decodes:
            again = load(tfds_dir)
        assert len(decodes) == 2
        assert_same_arrays(good, again)
        (tfds_dir / ENTRY / cache.MANIFEST).write_text("{garbled")
        with counting_decodes() as decodes:
            assert_same_arrays(good, load(tfds_dir))
        assert len(decodes) == 2
        assert isinstance(load(tfds_dir).train_images, np.memmap)


def test_data_without_prepared_files_are_never_cached(tmp_path):
    # Plain mock data: the builder's directory holds no files, so an entry
    # could never tell that it went stale.
    with tfds.testing.mock_data(num_examples=60), \
            mock.patch.object(sources, "is_prepared", lambda builder: True):
        load(tmp_path)
    assert not (tmp_path / cache.CACHE_DIR).exists()


def test_default_data_dir_is_tfds_own(monkeypatch, tmp_path):
    assert cache.tfds_data_dir(None) == os.path.abspath(
        tfds.core.constants.get_default_data_dir())
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert cache.tfds_data_dir(None) == tfds.core.constants.get_default_data_dir()
    assert cache.tfds_data_dir("gs://bucket/tfds/") == "gs://bucket/tfds"


def test_a_run_from_cached_arrays_ends_with_the_same_weights(tfds_dir, tmp_path):
    def run(name, *flags):
        config = parse_config(
            "--dataset=fashion_mnist", "--batch_size=10", "--train_steps=12",
            "--eval_batch_size=20", "--train_eval_examples=20", "--rewind_steps=0",
            f"--data_dir={tfds_dir}", *flags, model_dir=str(tmp_path / name))
        with mock_tfds(tfds_dir):
            results = main_lib.run(config)
        reader = tf.train.load_checkpoint(results.final_checkpoint)
        return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
                if n.startswith(("model/", "optimizer/"))}

    with counting_decodes() as decodes:
        from_tfds = run("tfds", "--nodata_cache")
        assert len(decodes) == 2 and not (tfds_dir / cache.CACHE_DIR).exists()
        run("fills_cache")
        assert len(decodes) == 4
        from_cache = run("cache")
        assert len(decodes) == 4
    assert from_tfds.keys() == from_cache.keys() and from_tfds
    for name, value in from_tfds.items():
        np.testing.assert_array_equal(value, from_cache[name], err_msg=name)


@pytest.mark.slow
def test_a_launch_reading_the_cache_never_imports_tfds(tfds_dir):
    with mock_tfds(tfds_dir):
        expected = load(tfds_dir)
    script = (
        "import sys; import tf_lottery.main; "
        "from tf_lottery.data import registry, sources; "
        f"d = sources.load_in_memory(registry.get('fashion_mnist'), {str(tfds_dir)!r}, None); "
        "assert 'tensorflow_datasets' not in sys.modules, 'TFDS was imported'; "
        "print(int(d.train_images.sum()), int(d.test_labels.sum()))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, text=True,
                         capture_output=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(int(expected.train_images.sum())),
                                  str(int(expected.test_labels.sum()))]
