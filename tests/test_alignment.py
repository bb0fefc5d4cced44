"""Permutation specs and weight matching: exact invariance on every registry model.

A permutation that respects the spec derived from a model's graph must leave
the network's function unchanged (up to float summation order), and weight
matching a network against a permuted copy of itself must find the
permutation back, bit for bit.
"""

import numpy as np
import pytest
import tf_keras

# Registering the other test modules' models puts them under the same checks.
from tests import test_bn, test_interpolation, test_pruning_wrappers  # noqa: F401
from tf_lottery.models import permutation, registry
from tf_lottery.pruning import wrappers
from tf_lottery.stability import alignment, interpolation

ZOO = "test_alignment_zoo"


@registry.register(ZOO)
def _zoo(num_classes, image_shape):
    """Every composition rule in a few layers: two convs concatenated (block
    permutation), a depthwise conv (ties in to out), BatchNorm, a residual
    Add, Flatten of a 2x2 map (channel blocks repeated), a dropout."""
    inputs = tf_keras.Input(shape=image_shape)
    x = tf_keras.layers.Conv2D(6, 3, strides=2, name="stem")(inputs)
    a = tf_keras.layers.Conv2D(3, 1, name="a")(x)
    b = tf_keras.layers.Conv2D(2, 3, padding="same", name="b")(x)
    x = tf_keras.layers.Concatenate(name="cat")([a, b])
    y = tf_keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = tf_keras.layers.BatchNormalization(name="dw_bn")(y)
    x = tf_keras.layers.ReLU()(tf_keras.layers.Add(name="res")([x, y]))
    x = tf_keras.layers.MaxPooling2D(2)(x)
    x = tf_keras.layers.AveragePooling2D(3, name="to_2x2")(x)
    x = tf_keras.layers.Flatten(name="flat")(x)
    x = tf_keras.layers.Dense(7, activation="relu", name="fc")(x)
    x = tf_keras.layers.BatchNormalization(name="fc_bn")(x)
    x = tf_keras.layers.Dropout(0.5)(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(num_classes, name="logits")(x))


# Test sizes: the fewest pixels each network accepts; channel widths are the
# real ones (so the specs are the full-size networks').
SHAPES = {"inception_v3": (75, 75, 3), "resnet50": (32, 32, 3)}


def shape_of(name):
    if name in SHAPES:
        return SHAPES[name]
    if name.startswith("resnet"):
        return (8, 8, 3)
    if name.startswith("vgg"):
        return (16, 16, 3)
    return (28, 28, 1)


def build(name, seed=0):
    tf_keras.backend.clear_session()
    return registry.build_model(name, 3, shape_of(name), init_seed=seed)


def randomize_state(model, seed=0):
    """Non-trivial BatchNorm statistics, gammas, betas and biases (fresh ones
    are 0 / 1 everywhere, which would hide a statistic left unpermuted)."""
    rng = np.random.default_rng(seed)
    draws = {"moving_mean": lambda s: rng.normal(0, 0.1, s),
             "moving_variance": lambda s: rng.uniform(0.5, 1.5, s),
             "gamma": lambda s: rng.uniform(0.5, 1.5, s),
             "beta": lambda s: rng.normal(0, 0.1, s),
             "bias": lambda s: rng.normal(0, 0.1, s)}
    weights = permutation.get_weights(model)
    permutation.set_weights(model, {n: draws[n.rsplit("/", 1)[1]](w.shape)
                                    for n, w in weights.items()
                                    if n.rsplit("/", 1)[1] in draws})


def images(model, seed=0):
    shape = tuple(model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=(4, *shape)).astype(np.float32)


def logits(model, x):
    out = model(x, training=False)
    return (out[0] if isinstance(out, list | tuple) else out).numpy()


def assert_same_function(model, x, expected):
    got = logits(model, x)
    np.testing.assert_allclose(got, expected, rtol=1e-4,
                               atol=1e-5 * max(1.0, np.abs(expected).max()))


# -- pure functions --------------------------------------------------------------

def mlp_spec():
    return permutation.PermutationSpec(
        axes={"d0/kernel": (None, "h"), "d0/bias": ("h",),
              "d1/kernel": ((("h", 4), (None, 2)), None)},
        groups={"h": 4})


def test_composite_axes_gather_each_block_with_its_own_group():
    perms = {"g": np.array([2, 0, 1]), "h": np.array([1, 0])}
    index = alignment.axis_index((("g", 3), (None, 2), ("h", 2), ("g", 3)), 10, perms)
    np.testing.assert_array_equal(index, [2, 0, 1, 3, 4, 6, 5, 9, 7, 8])
    assert alignment.axis_index(None, 5, perms) is None
    with pytest.raises(ValueError, match="covers"):
        alignment.axis_index((("g", 3),), 4, perms)


def test_apply_then_invert_is_bitwise_identity_and_unknown_names_fail():
    spec = mlp_spec()
    rng = np.random.default_rng(0)
    w = {"d0/kernel": rng.normal(size=(3, 4)), "d0/bias": rng.normal(size=4),
         "d1/kernel": rng.normal(size=(6, 2))}
    perms = alignment.random_permutations(spec, seed=1)
    moved = alignment.apply_permutation(w, spec, perms)
    np.testing.assert_array_equal(moved["d0/kernel"], w["d0/kernel"][:, perms["h"]])
    np.testing.assert_array_equal(moved["d1/kernel"][4:], w["d1/kernel"][4:])
    back = alignment.apply_permutation(moved, spec, alignment.invert(perms))
    assert all(np.array_equal(back[n], w[n]) for n in w)
    with pytest.raises(KeyError, match="not in the permutation spec"):
        alignment.apply_permutation({"other": np.zeros(2)}, spec, perms)


def test_matching_is_deterministic_under_the_seed_and_never_worsens():
    model = build("lenet_300_100")
    spec = permutation.permutation_spec(model)
    a = permutation.get_weights(model)
    b = permutation.get_weights(build("lenet_300_100", seed=1))  # independent init
    runs = [alignment.weight_matching(spec, a, b, seed=s) for s in (3, 3, 4)]
    (p1, i1), (p2, i2), (_, i3) = runs
    assert all(np.array_equal(p1[g], p2[g]) for g in spec.groups) and i1 == i2
    for info in (i1, i3):
        assert info.converged and info.iterations >= 2
        assert np.all(np.diff(info.objective) >= 0)
        assert info.objective[-1] > info.objective[0]
        assert info.to_dict()["objective"] == list(info.objective)
    capped = alignment.weight_matching(spec, a, b, seed=3, max_iter=1)[1]
    assert capped.iterations == 1 and not capped.converged


# -- specs derived from graphs ----------------------------------------------------

def test_lenet_spec_is_the_hand_written_one():
    spec = permutation.permutation_spec(build("lenet_300_100"))
    assert dict(spec.axes) == {
        "fc1/kernel": (None, "fc1"), "fc1/bias": ("fc1",),
        "fc2/kernel": ("fc1", "fc2"), "fc2/bias": ("fc2",),
        "logits/kernel": ("fc2", None), "logits/bias": (None,)}
    assert dict(spec.groups) == {"fc1": 300, "fc2": 100}
    assert spec.unsupported == () and spec.state == frozenset()


def test_residual_adds_tie_each_stage_into_one_group():
    spec = permutation.permutation_spec(build("resnet20"))
    # One group per stage's residual stream (the stem joins stage 1; the
    # projection shortcut starts stages 2 and 3) + one inside each block.
    assert len(spec.groups) == 3 + 9
    streams = {s: spec.axes[f"stage{s}_block3_conv2/kernel"][-1] for s in (1, 2, 3)}
    assert streams[1] == spec.axes["conv/kernel"][-1] == "conv"
    for s, width in ((2, 32), (3, 64)):
        assert spec.axes[f"stage{s}_block1_shortcut/kernel"][-1] == streams[s]
        assert spec.axes[f"stage{s}_block1_shortcut/kernel"][2] == streams[s - 1]
        assert spec.axes[f"stage{s}_block1_shortcut_bn/moving_mean"] == (streams[s],)
        assert spec.groups[streams[s]] == width
    assert spec.axes["logits/kernel"] == (streams[3], None)
    assert "conv_bn/moving_variance" in spec.state and "conv_bn/gamma" not in spec.state
    resnet50 = permutation.permutation_spec(build("resnet50"))
    assert len(resnet50.groups) == 1 + 4 + 2 * 16  # stem, stage streams, block insides


def test_concatenate_flatten_and_depthwise_compose_block_permutations():
    spec = permutation.permutation_spec(build(ZOO))
    cat = (("a", 3), ("b", 2))
    assert spec.axes["dw/depthwise_kernel"] == (None, None, cat, None)
    assert spec.axes["dw_bn/gamma"] == (cat,)
    assert spec.axes["fc/kernel"] == (cat * 4, "fc")  # 2x2 positions, channels last
    assert spec.axes["logits/kernel"] == ("fc", None)
    assert dict(spec.groups) == {"stem": 6, "a": 3, "b": 2, "fc": 7}
    model = build("inception_v3")
    inception = permutation.permutation_spec(model)
    mixed0 = model.get_layer("mixed0").output
    reader = next(layer for layer in model.layers if getattr(layer, "input", None) is mixed0
                  and isinstance(layer, tf_keras.layers.Conv2D))
    blocks = inception.axes[f"{reader.name}/kernel"][2]
    assert [size for _, size in blocks] == [64, 64, 96, 32]  # mixed0's four branches
    assert inception.axes["aux_logits/kernel"][1] is None
    assert inception.axes["predictions/kernel"][1] is None
    assert len(inception.groups) == 94 + 2  # every conv; concatenations only compose


def test_inputs_outputs_and_unknown_layers_are_pinned():
    inputs = tf_keras.Input(shape=(5,))
    h = tf_keras.layers.Dense(5, name="h")(inputs)
    pinned = tf_keras.layers.Add()([inputs, h])  # merged with the input: cannot move
    k = tf_keras.layers.Dense(4, name="k")(pinned)
    odd = tf_keras.layers.Lambda(lambda t: t[:, ::-1], name="reverse")(k)
    shared = tf_keras.layers.Dense(3, name="shared")
    m = tf_keras.layers.Dense(4, name="m")(odd)
    out = tf_keras.layers.Add()([shared(m), shared(tf_keras.layers.Dense(4, name="n")(odd))])
    spec = permutation.permutation_spec(tf_keras.Model(inputs, out))
    assert spec.axes["h/kernel"] == (None, None) and spec.axes["k/kernel"] == (None, None)
    assert spec.unsupported == ("reverse",)
    # A layer applied twice ties its inputs: m and n share one permutation.
    assert spec.axes["m/kernel"][1] == spec.axes["n/kernel"][1] == spec.axes["shared/kernel"][0]
    assert spec.axes["shared/kernel"][1] is None  # the output
    assert list(spec.groups.values()) == [4] and spec.axes["m/kernel"][1] in ("m", "n")

    class Subclassed(tf_keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="not a functional"):
        permutation.permutation_spec(Subclassed())


# -- exactness on every registry model ----------------------------------------------

@pytest.mark.parametrize("name", registry.names())
def test_random_permutation_in_the_spec_leaves_the_function_unchanged(name):
    model = build(name)
    randomize_state(model)
    spec = permutation.permutation_spec(model)
    assert spec.unsupported == ()
    for layer in model.output_names:  # logits are never permuted
        for weight, axes in spec.axes.items():
            if weight.startswith(f"{layer}/"):
                assert axes[-1] is None, weight
    x = images(model)
    before = logits(model, x)
    weights = permutation.get_weights(model)
    moved = alignment.apply_permutation(weights, spec, alignment.random_permutations(spec, 7))
    changed = [n for n in weights if not np.array_equal(weights[n], moved[n])]
    assert len(changed) >= len(spec.groups)
    permutation.set_weights(model, moved)
    assert_same_function(model, x, before)


def test_masks_move_with_their_weights_in_a_pruned_network():
    model = wrappers.wrap_model(build("lenet_300_100"))
    rng = np.random.default_rng(0)
    masks = {n: (rng.random(w.shape) < 0.3).astype(np.float32)
             for n, w in wrappers.weight_values(model).items()}
    wrappers.set_masks(model, masks)
    spec = permutation.permutation_spec(model)
    assert spec.axes["fc2/mask"] == spec.axes["fc2/kernel"] == ("fc1", "fc2")
    assert {"fc1/mask", "fc1/threshold", "fc1/pruning_step"} <= spec.state
    x = images(model)
    before = logits(model, x)
    perms = alignment.random_permutations(spec, 3)
    permutation.set_weights(model, alignment.apply_permutation(
        permutation.get_weights(model), spec, perms))
    moved_masks = alignment.apply_permutation(masks, spec, perms)  # keyed like kernels
    for name, (weight, mask) in wrappers.pruning_vars(model).items():
        np.testing.assert_array_equal(mask.numpy(), moved_masks[name])
        np.testing.assert_array_equal(weight.numpy() == 0, moved_masks[name] == 0)
    assert_same_function(model, x, before)


def test_wrapped_convolutions_keep_their_batchnorm_alignment():
    model = wrappers.wrap_model(build("resnet20"))
    randomize_state(model)
    spec = permutation.permutation_spec(model)
    assert spec.axes["stage2_block1_shortcut/mask"] == spec.axes[
        "stage2_block1_shortcut/kernel"]
    x = images(model)
    before = logits(model, x)
    permutation.set_weights(model, alignment.apply_permutation(
        permutation.get_weights(model), spec, alignment.random_permutations(spec, 5)))
    assert_same_function(model, x, before)


# -- weight matching finds a hidden permutation back ---------------------------------

MATCHING = ["lenet_300_100", "resnet20", ZOO, "conv_bn_for_tests", test_bn.TINY_BN,
            pytest.param("vgg11", marks=pytest.mark.slow),
            pytest.param("resnet50", marks=pytest.mark.slow),
            pytest.param("inception_v3", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", MATCHING)
def test_matching_a_permuted_copy_recovers_the_original_exactly(name):
    model = build(name)
    randomize_state(model)
    spec = permutation.permutation_spec(model)
    a = permutation.get_weights(model)
    hidden = alignment.random_permutations(spec, 11)
    b = alignment.apply_permutation(a, spec, hidden)
    perms, info = alignment.weight_matching(spec, a, b, seed=0)
    assert info.converged
    for g in spec.groups:  # B's unit i is A's hidden[i]: the inverse aligns it
        np.testing.assert_array_equal(hidden[g][perms[g]], np.arange(spec.groups[g]))
    aligned = alignment.apply_permutation(b, spec, perms)
    assert all(np.array_equal(aligned[n], a[n]) for n in a)

    # The midpoint of A and unaligned B is another network; aligned, it is A.
    x = images(model)
    before = logits(model, x)
    permutation.set_weights(model, {n: interpolation.lerp(a[n], b[n], 0.5) for n in a})
    assert not np.allclose(logits(model, x), before, atol=1e-3)
    permutation.set_weights(model, {n: interpolation.lerp(a[n], aligned[n], 0.5) for n in a})
    np.testing.assert_array_equal(logits(model, x), before)


def test_weight_names_are_the_pruning_wrappers_keys():
    model = wrappers.wrap_model(build("conv_bn_for_tests"))
    names = permutation.weight_variables(model)
    for key, (weight, mask) in wrappers.pruning_vars(model).items():
        assert names[key] is weight
        assert names[key.replace("/kernel", "/mask")] is mask
    assert names["bn/moving_mean"] is model.get_layer("bn").moving_mean
