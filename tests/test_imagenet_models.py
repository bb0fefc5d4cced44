"""ImageNet models: parameter counts, ResNet-50 v1.5 strides, Inception's two heads,
cross-replica BatchNorm."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tf_lottery.errors import ConfigError
from tf_lottery.models import batchnorm, inception, registry


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_resnet50_has_the_papers_25_5m_parameters():
    model = registry.build_model("resnet50", 1000, (224, 224, 3), init_seed=0)
    assert trainable(model) == 25_557_032  # torchvision's resnet50, the paper's 25.5M
    assert registry.count_params(model) == 25_610_152  # + 53,120 BN moving statistics
    assert model.output_shape == (None, 1000)


def test_resnet50_is_v1_5_with_the_stride_on_the_3x3_conv():
    model = registry.build_model("resnet50", 10, (64, 64, 3), init_seed=0)
    for stage in (3, 4, 5):
        assert model.get_layer(f"conv{stage}_block1_1_conv").strides == (1, 1)
        assert model.get_layer(f"conv{stage}_block1_2_conv").strides == (2, 2)
        assert model.get_layer(f"conv{stage}_block1_0_conv").strides == (2, 2)
    assert model.get_layer("conv2_block1_2_conv").strides == (1, 1)
    assert not any(getattr(layer, "use_bias", False) for layer in model.layers
                   if isinstance(layer, tf_keras.layers.Conv2D))


def test_inception_v3_counts_without_and_with_the_auxiliary_head():
    base = inception.inception_v3_base(1000, (299, 299, 3))
    assert registry.count_params(base) == 23_851_784  # keras.applications InceptionV3
    model = registry.build_model("inception_v3", 1000, (299, 299, 3), init_seed=0)
    assert registry.count_params(model) == 27_179_376  # the paper's 27.1M
    aux_input = model.get_layer(inception.AUX_INPUT).output
    assert tuple(aux_input.shape[1:]) == (17, 17, 768)
    assert model.get_layer("aux_pool").pool_size == (5, 5)
    assert model.get_layer("aux_2_conv").kernel_size == (5, 5)


def test_inception_returns_logits_and_aux_in_training_and_logits_at_eval():
    model = registry.build_model("inception_v3", 7, (75, 75, 3), init_seed=0)
    x = tf.random.stateless_uniform([2, 75, 75, 3], seed=[1, 2], minval=-1, maxval=1)
    logits, aux_logits = model(x, training=True)
    assert logits.shape == aux_logits.shape == (2, 7)
    assert not np.allclose(logits.numpy(), aux_logits.numpy())
    eval_logits = model(x, training=False)
    assert isinstance(eval_logits, tf.Tensor) and eval_logits.shape == (2, 7)


def test_too_small_inputs_are_a_config_error():
    with pytest.raises(ConfigError, match="--image_size"):
        registry.build_model("inception_v3", 10, (64, 64, 3), init_seed=0)
    with pytest.raises(ConfigError, match="--image_size"):
        registry.build_model("resnet50", 10, (16, 16, 3), init_seed=0)


def _bn_model():
    inputs = tf_keras.Input((4, 4, 3))
    x = tf_keras.layers.Conv2D(5, 3, padding="same", name="conv")(inputs)
    return tf_keras.Model(inputs, tf_keras.layers.BatchNormalization(name="bn")(x))


def test_cross_replica_bn_uses_global_batch_statistics(mirrored):
    x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype(np.float32)
    x[4:] += 3.0  # the two replicas' halves have different statistics
    tf_keras.utils.set_random_seed(0)
    single = _bn_model()
    single(x, training=True)
    means = {}
    for synchronized in (False, True):
        with mirrored.scope():
            tf_keras.utils.set_random_seed(0)
            model = _bn_model()
            if synchronized:
                assert batchnorm.synchronize(model) == 1
        dataset = mirrored.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(x))
        mirrored.run(tf.function(lambda batch, m=model: m(batch, training=True)),
                     args=(next(iter(dataset)),))
        bn = model.get_layer("bn")
        # Each replica's own moving mean (the first) and their mean (on read).
        means[synchronized] = [v.numpy() for v in
                               mirrored.experimental_local_results(bn.moving_mean)]
    expected = single.get_layer("bn").moving_mean.numpy()
    np.testing.assert_allclose(means[True][0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(means[True][1], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(means[False][0], expected, atol=1e-3)
