"""Seeded, stateless image preprocessing and augmentation.

The random draws for step ``s`` come from ``stateless_uniform`` keyed by
(augment_seed, s) over the *global* batch; a replica slices its own rows. So
an augmentation depends on the seed, the step and the example's slot in the
global batch only -- not on the number of replicas or input pipelines -- and
changing ``augment_seed`` alone changes augmentation and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

PAD = 4  # pixels of zero padding before the random crop (He et al. 2016)


def augment_draws(
    augment_seed: tf.Tensor, step: tf.Tensor, global_batch: int, num_draws: int
) -> tf.Tensor:
    """Uniform [0, 1) draws, shape [global_batch, num_draws], for one step."""
    seed = tf.stack([tf.cast(augment_seed, tf.int64), tf.cast(step, tf.int64)])
    return tf.random.stateless_uniform(
        [global_batch, num_draws], seed=seed, alg="philox"
    )


def normalize(
    images_uint8: tf.Tensor,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> tf.Tensor:
    """uint8 -> float32 in [0, 1], then per-channel standardization if given."""
    x = tf.cast(images_uint8, tf.float32) / 255.0
    if mean is not None:
        x = (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
    return x


def flip(images: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
    """Horizontal flip of the examples whose draw is < 0.5."""
    do_flip = draws < 0.5
    return tf.where(do_flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def pad_crop(images: tf.Tensor, draw_y: tf.Tensor, draw_x: tf.Tensor) -> tf.Tensor:
    """Zero-pad by ``PAD`` and crop back to the input size at drawn offsets.

    The pipeline applies it to raw uint8 pixels, so the padding is black
    before normalization, as torchvision's ``RandomCrop`` in open_lth. The
    (2 * PAD + 1)^2 = 81 offsets are equally likely.
    """
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    span = 2 * PAD + 1
    oy = tf.minimum(tf.cast(draw_y * span, tf.int32), span - 1)
    ox = tf.minimum(tf.cast(draw_x * span, tf.int32), span - 1)
    rows = oy[:, None] + tf.range(height)[None, :]
    cols = ox[:, None] + tf.range(width)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def augment(images: tf.Tensor, kind: str, draws: tf.Tensor) -> tf.Tensor:
    """Applies ``kind`` ('none', 'flip', 'crop_flip') with per-example draws.

    ``draws`` has shape [batch, 3]: column 0 decides the flip, 1 and 2 the
    crop offsets.
    """
    if kind == "none":
        return images
    if kind == "crop_flip":
        images = pad_crop(images, draws[:, 1], draws[:, 2])
    if kind in ("flip", "crop_flip"):
        return flip(images, draws[:, 0])
    raise ValueError(f"unknown augmentation {kind!r}")
