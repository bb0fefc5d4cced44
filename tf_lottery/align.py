"""``python -m tf_lottery.align --flagfile=<recipe> --checkpoint_a=P --checkpoint_b=Q``.

Barriers between two trained networks before and after aligning B's hidden
units to A's by weight matching (``stability.aligned_paths``). The recipe
flags say which model the checkpoints hold, which data to evaluate on, and
``--interpolation_points`` / ``--bn_mode``; ``--model_dir`` is not used
(default: the directory of --checkpoint_b). ``--aligned_out=PREFIX`` also
writes the aligned B as a checkpoint.
"""

from __future__ import annotations

import tf_lottery  # noqa: F401  (selects Keras 2 before TensorFlow loads)

# isort: split

import dataclasses
import json
import os
import sys

from absl import app, flags, logging

from tf_lottery import compose, experiments
from tf_lottery import config as config_lib
from tf_lottery.config.experiments import InstabilityConfig
from tf_lottery.config.knobs import FlagReader
from tf_lottery.errors import ConfigError
from tf_lottery.pruning import wrappers
from tf_lottery.stability import aligned_paths
from tf_lottery.training import strategy as strategy_lib
from tf_lottery.training.trainer import Trainer

config_lib.define_flags()
flags.DEFINE_string("checkpoint_a", None, "Align: checkpoint prefix of network A.")
flags.DEFINE_string("checkpoint_b", None, "Align: checkpoint prefix of network B, "
                    "the one permuted.")
flags.DEFINE_string("aligned_out", None, "Align: write the aligned B to this prefix.")
flags.DEFINE_integer("align_seed", 0, "Align: seed of the order groups are matched in.")
flags.DEFINE_integer("align_max_iter", 100, "Align: most passes of weight matching.")
FLAGS = flags.FLAGS


def with_path_knobs(config: config_lib.ExperimentConfig) -> config_lib.ExperimentConfig:
    """``config`` with the instability section, whatever ``--experiment`` says.

    Aligning two checkpoints always ends in a path evaluation, whose knobs
    (--interpolation_points, --bn_mode, --bn_recompute_batches) live in the
    instability section; a train or plain IMP recipe does not carry it.
    """
    if any(s.section == "instability" for s in config.sections):
        return config
    section = InstabilityConfig.from_flags(FlagReader(FLAGS), {})
    return dataclasses.replace(config, sections=(*config.sections, section))


def require_checkpoints() -> None:
    """--checkpoint_a and --checkpoint_b are given; --model_dir defaults to
    --checkpoint_b's directory (the recipe's flags need one; nothing is
    written there)."""
    for flag in ("checkpoint_a", "checkpoint_b"):
        if not FLAGS[flag].value:
            raise ConfigError(f"--{flag} is required: a checkpoint prefix")
    if not FLAGS.model_dir:
        FLAGS.model_dir = os.path.dirname(FLAGS.checkpoint_b) or "."


def run(config: config_lib.ExperimentConfig) -> dict:
    """Builds the recipe's trainer (pruning wrappers for IMP runs) and aligns."""
    strategy = strategy_lib.make_strategy(config.runtime)
    hooks = (wrappers.masked_training(config.pruning.exclude)
             if experiments.get(config.experiment).networks.masked else None)
    trainer = Trainer(config, strategy, compose.make_pipeline(config), hooks)
    return aligned_paths.aligned_barriers(
        trainer, config, FLAGS.checkpoint_a, FLAGS.checkpoint_b, seed=FLAGS.align_seed,
        max_iter=FLAGS.align_max_iter, aligned_out=FLAGS.aligned_out)


def summary(results: dict) -> str:
    m = results["matching"]
    lines = [f"weight matching: {m['groups']} groups, {m['iterations']} passes, "
             f"{m['wall_time_s']:.2f} s"]
    for path in ("raw", "aligned"):
        b, lb = results[path]["barrier"], results[path]["loss_barrier"]
        lines.append(f"{path:>7} barrier: test {100 * b['test']:6.2f}%  "
                     f"train {100 * b['train']:6.2f}%  | loss barrier: test "
                     f"{lb['test']:.4f}  train {lb['train']:.4f}")
    return "\n".join(f"tf_lottery.align: {line}" for line in lines)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.INFO)
    try:
        require_checkpoints()
        results = run(with_path_knobs(config_lib.config_from_flags()))
    except ConfigError as e:
        print(f"tf_lottery.align: error: {e}", file=sys.stderr)
        return 2
    print(summary(results))
    print(json.dumps({k: results[k] for k in ("matching", "bn_mode", "aligned_checkpoint")}
                     | {p: {"barrier": results[p]["barrier"],
                            "loss_barrier": results[p]["loss_barrier"]}
                        for p in ("raw", "aligned")}))
    return 0


if __name__ == "__main__":
    app.run(main)
