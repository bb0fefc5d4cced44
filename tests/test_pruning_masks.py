"""Mask arithmetic (pure numpy): magnitude selection, densities, random pruning."""

import numpy as np
import pytest

from tf_lottery.pruning import masks
from tf_lottery.pruning.masks import PruningRule

GLOBAL, LAYERWISE = PruningRule("global"), PruningRule("layerwise")


def hand_made():
    """Layer a holds small weights, layer b large ones."""
    weights = {"a/kernel": np.array([[0.1, -0.4], [0.3, -0.2]], np.float32),
               "b/kernel": np.array([[5.0, -1.0], [2.0, 0.5]], np.float32)}
    return weights, masks.ones_like(weights)


def test_global_ranks_all_layers_together():
    w, m = hand_made()
    out = masks.prune(w, m, {"a/kernel": 0.5, "b/kernel": 0.5}, GLOBAL)
    # The 4 largest of all 8 magnitudes: 5, 2, 1, 0.5 -- all in layer b.
    np.testing.assert_array_equal(out["a/kernel"], np.zeros((2, 2)))
    np.testing.assert_array_equal(out["b/kernel"], np.ones((2, 2)))


def test_layerwise_prunes_each_layer_to_the_same_density():
    w, m = hand_made()
    out = masks.prune(w, m, {"a/kernel": 0.5, "b/kernel": 0.5}, LAYERWISE)
    np.testing.assert_array_equal(out["a/kernel"], [[0, 1], [1, 0]])
    np.testing.assert_array_equal(out["b/kernel"], [[1, 0], [1, 0]])


def test_only_survivors_can_survive_and_counts_are_exact_under_ties():
    w = {"a/kernel": np.array([9.0, 9.0, 1.0, 1.0, 1.0, 1.0], np.float32)}
    m = {"a/kernel": np.array([0, 1, 1, 1, 1, 1], np.float32)}
    out = masks.prune(w, m, {"a/kernel": 0.5}, LAYERWISE)
    # 3 of 6 survive: the surviving 9, then the first two of four tied 1s.
    np.testing.assert_array_equal(out["a/kernel"], [0, 1, 1, 1, 0, 0])


def test_layer_rates_prune_a_layer_on_its_own_at_its_rate():
    rule = PruningRule("global", (("b", 0.5),))
    assert rule.rate("b/kernel") == 0.5 and rule.rate("a/kernel") is None
    targets = masks.level_densities(["a/kernel", "b/kernel"], 0.2, 3, rule)
    assert targets == pytest.approx({"a/kernel": 0.8 ** 3, "b/kernel": 0.9 ** 3})
    w = {"a/kernel": np.arange(1, 101, dtype=np.float32),
         "b/kernel": np.arange(1, 11, dtype=np.float32)}
    out = masks.prune(w, masks.ones_like(w), targets, rule)
    assert masks.count({"a": out["a/kernel"]}) == round(100 * 0.8 ** 3)
    assert masks.count({"b": out["b/kernel"]}) == round(10 * 0.9 ** 3)


@pytest.mark.parametrize("rule", [GLOBAL, LAYERWISE], ids=["global", "layerwise"])
def test_density_after_l_levels_is_within_one_weight_per_layer(rule):
    rng = np.random.default_rng(0)
    shapes = {"fc1/kernel": (784, 30), "fc2/kernel": (30, 10), "logits/kernel": (10, 10)}
    m = {k: np.ones(s, np.float32) for k, s in shapes.items()}
    p = 0.2
    for level in range(1, 16):
        # Fresh weights each level stand in for retraining.
        w = {k: rng.normal(size=s).astype(np.float32) * m[k] for k, s in shapes.items()}
        new = masks.prune(w, m, masks.level_densities(list(m), p, level, rule), rule)
        assert all(np.all(new[k] <= m[k]) for k in m)  # nested: masks only lose ones
        m = new
        want = (1 - p) ** level
        if rule.scope == "layerwise":
            for k in m:
                assert abs(np.count_nonzero(m[k]) - m[k].size * want) <= 1, (level, k)
        assert abs(masks.count(m) - masks.size(m) * want) <= len(m), level
    assert masks.density(m) == pytest.approx(0.8 ** 15, abs=1e-4)


def test_random_pruning_keeps_every_layer_density_at_new_positions():
    w, m = hand_made()
    w["c/kernel"] = np.random.default_rng(1).normal(size=(50, 40)).astype(np.float32)
    m["c/kernel"] = np.ones((50, 40), np.float32)
    m = masks.prune(w, m, {"a/kernel": 0.5, "b/kernel": 0.25, "c/kernel": 0.3}, LAYERWISE)
    out = masks.random_like(m, np.random.default_rng(0))
    assert masks.layer_densities(out) == masks.layer_densities(m)
    assert not np.array_equal(out["c/kernel"], m["c/kernel"])
    again = masks.random_like(m, np.random.default_rng(0))
    np.testing.assert_array_equal(again["c/kernel"], out["c/kernel"])


def test_masks_round_trip_through_npz(tmp_path):
    w, m = hand_made()
    m = masks.prune(w, m, {"a/kernel": 0.5, "b/kernel": 0.5}, LAYERWISE)
    path = str(tmp_path / "mask.npz")
    masks.save(path, m)
    back = masks.load(path)
    assert sorted(back) == sorted(m)
    for k in m:
        np.testing.assert_array_equal(back[k], m[k])
        assert back[k].dtype == np.float32
