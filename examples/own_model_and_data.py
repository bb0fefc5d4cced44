"""Your own network on your own data, from Python: the instability analysis of a small CNN.

    python examples/own_model_and_data.py [--workdir=DIR] [--train_steps=N]

The data are a TFDS dataset defined here (``ToyQuadrants``: 16x16 grey
images whose label is the bright quadrant, generated, nothing downloaded)
and prepared into ``DIR/data`` once; any prepared TFDS image-classification
dataset is used the same way, by its builder name. The network is a plain
tf_keras builder function handed to ``tf_lottery.make_config`` directly.
Prints the barrier table: the error barrier between two children trained
from W_k, for each rewind step k.
"""

import tf_lottery  # first: selects Keras 2 (tf_keras) before TensorFlow loads

# isort: split

import argparse
import os
import tempfile

import numpy as np
import tensorflow_datasets as tfds
import tf_keras


class ToyQuadrants(tfds.core.GeneratorBasedBuilder):
    """16x16 noise images; the label (0-3) is the quadrant made bright."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(16, 16, 1)),
                "label": tfds.features.ClassLabel(num_classes=4)}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(600, seed=0),
                "test": self._generate_examples(200, seed=1)}

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        for i in range(n):
            label = int(rng.integers(4))
            image = rng.integers(0, 90, (16, 16, 1)).astype(np.uint8)
            row, col = divmod(label, 2)
            image[row * 8:(row + 1) * 8, col * 8:(col + 1) * 8] += 120
            yield i, {"image": image, "label": label}


def small_cnn(num_classes, image_shape):
    """The builder: (num_classes, image_shape) -> a tf_keras.Model giving logits."""
    inputs = tf_keras.Input(image_shape)
    x = tf_keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = tf_keras.layers.MaxPooling2D()(x)
    x = tf_keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(num_classes, name="logits")(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None, help="default: a temporary folder")
    parser.add_argument("--train_steps", type=int, default=60)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="tf_lottery_example_")
    data_dir = os.path.join(workdir, "data")
    tfds.disable_progress_bar()
    tfds.builder("toy_quadrants", data_dir=data_dir).download_and_prepare()

    config = tf_lottery.make_config(
        "instability", model_dir=os.path.join(workdir, "run"), model=small_cnn,
        dataset="toy_quadrants", data_dir=data_dir, optimizer="adam",
        learning_rate=3e-3, batch_size=30, train_steps=args.train_steps,
        rewind_steps=[0, args.train_steps // 3], children=2, interpolation_points=5,
        eval_batch_size=100, train_eval_examples=200, steps_per_loop=10,
        log_every=1000)
    results = tf_lottery.run(config)
    print(results.table)
    print(f"run in {config.runtime.model_dir}; read it back with "
          f"tf_lottery.load({config.runtime.model_dir!r})")


if __name__ == "__main__":
    main()
