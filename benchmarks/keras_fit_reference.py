"""Reference: the paper's LeNet recipe with plain ``tf_keras`` ``model.fit``.

Prints JSON with the final test accuracy per seed, to compare against
``tf_lottery.main --flagfile=flags/lenet_fashion_mnist.cfg`` (which must land
in the same range if the engine is right). Reads the same TFDS data.

    python benchmarks/keras_fit_reference.py --seeds=0,1 [--data_dir=...]
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (Keras 2)

# isort: split

import json
import time

import numpy as np
import tf_keras
from absl import app, flags

from tf_lottery.data import registry, sources

flags.DEFINE_list("seeds", ["0"], "Seeds to run.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir.")
flags.DEFINE_string("tfds_manual_dir", "/usr/share/datasets/fashion-mnist", "Raw files.")
flags.DEFINE_integer("steps", 24000, "Training iterations (batch 60).")
FLAGS = flags.FLAGS


def main(_):
    data = sources.load_in_memory(
        registry.get("fashion_mnist"), FLAGS.data_dir, FLAGS.tfds_manual_dir)
    x = data.train_images.astype(np.float32) / 255.0
    xt = data.test_images.astype(np.float32) / 255.0
    out = []
    for seed in (int(s) for s in FLAGS.seeds):
        tf_keras.utils.set_random_seed(seed)
        model = tf_keras.Sequential([
            tf_keras.layers.Flatten(input_shape=(28, 28, 1)),
            tf_keras.layers.Dense(300, activation="relu"),
            tf_keras.layers.Dense(100, activation="relu"),
            tf_keras.layers.Dense(10)])
        model.compile(tf_keras.optimizers.Adam(1.2e-3),
                      tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        t0 = time.time()
        epochs = FLAGS.steps * 60 // len(x)
        model.fit(x, data.train_labels, batch_size=60, epochs=epochs, verbose=0)
        _, acc = model.evaluate(xt, data.test_labels, verbose=0)
        out.append({"seed": seed, "test_accuracy": round(float(acc), 4),
                    "seconds": round(time.time() - t0, 1)})
        print(json.dumps(out[-1]), flush=True)
    accs = [o["test_accuracy"] for o in out]
    print(json.dumps({"mean": float(np.mean(accs)), "min": min(accs), "max": max(accs)}))


if __name__ == "__main__":
    app.run(main)
