"""The Python API (load, export) and ``python -m tf_lottery.export``: a ticket taken away."""

import contextlib
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tf_lottery
from tf_lottery import export
from tf_lottery.core import layout, records
from tf_lottery.data import cache, sources
from tf_lottery.errors import ConfigError
from tf_lottery.pruning import masks as masks_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(dataset="mnist", batch_size=10, eval_batch_size=20, train_eval_examples=20,
            steps_per_loop=3, log_every=1000)

# Run in a fresh interpreter that never imports tf_lottery: loads both
# exports with plain TensorFlow / tf_keras and prints their logits.
LOADER = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf, tf_keras
x = np.load(sys.argv[1])
keras_model = tf_keras.models.load_model(sys.argv[2])
saved = tf.saved_model.load(sys.argv[3])
serve = saved.signatures["serving_default"]
(out,) = serve(tf.constant(x)).values()
kernels = {w.name: w.numpy() for w in keras_model.weights if "kernel" in w.name}
np.savez(sys.argv[4], keras=keras_model(x, training=False).numpy(), saved=out.numpy(),
         **{k.replace("/", "|"): v for k, v in kernels.items()})
assert "tf_lottery" not in sys.modules
"""


@contextlib.contextmanager
def mock_mnist():
    """TFDS's mock MNIST (deterministic: the same examples each time), as prepared."""
    with tfds.testing.mock_data(num_examples=40), \
            mock.patch.object(sources, "is_prepared", lambda builder: True), \
            mock.patch.object(cache, "load", lambda *args: None):
        yield


def _imp(model_dir, **settings):
    with mock_mnist():
        config = tf_lottery.make_config(
            "imp", model_dir=model_dir, model="tests.user_models:small_cnn", train_steps=6,
            rewind_steps=[0, 3], rewind_step=3, imp_levels=1, prune_fraction=0.5, **TINY,
            **settings)
        tf_lottery.run(config)
    return model_dir


@pytest.fixture(scope="module")
def imp_run(tmp_path_factory):
    """A finished 1-level IMP run of a user CNN on mock MNIST."""
    return _imp(str(tmp_path_factory.mktemp("imp")))


@pytest.fixture(scope="module")
def ema_imp_run(tmp_path_factory):
    """The same run, its metrics computed on a moving average (--ema_decay)."""
    return _imp(str(tmp_path_factory.mktemp("ema")), ema_decay=0.6)


def test_load_reads_the_config_and_typed_records(imp_run):
    run = tf_lottery.load(imp_run)
    assert run.complete and isinstance(run.results, records.ImpResults)
    assert run.config.model.name == "tests.user_models:small_cnn"
    assert [level.level for level in run.results.levels] == [0, 1]


def _kernels_are_masked(kernels, mask):
    for name, m in mask.items():
        layer, weight = name.split("/")
        kernel = next(v for k, v in kernels.items() if k.startswith(f"{layer}/{weight}"))
        assert np.all(kernel[m == 0] == 0) and np.any(kernel[m == 1] != 0), name
        assert 0 < m.mean() < 1, name


def test_export_gives_the_checkpoints_logits_with_pruned_weights_zero(imp_run, tmp_path):
    import tensorflow as tf
    import tf_keras

    run = tf_lottery.load(imp_run)
    keras_file = run.export(str(tmp_path / "ticket.keras"))
    saved = tf_lottery.export_ticket(imp_run, str(tmp_path / "ticket"), level=1,
                                     format="saved_model")
    assert keras_file.checkpoint == saved.checkpoint == layout.final_checkpoint(
        layout.level_dir(imp_run, 1))
    assert keras_file.mask_path == str(tmp_path / "ticket.mask.npz")
    mask = masks_lib.load(keras_file.mask_path)
    assert set(mask) == {"conv/kernel", "depthwise/depthwise_kernel", "hidden/kernel",
                         "logits/kernel"}
    x = np.random.default_rng(0).uniform(0, 1, (5, 28, 28, 1)).astype(np.float32)
    model, _ = export.restored_model(run.config, keras_file.checkpoint)
    expect = model(x, training=False).numpy()
    plain = tf_keras.models.load_model(keras_file.path)
    assert not any("prune" in layer.name for layer in plain.layers)
    np.testing.assert_array_equal(plain(x, training=False).numpy(), expect)
    serve = tf.saved_model.load(saved.path).signatures["serving_default"]
    (logits,) = serve(tf.constant(x)).values()
    np.testing.assert_allclose(logits.numpy(), expect, rtol=1e-6, atol=1e-6)
    _kernels_are_masked({w.name: w.numpy() for w in plain.weights}, mask)


@pytest.mark.slow
def test_exports_load_in_a_process_that_never_imports_tf_lottery(imp_run, tmp_path):
    keras_file = tf_lottery.export_ticket(imp_run, str(tmp_path / "ticket.keras"))
    cli = subprocess.run(
        [sys.executable, "-m", "tf_lottery.export", f"--model_dir={imp_run}", "--level=1",
         "--format=saved_model", f"--out={tmp_path / 'ticket'}"],
        cwd=ROOT, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "density 50" in cli.stdout and (tmp_path / "ticket.mask.npz").exists()
    x = np.random.default_rng(0).uniform(0, 1, (5, 28, 28, 1)).astype(np.float32)
    model, _ = export.restored_model(tf_lottery.load(imp_run).config, keras_file.checkpoint)
    expect = model(x, training=False).numpy()
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    loaded = subprocess.run(
        [sys.executable, "-c", LOADER, str(tmp_path / "x.npy"), keras_file.path,
         str(tmp_path / "ticket"), str(out)], cwd=str(tmp_path), env=env,
        capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    got = np.load(out)
    np.testing.assert_allclose(got["keras"], expect, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got["saved"], expect, rtol=1e-6, atol=1e-6)
    _kernels_are_masked({k.replace("|", "/"): got[k] for k in got.files},
                        masks_lib.load(keras_file.mask_path))


def test_the_rewind_point_is_exported_with_the_levels_mask(imp_run, tmp_path):
    done = tf_lottery.export_ticket(imp_run, str(tmp_path / "w_k.keras"), level=1,
                                    which="rewind")
    assert done.checkpoint == layout.rewind_checkpoint(layout.level_dir(imp_run, 1), 3)
    assert done.density == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("kwargs, says", [
    (dict(level=5), "--level=5 is outside the run's levels 0..1"),
    (dict(format="keras", out="ticket"), "must end with .keras for --format=keras"),
    (dict(format="saved_model"), "--format=saved_model writes a folder"),
    (dict(which="rewind", level=0, rewind_step=2), "holds no finished checkpoint"),
    (dict(weights="average"), "--weights=average is not known (known: evaluated, trained)"),
    (dict(which="rewind", weights="evaluated"),
     "--weights=evaluated applies to --which=final only"),
])
def test_export_errors_are_one_line(imp_run, tmp_path, kwargs, says):
    out = str(tmp_path / kwargs.pop("out", "t.keras"))
    with pytest.raises(ConfigError) as e:
        tf_lottery.export_ticket(imp_run, out, **kwargs)
    assert says in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("args, says", [
    (["--level=5"], "--level=5 is outside the run's levels 0..1"),
    (["--which=rewind", "--weights=evaluated"],
     "--weights=evaluated applies to --which=final only: the rewind point W_k is "
     "restarted from with its trained weights (use --weights=trained or leave "
     "--weights out)"),
], ids=["level", "weights"])
def test_the_export_command_reports_an_error_in_one_line(imp_run, tmp_path, args, says):
    out = tmp_path / "out"
    cli = subprocess.run([sys.executable, "-m", "tf_lottery.export",
                          f"--model_dir={imp_run}", *args, f"--out={out}/t.keras"],
                         cwd=ROOT, capture_output=True, text=True)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    lines = [line for line in cli.stderr.splitlines() if "tf_lottery.export" in line]
    assert lines == [f"tf_lottery.export: error: {says}"]
    assert not out.exists()


def _logits(path, x):
    import tf_keras

    return tf_keras.models.load_model(path)(x, training=False).numpy()


def _weights(path):
    import tf_keras

    return [w.numpy() for w in tf_keras.models.load_model(path).weights]


def test_the_default_export_is_the_network_results_json_measured(ema_imp_run, tmp_path):
    """With --ema_decay the exported level is its moving average: the
    trainer's evaluated weights, giving results.json's test accuracy."""
    import tensorflow as tf

    from tf_lottery import compose
    from tf_lottery.pruning import wrappers
    from tf_lottery.training.trainer import Trainer

    run = tf_lottery.load(ema_imp_run)
    done = run.export(str(tmp_path / "ticket.keras"), level=1)
    assert (done.weights, done.averaged) == ("evaluated", True)
    config = run.config
    with mock_mnist():
        pipeline = compose.make_pipeline(config)
        trainer = Trainer(config, tf.distribute.get_strategy(), pipeline,
                          wrappers.masked_training(config.pruning.exclude))
        trainer.restore_evaluated_weights(done.checkpoint)
        level = run.results.levels[1]
        assert trainer.evaluate("test")["accuracy"] == level.test_accuracy  # the same data
        test = pipeline.eval_split("test")
        batches = list(test.dataset_fn(tf.distribute.InputContext()))
    x = np.random.default_rng(0).uniform(0, 1, (5, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(_logits(done.path, x),
                                  trainer.model(x, training=False).numpy())
    correct = sum(float(np.sum(w * (np.argmax(_logits(done.path, images), -1) == labels)))
                  for images, labels, w in (tuple(t.numpy() for t in b) for b in batches))
    assert correct / test.num_examples == level.test_accuracy


def test_trained_weights_are_exported_on_request(ema_imp_run, tmp_path):
    run = tf_lottery.load(ema_imp_run)
    evaluated = run.export(str(tmp_path / "ema.keras"), level=1)
    trained = run.export(str(tmp_path / "trained.keras"), level=1, weights="trained")
    assert (trained.weights, trained.averaged) == ("trained", False)
    assert trained.checkpoint == evaluated.checkpoint
    x = np.random.default_rng(0).uniform(0, 1, (5, 28, 28, 1)).astype(np.float32)
    model, _ = export.restored_model(run.config, trained.checkpoint)
    np.testing.assert_array_equal(_logits(trained.path, x), model(x, training=False).numpy())
    assert not np.allclose(_logits(trained.path, x), _logits(evaluated.path, x))
    # W_k is exported with its trained weights by default.
    assert run.export(str(tmp_path / "w_k.keras"), level=1, which="rewind").weights == "trained"


def test_pruned_weights_are_zero_in_the_averaged_export(ema_imp_run, tmp_path):
    import tf_keras

    run = tf_lottery.load(ema_imp_run)
    done = run.export(str(tmp_path / "ticket.keras"), level=1)
    mask = masks_lib.load(done.mask_path)
    plain = tf_keras.models.load_model(done.path)
    _kernels_are_masked({w.name: w.numpy() for w in plain.weights}, mask)
    # Already 0 in the average itself (reset at the level's masked start),
    # not only through the export's multiplication by the mask.
    from tf_lottery.pruning import wrappers

    model, _ = export.restored_model(run.config, done.checkpoint, evaluated=True)
    averaged = wrappers.pruning_vars(model)
    assert averaged.keys() == mask.keys()
    for name, (weight, _) in averaged.items():
        assert not np.any(weight.numpy()[mask[name] == 0]), name


def test_a_run_without_ema_exports_the_same_network_either_way(imp_run, tmp_path):
    evaluated = tf_lottery.export_ticket(imp_run, str(tmp_path / "a.keras"),
                                         weights="evaluated")
    trained = tf_lottery.export_ticket(imp_run, str(tmp_path / "b.keras"), weights="trained")
    assert not evaluated.averaged and evaluated.checkpoint == trained.checkpoint
    for a, b in zip(_weights(evaluated.path), _weights(trained.path), strict=True):
        np.testing.assert_array_equal(a, b)
    a, b = masks_lib.load(evaluated.mask_path), masks_lib.load(trained.mask_path)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_directory_without_a_run_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="holds no run"):
        tf_lottery.export_ticket(str(tmp_path), str(tmp_path / "t.keras"))
    with pytest.raises(ConfigError, match="no_such_flag= is not a setting"):
        tf_lottery.make_config(model_dir=str(tmp_path), no_such_flag=1)


@pytest.mark.slow
def test_the_example_prints_a_barrier_table(tmp_path):
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "own_model_and_data.py"),
         f"--workdir={tmp_path}", "--train_steps=30"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "test barrier" in line)
    assert [line.split()[0] for line in lines[header + 1:header + 3]] == ["0", "10"]
    run = tf_lottery.load(str(tmp_path / "run"))
    assert isinstance(run.results, records.InstabilityResults) and run.complete
    assert run.config.data.dataset == "toy_quadrants" and run.config.data.num_classes == 4
