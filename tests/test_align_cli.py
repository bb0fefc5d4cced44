"""Raw and aligned barriers between two checkpoints: the library and the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import test_pruning_wrappers  # noqa: F401  (registers conv_bn_for_tests)
from tests.conftest import parse_config, tiny_pipeline
from tf_lottery.errors import ConfigError
from tf_lottery.models import permutation, registry
from tf_lottery.pruning import wrappers
from tf_lottery.stability import aligned_paths, alignment
from tf_lottery.training.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The library takes its path knobs from the instability section (the CLI adds
# it to any recipe: test_cli_prints_both_barriers_and_writes_the_aligned_checkpoint).
SMALL = ["--experiment=instability", "--batch_size=20", "--eval_batch_size=50",
         "--train_eval_examples=100", "--interpolation_points=3"]


def save(model, prefix):
    return tf.train.Checkpoint(model=model).write(prefix)


def trainer(tmp_path, *extra, pruned=False):
    c = parse_config("--train_steps=10", *SMALL, *extra, model_dir=str(tmp_path))
    t = Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c),
                wrappers.masked_training() if pruned else None)
    if pruned:
        rng = np.random.default_rng(0)
        wrappers.set_masks(t.model, {n: (rng.random(w.shape) < 0.4).astype(np.float32)
                                     for n, w in wrappers.weight_values(t.model).items()})
    return c, t


def permuted_copy(t, tmp_path, seed=3):
    """Checkpoints of the trainer's network and of a hidden-units permutation of it."""
    spec = permutation.permutation_spec(t.model)
    weights = permutation.get_weights(t.model)
    a = save(t.model, str(tmp_path / "a" / "ckpt"))
    permutation.set_weights(t.model, alignment.apply_permutation(
        weights, spec, alignment.random_permutations(spec, seed)))
    b = save(t.model, str(tmp_path / "b" / "ckpt"))
    return a, b, weights


@pytest.mark.parametrize("extra, pruned", [
    ((), False),
    ((), True),  # masks move with their weights and come back with them
    (("--model=conv_bn_for_tests", "--bn_mode=recompute", "--bn_recompute_batches=2"), False),
])
def test_a_permuted_copy_has_zero_aligned_barrier_and_aligns_bit_for_bit(
        tmp_path, extra, pruned):
    c, t = trainer(tmp_path, *extra, pruned=pruned)
    a, b, original = permuted_copy(t, tmp_path)
    out = str(tmp_path / "aligned" / "ckpt")
    results = aligned_paths.aligned_barriers(t, c, a, b, aligned_out=out)
    aligned = results["aligned"]
    assert aligned["barrier"] == {"test": 0.0, "train": 0.0}
    assert len(set(aligned["test_error"])) == 1  # every point is network A
    assert results["raw"]["test_error"][0] == aligned["test_error"][0]
    assert results["matching"]["converged"] and results["bn_mode"] == c.instability.bn_mode
    t.restore_evaluated_weights(out)
    restored = permutation.get_weights(t.model)
    assert all(np.array_equal(restored[n], original[n]) for n in original)
    with pytest.raises(ConfigError, match="exists"):
        aligned_paths.write_aligned(t, original, out)


def test_missing_and_foreign_checkpoints_are_one_line_errors(tmp_path):
    c, t = trainer(tmp_path)
    with pytest.raises(ConfigError, match=r"--checkpoint_a=.*no checkpoint there"):
        aligned_paths.aligned_barriers(t, c, str(tmp_path / "nothing"), "b")
    foreign = save(registry.build_model("resnet20", 10, (8, 8, 3), 0), str(tmp_path / "r"))
    with pytest.raises(ConfigError, match=r"--checkpoint_b=.*lenet_300_100") as e:
        aligned_paths.check_checkpoint(t, foreign, "checkpoint_b")
    assert "\n" not in str(e.value)


def align_cli(*args):
    # A plain train recipe: the CLI adds the path knobs' section itself.
    return subprocess.run([sys.executable, "-m", "tests.mock_align", "--dataset=mnist",
                           "--train_steps=10", *SMALL[1:], *args],
                          cwd=ROOT, text=True, capture_output=True)


@pytest.mark.slow
def test_cli_prints_both_barriers_and_writes_the_aligned_checkpoint(tmp_path):
    model = registry.build_model("lenet_300_100", 10, (28, 28, 1), init_seed=0)
    a = save(model, str(tmp_path / "a" / "ckpt"))
    b = save(registry.build_model("lenet_300_100", 10, (28, 28, 1), init_seed=1),
             str(tmp_path / "b" / "ckpt"))
    out = align_cli(f"--checkpoint_a={a}", f"--checkpoint_b={b}",
                    f"--aligned_out={tmp_path / 'aligned' / 'ckpt'}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "raw barrier: test" in out.stdout and "aligned barrier: test" in out.stdout
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["matching"]["groups"] == 2 and summary["matching"]["converged"]
    assert set(summary["raw"]["barrier"]) == {"test", "train"}
    assert tf.io.gfile.exists(str(tmp_path / "aligned" / "ckpt.index"))

    missing = align_cli(f"--checkpoint_a={tmp_path / 'none'}", f"--checkpoint_b={b}")
    assert missing.returncode == 2
    errors = [line for line in missing.stderr.splitlines()
              if line.startswith("tf_lottery.align: error")]
    assert errors == [f"tf_lottery.align: error: --checkpoint_a={tmp_path / 'none'}: "
                      f"no checkpoint there ({tmp_path / 'none'}.index not found)"]


def test_ema_runs_are_aligned_on_their_evaluated_weights(tmp_path):
    from tf_lottery.training.trainer import FromSeed, RunSpec, SgdNoise

    c, t = trainer(tmp_path, "--ema_decay=0.5")
    final = t.train(RunSpec(str(tmp_path / "run"), 2, SgdNoise(0, 0),
                            FromSeed(0))).final_checkpoint
    evaluated = aligned_paths.endpoint_weights(t, final)
    out = str(tmp_path / "aligned" / "ckpt")
    results = aligned_paths.aligned_barriers(t, c, final, final, aligned_out=out)
    assert results["matching"]["iterations"] == 1  # already aligned with itself
    assert results["aligned"]["barrier"] == results["raw"]["barrier"] == {"test": 0.0,
                                                                         "train": 0.0}
    restored = aligned_paths.endpoint_weights(t, out)
    assert all(np.array_equal(restored[n], evaluated[n]) for n in evaluated)
