"""Wall time of weight matching on full-size networks with random weights, as JSON.

    python benchmarks/weight_matching.py [--models=lenet_300_100,resnet20] [--repeats=3]

For each model: W_A and W_B are two independent initializations (init
seeds 0 and 1) at the model's full input size, the situation of two
independently trained networks, where matching needs the most passes.
Reports the permutation-spec derivation time, the median wall time of
``alignment.weight_matching`` over ``--repeats`` runs, the passes it took
and the objective before and after. CPU only: matching is NumPy/SciPy on
the host whatever the accelerator.
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (Keras 2)

# isort: split

import json
import os
import platform
import statistics
import time

import numpy as np
import scipy
import tf_keras
from absl import app, flags

from tf_lottery.models import permutation, registry
from tf_lottery.stability import alignment

# The inputs the recipes use (flags/*.cfg); matching cost does not depend
# on them, only the parameter count does for Flatten-fed dense layers.
SHAPES = {"lenet_300_100": (28, 28, 1), "inception_v3": (299, 299, 3),
          "resnet50": (224, 224, 3)}

flags.DEFINE_list("models", ["lenet_300_100", "resnet20"], "Models to time.")
flags.DEFINE_integer("repeats", 3, "Timed runs per model (the median is reported).")
flags.DEFINE_integer("classes", 10, "Number of classes.")
FLAGS = flags.FLAGS


def build(name: str, classes: int, shape: tuple[int, int, int], seed: int):
    # Spec names must match between the two builds: keras.applications
    # (Inception-v3) names layers from a counter that clear_session resets.
    tf_keras.backend.clear_session()
    return registry.build_model(name, classes, shape, init_seed=seed)


def measure(name: str, repeats: int, classes: int) -> dict:
    shape = SHAPES.get(name, (32, 32, 3))
    model_a = build(name, classes, shape, 0)
    started = time.perf_counter()
    spec = permutation.permutation_spec(model_a)
    spec_s = time.perf_counter() - started
    a = permutation.get_weights(model_a)
    b = permutation.get_weights(build(name, classes, shape, 1))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        _, info = alignment.weight_matching(spec, a, b, seed=0)
        times.append(time.perf_counter() - started)
    return {
        "model": name,
        "input_shape": list(shape),
        "params": int(sum(np.size(w) for w in a.values())),
        "groups": len(spec.groups),
        "spec_s": round(spec_s, 4),
        "matching_s": round(statistics.median(times), 4),
        "matching_s_all": [round(t, 4) for t in times],
        "iterations": info.iterations,
        "converged": info.converged,
        "objective": [round(info.objective[0], 4), round(info.objective[-1], 4)],
    }


def main(argv: list[str]) -> None:
    del argv
    results = [measure(name, FLAGS.repeats, FLAGS.classes) for name in FLAGS.models]
    print(json.dumps({
        "benchmark": "weight_matching",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    app.run(main)
