"""Several runs at once on one machine or device, as JSON: total examples/s.

    python benchmarks/packing.py [--model=lenet_300_100] [--runs=1,2,4] [--rounds=2]
        [--window_s=8] [--shapes=full|tiny]

For each round and each N in ``--runs``, times N runs of ``--model`` on
synthetic data over the same window, two ways: N processes at once (each
its own TensorFlow; a GPU's memory grows as needed), and N runs stepped
together in one compiled loop in one process (``tf_lottery.training.packed``).
N=1 is one run alone. Rounds interleave the ways, so that a shared
machine's load falls on all of them alike. ``--shapes=full`` is the model's
real batch and image size (device_check's GPU mode), ``tiny`` its CPU mode.
The processes are ``benchmarks/device_check.py``'s packing children.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import device_check  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "lenet_300_100", "A model of device_check.MODELS.")
flags.DEFINE_list("runs", ["1", "2", "4"], "Numbers of runs at once.")
flags.DEFINE_integer("rounds", 2, "Interleaved rounds.")
flags.DEFINE_float("window_s", 8.0, "Seconds each timing window lasts.")
flags.DEFINE_enum("shapes", "full", ["full", "tiny"], "Batch and image size.")
flags.DEFINE_float("timeout_s", 180.0, "Seconds one measurement may take.")


def main(argv: list[str]) -> None:
    del argv
    mode = "gpu" if FLAGS.shapes == "full" else "cpu"
    figures: dict[str, list] = {}
    for _ in range(FLAGS.rounds):
        for n in (int(r) for r in FLAGS.runs):
            ways = [("alone", 1)] if n == 1 else [("processes", n), ("one_loop", n)]
            for way, count in ways:
                deadline = time.time() + FLAGS.timeout_s
                if way == "one_loop":
                    got = device_check._one_graph(FLAGS.model, count, FLAGS.window_s, mode,
                                                  deadline)
                else:
                    got = device_check._packed(FLAGS.model, count, FLAGS.window_s, mode,
                                               deadline)
                key = "alone" if way == "alone" else f"{n}_{way}"
                figures.setdefault(key, []).append(got.get("total_examples_per_sec", got))
    alone = [x for x in figures.get("alone", []) if isinstance(x, float)]
    ratios = {}
    for key, values in figures.items():
        numbers = [x for x in values if isinstance(x, float)]
        if alone and numbers and key != "alone":
            ratios[key] = round(sum(numbers) / len(numbers) / (sum(alone) / len(alone)), 3)
    print(json.dumps({"model": FLAGS.model, "shapes": FLAGS.shapes,
                      "window_s": FLAGS.window_s, "total_examples_per_sec": figures,
                      "mean_over_alone": ratios, "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    app.run(main)
