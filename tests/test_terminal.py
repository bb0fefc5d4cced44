"""What the terminal shows: a fast grouped --help, no checkpoint-sharding noise,
means without a spread where n = 1."""

import logging as std_logging
import os
import subprocess
import sys

from absl import logging

from tf_lottery import quiet
from tf_lottery.config import experiments
from tf_lottery.core.records import Stat
from tf_lottery.reporting import console

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_lists_every_experiment_and_tf_lotterys_flag_groups():
    proc = subprocess.run([sys.executable, "-m", "tf_lottery.main", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for name in experiments.names():
        assert any(line.strip().startswith(f"{name}: ") for line in lines), name
    groups = [line.split(":")[0] for line in lines if line and not line.startswith(" ")
              and ":" in line and line.split(":")[0].isidentifier()]
    # The add-ons to the instability analysis (planes, curves) sit right after it.
    assert groups == ["model", "data", "train", "optimizer", "schedule", "runtime",
                      "instability", "surface", "curve", "pruning", "onset", "launch"]
    for flag in ("--imp_levels", "--rewind_steps", "--children", "--model_dir",
                 "--force_unlock", "--plane", "--centroid", "--curve_steps"):
        assert any(line.startswith(f"  {flag} (default: ") for line in lines), flag
    # The same text for --helpshort; absl's own listing stays on --helpfull.
    short = subprocess.run([sys.executable, "-m", "tf_lottery.main", "--helpshort"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert short.stdout == proc.stdout


def test_checkpoint_sharding_lines_are_dropped_and_nothing_else():
    quiet.install()
    quiet.install()  # idempotent
    seen = []

    class Keep(std_logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    absl_logger = logging.get_absl_logger()
    absl_logger.addHandler(handler)
    level = logging.get_verbosity()
    logging.set_verbosity(logging.INFO)
    try:
        logging.info("Sharding callback duration: %s microseconds", 41)
        logging.info("IMP level %d: density %.4f", 2, 0.64)
    finally:
        absl_logger.removeHandler(handler)
        logging.set_verbosity(level)
    assert seen == ["IMP level 2: density 0.6400"]


def test_a_single_value_has_no_spread():
    assert console.cell(Stat(0.0123, 0.0, 1)) == "1.23%"
    assert console.cell(Stat(0.0123, 0.004, 3)) == "1.23% ± 0.40%"
    assert console.cell(None) == console.NONE
