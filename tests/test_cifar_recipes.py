"""CIFAR-10 recipes: the flagfiles resolve to the paper's numbers and run end to
end through the CLI path on TFDS mock data; augmentation is the paper's and is
a pure function of (augment_seed, step)."""

import json
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import tf_keras

from tests.conftest import parse_config, tiny_data, tiny_pipeline
from tf_lottery import config as config_lib
from tf_lottery import main as main_lib
from tf_lottery.data import augment as augment_lib
from tf_lottery.data import cache, sources
from tf_lottery.data import registry as data_registry
from tf_lottery.data.pipeline import global_batch_at
from tf_lottery.errors import ConfigError
from tf_lottery.models import registry as models
from tf_lottery.pruning import wrappers
from tf_lottery.training import schedules

# flagfile -> (model, base LR, warmup steps, IMP rewind step): Frankle et al.
# 2020, Table 1; low and warmup variants rewind IMP to initialization.
RECIPES = {
    "resnet20_cifar10": ("resnet20", 0.1, 0, 2000),
    "resnet20_cifar10_low": ("resnet20", 0.01, 0, 0),
    "resnet20_cifar10_warmup": ("resnet20", 0.03, 30000, 0),
    "vgg16_cifar10": ("vgg16", 0.1, 0, 1000),
    "vgg16_cifar10_low": ("vgg16", 0.01, 0, 0),
    "vgg16_cifar10_warmup": ("vgg16", 0.1, 30000, 0),
}
# model -> (IMP levels, excluded layers, prunable weights) of the standard
# recipes: 0.8^8 = 16.8 % and 0.8^19 = 1.5 % density (with VGG-16's unpruned
# output layer), the paper's; exclusions as open_lth's.
IMP = {"resnet20": (8, (), 270_896), "vgg16": (19, ("logits",), 14_710_464)}
# Low and warmup variants prune to their own density (Table 1): ResNet-20 to
# 8.6 % (0.8^11), VGG-16 low to 5.5 % (0.8^13); tests/test_paper_table.py
# checks every density against the table.
LEVELS = {"resnet20_cifar10_low": 11, "resnet20_cifar10_warmup": 11, "vgg16_cifar10_low": 13}


def recipe(name, *extra, model_dir="/tmp/unused"):
    return parse_config(f"--flagfile=flags/{name}.cfg", *extra, model_dir=model_dir)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_flagfile_is_the_papers_recipe(name):
    model, lr, warmup, rewind = RECIPES[name]
    c = recipe(name, "--experiment=imp", "--instability")
    assert (c.model.name, c.model.cross_replica_bn) == (model, True)
    assert (c.data.dataset, c.data.augment) == ("cifar10", "crop_flip")
    assert (c.train.batch_size, c.train.train_steps) == (128, 63000)
    assert c.train.steps_per_epoch == 390  # 50,000 // 128, remainder dropped
    assert (c.optimizer.name, c.optimizer.momentum, c.optimizer.nesterov) == (
        "momentum", 0.9, False)
    assert c.optimizer.weight_decay == pytest.approx(1e-4)
    assert (c.schedule.kind, c.schedule.drop_steps) == ("step", (32000, 48000))
    assert c.schedule.drop_factor == pytest.approx(0.1)
    assert c.schedule.learning_rate == pytest.approx(lr)
    assert c.schedule.warmup_steps == warmup
    assert c.train.rewind_steps == (0, 100, 250, 500, 1000, 2000, 4000)
    i = c.instability
    assert (i.children, i.interpolation_points, i.stability_threshold) == (3, 30, 0.02)
    assert i.replicates == 3
    p = c.pruning
    assert (p.levels, p.exclude) == (LEVELS.get(name, IMP[model][0]), IMP[model][1])
    assert (p.prune_fraction, p.scope, p.rewind_step) == (0.2, "global", rewind)
    assert p.rewind_step in c.train.rewind_steps
    assert p.baselines == ("random_prune", "random_reinit")
    assert config_lib.config_from_json(c.to_json()) == c

    def lr_at(step):
        return float(schedules.learning_rate(c.schedule, step, c.train.train_steps))

    ramp = (lambda s: min((s + 1) / warmup, 1.0)) if warmup else (lambda s: 1.0)
    for step, factor in [(0, 1), (999, 1), (29999, 1), (31999, 1), (32000, 0.1),
                         (47999, 0.1), (48000, 0.01), (62999, 0.01)]:
        assert lr_at(step) == pytest.approx(lr * factor * ramp(step), rel=1e-6), step


@pytest.mark.parametrize("variant, field, value", [
    ("low", "schedule.learning_rate", 0.01),
    ("warmup", "schedule.warmup_steps", 30000),
])
@pytest.mark.parametrize("model", ["resnet20", "vgg16"])
def test_variants_change_only_lr_and_warmup(model, variant, field, value):
    base = recipe(f"{model}_cifar10").recipe_dict()
    other = recipe(f"{model}_cifar10_{variant}").recipe_dict()
    changed = config_lib.diff_recipes(base, other)
    assert field in changed
    assert set(changed) <= {"schedule.learning_rate", "schedule.warmup_steps",
                            "pruning.rewind_step", "pruning.levels"}


def test_resnet_and_vgg_recipes_differ_only_in_the_model_and_its_pruning():
    for variant in ("", "_low"):
        a = recipe(f"resnet20_cifar10{variant}").recipe_dict()
        b = recipe(f"vgg16_cifar10{variant}").recipe_dict()
        assert set(config_lib.diff_recipes(a, b)) <= {
            "model.name", "pruning.levels", "pruning.exclude", "pruning.rewind_step"}


@pytest.mark.parametrize("model", sorted(IMP))
def test_prunable_layers_are_the_recipes(model):
    c = recipe(f"{model}_cifar10", "--experiment=imp")
    net = models.build_model(model, 10, (32, 32, 3), init_seed=0)
    wrapped = wrappers.wrap_model(net, c.pruning.exclude)
    prunable = wrappers.pruning_vars(wrapped)
    assert all(name.endswith("/kernel") for name in prunable)
    assert sum(v.shape.num_elements() for v, _ in prunable.values()) == IMP[model][2]
    convs = [layer.name for layer in net.layers if isinstance(layer, tf_keras.layers.Conv2D)]
    expected = set(convs) | ({"logits"} - set(c.pruning.exclude))
    assert {name.split("/")[0] for name in prunable} == expected


# -- the CLI path on mock data ------------------------------------------------

# Each flagfile trains one step through tf_lottery.main; between them they
# cover every strategy for both models (mirrored: 2 logical CPUs).
STRATEGIES = {"": "default", "_low": "mirrored", "_warmup": "one_device"}


def run_main(name, model_dir, strategy, *extra_flags, batch=4):
    # T is one step here: warmup and the IMP rewind step must fit in it.
    extra = ["--warmup_steps=1"] if RECIPES[name][2] else []
    c = recipe(name, "--train_steps=1", f"--batch_size={batch}", "--eval_batch_size=8",
               "--train_eval_examples=8", "--rewind_steps=0", "--rewind_step=0",
               f"--strategy={strategy}",
               "--cpu_devices=2", *extra, *extra_flags, model_dir=str(model_dir))
    with tfds.testing.mock_data(num_examples=8), \
            mock.patch.object(sources, "is_prepared", lambda builder: True), \
            mock.patch.object(cache, "load", lambda *args: None):
        results = main_lib.run(c)
    assert results.status == "complete" and results.step == 1
    assert results.metrics.test_examples == 8
    assert np.isfinite(results.metrics.test_loss)
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["model"]["name"] == RECIPES[name][0]
    assert saved["schedule"]["learning_rate"] == pytest.approx(RECIPES[name][1])
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(RECIPES) - {"resnet20_cifar10_low"}))
def test_flagfile_trains_one_step_through_main_on_mock_cifar10(name, tmp_path):
    variant = name.split("cifar10")[1]
    results = run_main(name, tmp_path, STRATEGIES[variant])
    assert sorted(results.rewind_checkpoints) == [0]


def checkpoint_arrays(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith("model/") and "OPTIMIZER_SLOT" not in k}


def update(prefix, start):
    """The step's change of every trained weight, flattened (BN statistics apart)."""
    a = checkpoint_arrays(prefix)
    names = sorted(k for k in a if "moving_" not in k and k in start)
    return np.concatenate([(a[k] - start[k]).ravel() for k in names])


def relative(x, y):
    return float(np.linalg.norm(x - y) / np.linalg.norm(y))


@pytest.mark.slow
def test_mirrored_step_matches_one_device_step(tmp_path):
    """resnet20_cifar10_low on 2 mirrored replicas of 4 examples vs one device
    of 8: with the recipe's --cross_replica_bn both compute the same step of the
    same global batch, so they may differ only by float32 rounding of sums taken
    in another order (per-replica partial sums, then an all-reduce).

    How far such rounding carries through this network depends on the CPU's
    kernels (BatchNorm over few examples divides by a small batch deviation),
    so the bound is measured here, not copied from one machine: the one-device
    step on the same 8 examples in another order (another --data_order_seed;
    the batch is the whole mock set, augmentation off) differs from the first
    by the reordering of the same sums alone. The mirrored step must stay
    within 10 times that, and never needs to be closer than 2**-20 (16 units
    of float32 rounding). With per-replica statistics (--nocross_replica_bn)
    the update differs by ~87 %, far outside either."""
    flags = ("--augment=none",)
    one = run_main("resnet20_cifar10_low", tmp_path / "one", "default", *flags, batch=8)
    two = run_main("resnet20_cifar10_low", tmp_path / "two", "mirrored", *flags, batch=8)
    order = run_main("resnet20_cifar10_low", tmp_path / "order", "default", *flags,
                     "--data_order_seed=7", batch=8)
    w0 = checkpoint_arrays(one.rewind_checkpoints[0])
    np.testing.assert_equal(checkpoint_arrays(two.rewind_checkpoints[0]), w0)
    da = update(one.final_checkpoint, w0)
    assert np.linalg.norm(da) > 0
    rounding = max(relative(update(order.final_checkpoint, w0), da), 2.0 ** -20)
    assert relative(update(two.final_checkpoint, w0), da) <= 10 * rounding
    a, b, c = (checkpoint_arrays(r.final_checkpoint) for r in (one, two, order))
    moving = sorted(k for k in a if "moving_" in k)
    assert len(moving) == 42
    stats_rounding = max(max(relative(c[k], a[k]) for k in moving), 2.0 ** -20)
    for k in moving:
        assert relative(b[k], a[k]) <= 10 * stats_rounding, k


def test_missing_cifar10_says_which_archive_to_provide(tmp_path):
    spec = data_registry.get("cifar10")
    with pytest.raises(ConfigError, match="cifar-10-binary.tar.gz"):
        sources.get_builder(spec, str(tmp_path / "tfds"), str(tmp_path))
    with pytest.raises(ConfigError, match="--tfds_manual_dir"):
        sources.get_builder(spec, str(tmp_path / "tfds"), None)


# -- augmentation --------------------------------------------------------------

def coordinate_images(n):
    """uint8 images whose channels 0 and 1 hold row + 1 and column + 1."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    image = np.stack([rows + 1, cols + 1, np.full_like(rows, 200)], -1).astype(np.uint8)
    return np.repeat(image[None], n, axis=0)


def crops_and_flips(images):
    """(row offset, column offset, flipped) of each augmented coordinate image.

    With offsets (oy, ox) the crop's pixel (i, j) is input pixel
    (i + oy - 4, j + ox - 4); a flip then mirrors the columns, so output pixel
    (16, 16) is input (12 + oy, 12 + ox), or (12 + oy, 11 + ox) when flipped,
    and columns then decrease to the right.
    """
    out = []
    for img in images:
        row, col = int(img[16, 16, 0]) - 1, int(img[16, 16, 1]) - 1
        flipped = bool(img[16, 17, 1] < img[16, 16, 1])
        out.append((row - 12, col - (11 if flipped else 12), flipped))
    return out


def test_crop_flip_draws_all_81_offsets_and_both_flips_uniformly():
    n = 4096
    draws = augment_lib.augment_draws(7, 3, n, 3)
    out = augment_lib.augment(tf.constant(coordinate_images(n)), "crop_flip", draws).numpy()
    found = crops_and_flips(out)
    # The draws decide: flip when column 0 < 0.5, offsets from columns 1 and 2.
    d = draws.numpy()
    expected_offsets = np.minimum((d[:, 1:] * 9).astype(int), 8)
    assert [f for *_, f in found] == list(d[:, 0] < 0.5)
    np.testing.assert_array_equal([(oy, ox) for oy, ox, _ in found], expected_offsets)
    # All 81 offsets, equally likely: chi-square with 80 degrees of freedom
    # (mean 80, sd 12.6) far below its 0.05 % tail at 130.
    counts = np.bincount(9 * expected_offsets[:, 0] + expected_offsets[:, 1], minlength=81)
    assert counts.min() > 0
    chi2 = ((counts - n / 81) ** 2 / (n / 81)).sum()
    assert chi2 < 130, chi2
    assert abs(np.mean([f for *_, f in found]) - 0.5) < 0.03  # 4.5 sd of 4096 flips


def cifar_pipeline(augment="crop_flip"):
    c = parse_config("--dataset=cifar10", "--train_steps=50", "--batch_size=32",
                     "--eval_batch_size=32", "--train_eval_examples=32")
    data = tiny_data(num_train=64, num_test=32, shape=(32, 32, 3))
    return tiny_pipeline(c, data, augment=augment), data


def test_cifar_augmentation_is_a_pure_function_of_seed_and_step():
    p, _ = cifar_pipeline()
    x, y = global_batch_at(p, 5, data_order_seed=1, augment_seed=2)
    again, y_again = global_batch_at(p, 5, data_order_seed=1, augment_seed=2)
    np.testing.assert_array_equal(x, again)
    np.testing.assert_array_equal(y, y_again)
    other, y_other = global_batch_at(p, 5, data_order_seed=1, augment_seed=3)
    np.testing.assert_array_equal(y, y_other)  # same examples ...
    assert not np.array_equal(x, other)  # ... differently cropped and flipped
    next_step, _ = global_batch_at(p, 6, data_order_seed=1, augment_seed=2)
    assert not np.array_equal(x, next_step)


def test_padding_is_black_before_per_channel_normalization():
    spec = data_registry.get("cifar10")
    p, data = cifar_pipeline()
    x, _ = global_batch_at(p, 0, data_order_seed=0, augment_seed=0)
    draws = augment_lib.augment_draws(0, 0, 32, 3)
    raw = data.train_images[p.epoch_order(0, 0).numpy()[0]]
    expected = augment_lib.normalize(augment_lib.augment(raw, "crop_flip", draws),
                                     spec.mean, spec.std).numpy()
    np.testing.assert_allclose(x, expected, rtol=1e-6)
    black = (0.0 - np.array(spec.mean)) / np.array(spec.std)
    offsets = np.minimum((draws.numpy()[:, 1] * 9).astype(int), 8)
    top_padded = np.flatnonzero(offsets == 0)  # first 4 rows come from the padding
    assert top_padded.size
    np.testing.assert_allclose(x[top_padded, :4], np.broadcast_to(
        black, x[top_padded, :4].shape), rtol=1e-6)
    plain, _ = cifar_pipeline(augment="none")
    x_plain, _ = global_batch_at(plain, 0, data_order_seed=0, augment_seed=0)
    np.testing.assert_allclose(
        x_plain, (raw / 255.0 - np.array(spec.mean)) / np.array(spec.std), rtol=1e-5)
