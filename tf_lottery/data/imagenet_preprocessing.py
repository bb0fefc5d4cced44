"""ImageNet preprocessing of the two recipes, from JPEG bytes, with stateless randomness.

``--augment`` names the recipe for an ImageNet-like (streamed) dataset:

- ``inception`` (Szegedy et al. 2016; TF-slim / tensorflow/models
  ``inception_preprocessing``): a random distorted bounding box covering at
  least 10 % of the object (the whole image: TFDS's imagenet2012 has no
  boxes) with aspect ratio in [3/4, 4/3] and 5-100 % of the area (100
  attempts, else the whole image), resized bilinearly to size x size, a
  random horizontal flip, and colour distortion -- brightness (max delta
  32/255), saturation [0.5, 1.5], hue (max delta 0.2) and contrast
  [0.5, 1.5] in one of the reference code's two orders, picked per example
  -- clipped to [0, 1]. Evaluation: the central 87.5 % of each side,
  resized to size x size. Pixels are scaled to [-1, 1], as Keras'
  InceptionV3 expects. Default size 299.
- ``resnet`` (torchvision's recipe, which the paper's framework open_lth
  uses): a random crop of 8-100 % of the area with aspect ratio in
  [3/4, 4/3] (10 attempts, else the whole image), resized bilinearly to
  size x size, and a random horizontal flip. Evaluation: the central square
  of side 0.875 x the shorter side (224/256: "resize to 256, center crop
  224"), resized to size x size. Pixels are standardized with ImageNet's
  channel mean and std. Default size 224.
- ``none``: the recipe's evaluation preprocessing, also for training.

The random crops are decoded with ``decode_and_crop_jpeg`` (only the crop
is decoded); images in another encoding (a TFDS dataset outside the registry
storing PNG) are decoded whole and then cropped, with the same windows.
Every random draw is stateless and keyed by the example's own seed,
``example_seed(augment_seed, step, slot)``, where ``slot`` is the example's
position in the *global* batch of ``step``: an augmentation
depends on (augment_seed, step, slot) only, never on the number of
replicas, hosts or tf.data threads.

Deviations from the references, all for determinism or simplicity: the
reference Inception code also picks one of four resize methods per image
(here always bilinear), and torchvision falls back to a central crop (not
the whole image) after 10 failed attempts and samples the aspect ratio
log-uniformly (TF's sampler is uniform).
"""

from __future__ import annotations

import tensorflow as tf

RECIPES = ("inception", "resnet")
DEFAULT_SIZE = {"inception": 299, "resnet": 224}
EVAL_CROP_FRACTION = 0.875  # 224 / 256 and slim's central_fraction
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)

# (min_object_covered, area_range, max_attempts) of the random crop.
_CROP = {
    "inception": (0.1, (0.05, 1.0), 100),
    "resnet": (0.0, (0.08, 1.0), 10),
}
_ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
_NUM_SEEDS = 7


def example_seed(augment_seed, step, slot) -> tf.Tensor:
    """The [2] int64 seed of one example: (augment_seed, step) folded with slot."""
    base = tf.stack([tf.cast(augment_seed, tf.int64), tf.cast(step, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(slot, tf.int64))


def _shape(encoded: tf.Tensor, jpeg: bool) -> tf.Tensor:
    if jpeg:
        return tf.io.extract_jpeg_shape(encoded)
    return tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False))


def _decode_window(encoded: tf.Tensor, window: tf.Tensor, jpeg: bool) -> tf.Tensor:
    """The crop [y, x, height, width] of an image; only the crop of a JPEG is decoded."""
    if jpeg:
        return tf.io.decode_and_crop_jpeg(encoded, window, channels=3)
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.slice(image, tf.stack([window[0], window[1], 0]),
                    tf.stack([window[2], window[3], 3]))


def _random_crop(jpeg: tf.Tensor, recipe: str, seed: tf.Tensor,
                 is_jpeg: bool = True) -> tf.Tensor:
    min_covered, area_range, attempts = _CROP[recipe]
    shape = _shape(jpeg, is_jpeg)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=min_covered, aspect_ratio_range=_ASPECT_RATIO_RANGE,
        area_range=area_range, max_attempts=attempts,
        use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    return _decode_window(jpeg, window, is_jpeg)


def _center_crop(jpeg: tf.Tensor, recipe: str, is_jpeg: bool = True) -> tf.Tensor:
    shape = _shape(jpeg, is_jpeg)
    height, width = shape[0], shape[1]
    if recipe == "inception":
        crop_h = tf.cast(tf.round(tf.cast(height, tf.float32) * EVAL_CROP_FRACTION), tf.int32)
        crop_w = tf.cast(tf.round(tf.cast(width, tf.float32) * EVAL_CROP_FRACTION), tf.int32)
    else:
        side = tf.cast(tf.round(
            tf.cast(tf.minimum(height, width), tf.float32) * EVAL_CROP_FRACTION), tf.int32)
        crop_h = crop_w = side
    crop_h, crop_w = tf.maximum(crop_h, 1), tf.maximum(crop_w, 1)
    window = tf.stack([(height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w])
    return _decode_window(jpeg, window, is_jpeg)


def _resize(image_uint8: tf.Tensor, size: int) -> tf.Tensor:
    """Bilinear resize to size x size, float32 in [0, 1]."""
    image = tf.image.resize(tf.cast(image_uint8, tf.float32) / 255.0, [size, size],
                            method="bilinear")
    return tf.clip_by_value(image, 0.0, 1.0)


def _distort_color(image: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
    """The reference Inception colour distortion in one of its two orders."""

    def brightness(x):
        return tf.image.stateless_random_brightness(x, 32.0 / 255.0, seeds[0])

    def saturation(x):
        return tf.image.stateless_random_saturation(x, 0.5, 1.5, seeds[1])

    def hue(x):
        return tf.image.stateless_random_hue(x, 0.2, seeds[2])

    def contrast(x):
        return tf.image.stateless_random_contrast(x, 0.5, 1.5, seeds[3])

    order = tf.random.stateless_uniform([], seeds[4], maxval=2, dtype=tf.int32)
    image = tf.cond(
        tf.equal(order, 0),
        lambda: contrast(hue(saturation(brightness(image)))),
        lambda: hue(saturation(contrast(brightness(image)))))
    return tf.clip_by_value(image, 0.0, 1.0)


def _finish(image: tf.Tensor, recipe: str) -> tf.Tensor:
    """[0, 1] -> the model's input scale."""
    if recipe == "inception":
        return (image - 0.5) * 2.0
    return (image - tf.constant(MEAN_RGB)) / tf.constant(STD_RGB)


def preprocess_train(jpeg: tf.Tensor, recipe: str, size: int, seed: tf.Tensor,
                     is_jpeg: bool = True) -> tf.Tensor:
    """One training example: JPEG bytes (other encodings: ``is_jpeg=False``,
    decoded whole, then cropped) -> float32 [size, size, 3]."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown ImageNet recipe {recipe!r} (known: {RECIPES})")
    seeds = tf.random.experimental.stateless_split(seed, _NUM_SEEDS)
    image = _resize(_random_crop(jpeg, recipe, seeds[0], is_jpeg), size)
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if recipe == "inception":
        image = _distort_color(image, seeds[2:])
    return _finish(image, recipe)


def preprocess_eval(jpeg: tf.Tensor, recipe: str, size: int, is_jpeg: bool = True
                    ) -> tf.Tensor:
    """One evaluation example: JPEG (or, ``is_jpeg=False``, PNG...) bytes ->
    float32 [size, size, 3]."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown ImageNet recipe {recipe!r} (known: {RECIPES})")
    return _finish(_resize(_center_crop(jpeg, recipe, is_jpeg), size), recipe)
