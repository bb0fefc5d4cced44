"""Layer-wise groups read off the Keras graph, and the paths that move one group."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tests import test_bn
from tests.conftest import parse_config, tiny_pipeline
from tests.test_alignment import build
from tf_lottery.models import permutation, registry
from tf_lottery.pruning import wrappers
from tf_lottery.stability import interpolation, layerwise
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.training.trainer import Trainer


def _covers_every_weight_once(model):
    found = layerwise.groups(model)
    listed = [w for g in found for w in g.weights]
    assert sorted(listed) == sorted(permutation.weight_variables(model))
    assert len(listed) == len(set(listed))
    return found


@pytest.mark.parametrize("name,expected", [
    ("lenet_300_100", ["fc1", "fc2", "logits"]),
    ("vgg11", [f"conv{i}" for i in range(1, 9)] + ["logits"]),
    ("resnet20", ["conv"] + [f"stage{s}_block{b}_add" for s in (1, 2, 3) for b in (1, 2, 3)]
     + ["logits"]),
])
def test_groups_are_layers_and_residual_blocks(name, expected):
    found = _covers_every_weight_once(build(name))
    assert [g.name for g in found] == expected


def test_a_conv_carries_its_batchnorm_and_a_block_its_shortcut():
    found = {g.name: g for g in _covers_every_weight_once(build("resnet20"))}
    assert found["conv"].layers == ("conv", "conv_bn")
    assert sorted(found["stage2_block1_add"].layers) == [
        "stage2_block1_conv1", "stage2_block1_conv1_bn", "stage2_block1_conv2",
        "stage2_block1_conv2_bn", "stage2_block1_shortcut", "stage2_block1_shortcut_bn"]


def test_resnet50_blocks_and_inception_modules():
    found = _covers_every_weight_once(build("resnet50"))
    assert [g.name for g in found][1:4] == ["conv2_block1_add", "conv2_block2_add",
                                            "conv2_block3_add"]
    assert len(found) == 1 + 16 + 1  # stem, 16 bottlenecks, logits
    found = _covers_every_weight_once(build("inception_v3"))
    names = [g.name for g in found]
    assert names[-13:] == [f"mixed{i}" for i in range(11)] + ["predictions", "aux_logits"]
    assert len(names) == 5 + 11 + 2  # stem convs, modules, classifier, auxiliary head


@pytest.mark.slow
@pytest.mark.parametrize("name", registry.names())
def test_every_registry_model_is_grouped(name):
    _covers_every_weight_once(build(name))


def test_pruning_wrappers_keep_their_masks_with_their_layer():
    dense = build("lenet_300_100")
    wrapped = wrappers.wrap_model(dense)
    found = _covers_every_weight_once(wrapped)
    assert sorted(found[0].weights) == sorted(
        ("fc1/kernel", "fc1/mask", "fc1/threshold", "fc1/pruning_step", "fc1/bias"))
    # ... but a group's size is its layers' own weights, wrapped or not.
    sizes = [layerwise.parameters(dense, g) for g in layerwise.groups(dense)]
    assert sizes[0] == 784 * 300 + 300
    assert [layerwise.parameters(wrapped, g) for g in found] == sizes


# -- evaluation -----------------------------------------------------------------------------

def _trainer(tmp_path, model, init_seed=0):
    c = parse_config(f"--model={model}", "--train_steps=10", "--batch_size=20",
                     "--eval_batch_size=50", "--train_eval_examples=120",
                     model_dir=str(tmp_path))
    return Trainer(c, tf.distribute.get_strategy(), tiny_pipeline(c), init_seed=init_seed)


def _weights(t):
    return interpolation.snapshot(interpolation.path_variables(t.model))


def _two_networks(tmp_path, model=test_bn.TINY_BN):
    a, b = _trainer(tmp_path / "a", model, 0), _trainer(tmp_path / "b", model, 1)
    rng = np.random.default_rng(0)
    w1 = [x + rng.normal(0, 0.05, x.shape).astype(x.dtype) for x in _weights(a)]
    return a, w1, _weights(b)


def test_moving_every_group_is_the_pairs_own_path(tmp_path):
    t, w1, w2 = _two_networks(tmp_path)
    evaluator = PathEvaluator(t, 4)
    everything = [[True] * len(w1)]
    (moved,) = layerwise.curves(evaluator, w1, w2, everything, 4)
    full = evaluator.curves(w1, w2)
    for key in ("alphas", "test_error", "test_loss", "train_error", "train_loss"):
        assert moved[key] == full[key]
    assert moved["barrier"] == full["barrier"]
    # The union of the groups' masks is every path variable, each once.
    masks = layerwise.moving_masks(t.model, layerwise.groups(t.model), evaluator.variables)
    assert (np.sum(masks, axis=0) == 1).all()


def test_a_group_equal_in_both_networks_has_barrier_exactly_zero(tmp_path):
    t, w1, w2 = _two_networks(tmp_path)
    evaluator = PathEvaluator(t, 5)
    found = layerwise.groups(t.model)
    masks = layerwise.moving_masks(t.model, found, evaluator.variables)
    # Network 2 with the first group copied from network 1.
    w2_same_first = layerwise.endpoint_for(w2, w1, masks[0])
    results = layerwise.curves(evaluator, w1, w2_same_first, masks, 5)
    alone = evaluator.point(w1, w1, 0.0)
    assert results[0]["test_error"] == [alone["test_error"]] * 5
    assert results[0]["barrier"] == {"test": 0.0, "train": 0.0}
    # The other groups do move: at α = 1 each is network 1 with that group swapped.
    for moving, result in zip(masks[1:], results[1:], strict=True):
        far = evaluator.point(w1, layerwise.endpoint_for(w1, w2, moving), 1.0)
        assert result["test_error"][-1] == far["test_error"]


def test_evaluate_names_every_group(tmp_path):
    t, w1, w2 = _two_networks(tmp_path, "lenet_300_100")
    out = layerwise.evaluate(PathEvaluator(t, 3), w1, w2, 3)
    assert [g.name for g, _ in out] == ["fc1", "fc2", "logits"]
    assert all(len(r["test_error"]) == 3 and r["barrier"]["test"] >= 0 for _, r in out)


def test_a_subclassed_model_is_refused():
    class Net(tf_keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="not a functional model"):
        layerwise.groups(Net())
