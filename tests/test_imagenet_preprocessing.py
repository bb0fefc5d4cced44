"""ImageNet preprocessing: shapes, value ranges, seeded determinism, the eval crops."""

import numpy as np
import pytest
import tensorflow as tf

from tf_lottery.data import imagenet_preprocessing as prep


def jpeg(height=90, width=60, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    # Full-resolution chroma: a crop decodes to exactly the pixels of a full decode.
    return tf.io.encode_jpeg(pixels, quality=95, chroma_downsampling=False)


@pytest.mark.parametrize("recipe", prep.RECIPES)
def test_shapes_ranges_and_seeded_determinism(recipe):
    image = jpeg()
    seed = prep.example_seed(3, 17, 5)
    a = prep.preprocess_train(image, recipe, 75, seed).numpy()
    b = prep.preprocess_train(image, recipe, 75, seed).numpy()
    other = prep.preprocess_train(image, recipe, 75, prep.example_seed(3, 17, 6)).numpy()
    evaluated = prep.preprocess_eval(image, recipe, 75).numpy()
    for x in (a, evaluated):
        assert x.shape == (75, 75, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, other)
    np.testing.assert_array_equal(evaluated, prep.preprocess_eval(image, recipe, 75).numpy())
    if recipe == "inception":
        lo, hi = -1.0, 1.0
    else:
        lo = min((0 - m) / s for m, s in zip(prep.MEAN_RGB, prep.STD_RGB, strict=True))
        hi = max((1 - m) / s for m, s in zip(prep.MEAN_RGB, prep.STD_RGB, strict=True))
    for x in (a, other, evaluated):
        assert lo - 1e-5 <= x.min() and x.max() <= hi + 1e-5


def test_example_seed_depends_on_seed_step_and_slot():
    seeds = {tuple(prep.example_seed(*args).numpy())
             for args in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]}
    assert len(seeds) == 4
    np.testing.assert_array_equal(prep.example_seed(4, 5, 6), prep.example_seed(4, 5, 6))


def test_random_crops_vary_over_seeds_and_flip_about_half():
    # A left-right gradient: a flip reverses the sign of the horizontal slope.
    ramp = np.tile(np.linspace(0, 255, 80, dtype=np.float32)[None, :, None], (80, 1, 3))
    image = tf.io.encode_jpeg(ramp.astype(np.uint8), quality=100)
    slopes, crops = [], set()
    for slot in range(40):
        x = prep.preprocess_train(image, "resnet", 32, prep.example_seed(0, 0, slot)).numpy()
        slopes.append(x[:, -1].mean() - x[:, 0].mean())
        crops.add(round(float(np.abs(x[:, -1] - x[:, 0]).mean()), 3))
    flipped = sum(s < 0 for s in slopes)
    assert 10 <= flipped <= 30
    assert len(crops) > 20  # different crop widths give different contrasts


def test_resnet_eval_is_the_central_square_of_0_875_the_shorter_side():
    # 64 rows x 128 columns; the central 56 x 56 square spans columns 36..91.
    pixels = np.zeros((64, 128, 3), np.uint8)
    pixels[:, 36:92] = 255
    image = tf.io.encode_jpeg(pixels, quality=100)
    x = prep.preprocess_eval(image, "resnet", 56).numpy()
    white = (1.0 - np.array(prep.MEAN_RGB)) / np.array(prep.STD_RGB)
    np.testing.assert_allclose(x[4:-4, 4:-4], np.broadcast_to(white, (48, 48, 3)), atol=0.1)


def test_inception_eval_is_slims_central_crop_then_resize():
    image = jpeg(height=80, width=160, seed=1)
    reference = tf.image.central_crop(tf.io.decode_jpeg(image), 0.875)  # 70 x 140
    reference = tf.image.resize(tf.cast(reference, tf.float32) / 255.0, [75, 75])
    np.testing.assert_allclose(prep.preprocess_eval(image, "inception", 75).numpy(),
                               (reference.numpy() - 0.5) * 2.0, atol=1e-5)
