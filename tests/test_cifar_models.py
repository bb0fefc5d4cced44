"""CIFAR ResNets and VGGs: the paper's sizes, open_lth's architecture and init.

Training under every strategy is in test_cifar_recipes (through the CLI path).
"""

import numpy as np
import pytest
import tf_keras

from tf_lottery.models import cifar_layers
from tf_lottery.models import registry as models

CIFAR = (32, 32, 3)


def trainable_count(model):
    return int(sum(int(np.prod(v.shape)) for v in model.trainable_variables))


@pytest.mark.parametrize("name, trainable, total, paper", [
    # trainable = open_lth's unit tests (PyTorch named_parameters); total adds
    # the BatchNorm moving mean and variance. paper: Frankle et al. 2020, Table 1.
    ("resnet20", 272_474, 274_042, 274_000),
    ("resnet110", 1_730_714, 1_739_002, None),
    ("vgg16", 14_728_266, 14_736_714, 14_700_000),
    ("vgg19", 20_040_522, 20_051_530, None),
])
def test_parameter_counts_and_output_shapes(name, trainable, total, paper):
    model = models.build_model(name, 10, CIFAR, init_seed=0)
    assert trainable_count(model) == trainable
    assert models.count_params(model) == total
    if paper:
        assert abs(total - paper) / paper < 0.01
    assert model.output_shape == (None, 10)
    assert model(np.zeros((2, *CIFAR), np.float32)).shape == (2, 10)


def test_resnet20_shape_and_projection_shortcuts():
    model = models.build_model("resnet20", 100, CIFAR, init_seed=0)
    assert model.output_shape == (None, 100)
    convs = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.Conv2D)]
    assert len(convs) == 19 + 2  # 1 + 9 blocks x 2 convs, plus two 1x1 shortcuts
    shortcuts = [c.name for c in convs if c.kernel_size == (1, 1)]
    assert shortcuts == ["stage2_block1_shortcut", "stage3_block1_shortcut"]
    assert all(not c.use_bias for c in convs)
    assert model.get_layer("stage1_block3_out").output_shape == (None, 32, 32, 16)
    assert model.get_layer("stage2_block1_out").output_shape == (None, 16, 16, 32)
    assert model.get_layer("stage3_block3_out").output_shape == (None, 8, 8, 64)


def test_strided_conv_is_centred_like_the_shortcut():
    """PyTorch padding=1: output (i, j) of the stride-2 conv sees input (2i, 2j)
    at the kernel's centre, the pixel the 1x1 stride-2 shortcut picks."""
    model = models.build_model("resnet20", 10, CIFAR, init_seed=0)
    conv = model.get_layer("stage2_block1_conv1")
    x = np.zeros((1, 32, 32, 16), np.float32)
    x[0, 10, 6, :] = 1.0  # an even pixel: (5, 3) after stride 2
    kernel = np.zeros(conv.kernel.shape, np.float32)
    kernel[1, 1, :, 0] = 1.0  # centre tap only
    conv.kernel.assign(kernel)
    out = conv(tf_keras.layers.ZeroPadding2D(1)(x)).numpy()[0, :, :, 0]
    assert out.shape == (16, 16)
    assert out[5, 3] == 16.0 and out.sum() == 16.0


def test_vgg16_has_13_convs_with_batchnorm_and_one_output_layer():
    model = models.build_model("vgg16", 10, CIFAR, init_seed=0)
    convs = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.Conv2D)]
    dense = [layer for layer in model.layers if isinstance(layer, tf_keras.layers.Dense)]
    assert [c.name for c in convs] == [f"conv{i}" for i in range(1, 14)]
    assert all(isinstance(model.get_layer(f"{c.name}_bn"),
                          tf_keras.layers.BatchNormalization) for c in convs)
    assert [d.name for d in dense] == ["logits"] and dense[0].kernel.shape == (512, 10)
    assert model.get_layer("conv13").output_shape == (None, 2, 2, 512)


def test_init_follows_open_lth():
    model = models.build_model("vgg16", 10, CIFAR, init_seed=0)
    # kaiming_normal_: untruncated normal, std sqrt(2 / fan_in); 2.4M samples.
    kernel = model.get_layer("conv13").kernel.numpy()
    assert kernel.std() == pytest.approx(np.sqrt(2 / (9 * 512)), rel=0.005)
    assert abs(kernel).max() > 4.5 * kernel.std()  # not truncated at 2 std
    # PyTorch default biases: uniform in +-1/sqrt(fan_in).
    bias = model.get_layer("conv13").bias.numpy()
    bound = 1 / np.sqrt(9 * 512)
    assert abs(bias).max() <= bound and abs(bias).max() > 0.9 * bound
    logits_bias = model.get_layer("logits").bias.numpy()
    assert abs(logits_bias).max() <= 1 / np.sqrt(512) and logits_bias.any()
    # BatchNorm: gamma ~ U[0, 1), beta 0, PyTorch's momentum and epsilon.
    gammas = np.concatenate([model.get_layer(f"conv{i}_bn").gamma.numpy()
                             for i in range(1, 14)])
    assert gammas.min() >= 0 and gammas.max() < 1
    assert gammas.mean() == pytest.approx(0.5, abs=0.02)  # 4,224 draws
    bn = model.get_layer("conv1_bn")
    assert not bn.beta.numpy().any()
    assert (bn.momentum, bn.epsilon) == (cifar_layers.BN_MOMENTUM, cifar_layers.BN_EPSILON)


def test_init_is_a_function_of_the_seed():
    a = models.build_model("resnet20", 10, CIFAR, init_seed=5).get_weights()
    b = models.build_model("resnet20", 10, CIFAR, init_seed=5).get_weights()
    c = models.build_model("resnet20", 10, CIFAR, init_seed=6).get_weights()
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a[0], c[0])
    # Each layer draws its own values (no initializer instance is reused).
    assert not np.array_equal(a[5], a[10])
