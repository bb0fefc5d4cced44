"""``python -m tf_lottery.curve --flagfile=<recipe> --checkpoint_a=P --checkpoint_b=Q``.

The fitted curve between any two trained networks (``stability.curves``),
beside their straight line: the recipe flags say which model the
checkpoints hold (an IMP recipe: masked networks, whose pruned weights stay
0 along the curve), which data to train the bend on and to evaluate on,
``--interpolation_points`` / ``--bn_mode`` / ``--bn_recompute_batches``,
and the fit's ``--curve_steps``, ``--curve_learning_rate`` and
``--curve_checkpoint_every``. The fit and its record go to ``--curve_out``
(default: ``curve/`` in the directory of --checkpoint_b): ``curve.json``
(``records.CurveRecord``) and the bend's checkpoints in ``curve/``; a fit
killed in the middle resumes when the command is run again, and a finished
one is printed again without work.
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (selects Keras 2 before TensorFlow loads)

# isort: split

import dataclasses
import json
import os
import sys

import tensorflow as tf
from absl import app, flags, logging

from tf_lottery import align, compose, experiments
from tf_lottery import config as config_lib
from tf_lottery.config.experiments import CurveConfig
from tf_lottery.config.knobs import FlagReader
from tf_lottery.core import records
from tf_lottery.errors import ConfigError
from tf_lottery.experiments import curve_pairs, evaluation, toolkit
from tf_lottery.pruning import wrappers
from tf_lottery.stability import curves
from tf_lottery.stability.path_evaluator import PathEvaluator
from tf_lottery.training import strategy as strategy_lib
from tf_lottery.training.trainer import Trainer

flags.DEFINE_string("curve_out", None, "Curve: directory of the fit and its record "
                    "(default: curve/ beside --checkpoint_b).")
FLAGS = flags.FLAGS
CURVE_FILE = "curve.json"


def with_curve_knobs(config: config_lib.ExperimentConfig) -> config_lib.ExperimentConfig:
    """``config`` with the path knobs (``align.with_path_knobs``) and the curve
    section, whatever ``--experiment`` and ``--curve`` say."""
    config = align.with_path_knobs(config)
    section = CurveConfig.from_flags(FlagReader(FLAGS), {})
    rest = tuple(s for s in config.sections if s.section != "curve")
    return dataclasses.replace(config, sections=(
        *rest, dataclasses.replace(section, enabled=True)))


def run(config: config_lib.ExperimentConfig, checkpoint_a: str, checkpoint_b: str,
        out_dir: str) -> tuple[records.PairRecord, records.CurveRecord]:
    """The line and the fitted curve between the two checkpoints."""
    for flag, path in (("checkpoint_a", checkpoint_a), ("checkpoint_b", checkpoint_b)):
        if not tf.io.gfile.exists(path + ".index"):
            raise ConfigError(f"--{flag}={path}: no such checkpoint (give its prefix, "
                              "e.g. <run>/final/ckpt, whose .index file exists)")
    strategy = strategy_lib.make_strategy(config.runtime)
    hooks = (wrappers.masked_training(config.pruning.exclude)
             if experiments.get(config.experiment).networks.masked else None)
    trainer = Trainer(config, strategy, compose.make_pipeline(config), hooks)
    line = evaluation.evaluate_pair(PathEvaluator.for_config(trainer, config), checkpoint_a,
                                    checkpoint_b, os.path.join(out_dir, "line.json"), None,
                                    label="line", root=out_dir)
    ic = config.instability
    fitter = curves.BendFitter(trainer, curve_pairs.fit_settings(config))
    evaluator = curves.curve_evaluator(trainer, ic.interpolation_points,
                                       ic.bn_recompute_batches,
                                       toolkit.recipe_noise(config))
    curve = curve_pairs.curve_pair(fitter, evaluator, checkpoint_a, checkpoint_b,
                                   os.path.join(out_dir, CURVE_FILE), root=out_dir, line=line)
    return line, curve


def summary(line: records.PairRecord, curve: records.CurveRecord) -> str:
    rows = [("line", line.barrier, line.loss_barrier or {}),
            ("curve", curve.barrier, curve.loss_barrier)]
    out = [f"tf_lottery.curve: {name:>5} barrier: test {100 * b['test']:6.2f}%  train "
           f"{100 * b['train']:6.2f}%  | loss barrier: test {lb.get('test', float('nan')):.4f}"
           f"  train {lb.get('train', float('nan')):.4f}" for name, b, lb in rows]
    if curve.fit_loss:
        out.append(f"tf_lottery.curve: fit: {curve.steps} steps at learning rate "
                   f"{curve.learning_rate:g}; loss at W(t) {curve.fit_loss[0][1]:.4f} "
                   f"(first stretch) -> {curve.fit_loss[-1][1]:.4f} (last)")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"tf_lottery.curve: error: unexpected argument(s) {' '.join(argv[1:])!r}: "
              "every setting is a flag", file=sys.stderr)
        return 2
    logging.set_verbosity(logging.INFO)
    try:
        align.require_checkpoints()
        out_dir = FLAGS.curve_out or os.path.join(os.path.dirname(FLAGS.checkpoint_b) or ".",
                                                  "curve")
        line, curve = run(with_curve_knobs(config_lib.config_from_flags()),
                          FLAGS.checkpoint_a, FLAGS.checkpoint_b, out_dir)
    except ConfigError as e:
        print(f"tf_lottery.curve: error: {config_lib.cli_message(e)}", file=sys.stderr)
        return 2
    print(summary(line, curve))
    print(json.dumps({"line": {"barrier": line.barrier, "loss_barrier": line.loss_barrier},
                      "curve": {"barrier": curve.barrier, "loss_barrier": curve.loss_barrier,
                                "steps": curve.steps, "learning_rate": curve.learning_rate},
                      "record": os.path.join(out_dir, CURVE_FILE)}))
    return 0


if __name__ == "__main__":
    app.run(main)
