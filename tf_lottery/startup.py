"""Start-up milestones: how long a launch took to reach its first training step.

A launch marks each milestone the first time it reaches it (one clock read);
when its first training loop returns, one log line

    startup: {"first_loop_steps": 25, "since_start_s": {"main": 2.41, ...}, ...}

gives the seconds from the process's start to each milestone, in the order
reached. ``benchmarks/startup.py`` parses that line. The milestones of
``tf_lottery.main``, in order:

  main          module imports done, ``main()`` entered
  experiment    the config parsed and the experiment's module imported
  strategy      the tf.distribute strategy built
  data          the input pipeline built (the dataset in memory)
  claimed       the lease taken and the model_dir claimed
  model         the first Trainer built (model, optimizer, checkpoint)
  first_loop    its first training loop called (after resume, W_0 saved)
  first_loop_done  that loop returned: traced, its steps run
"""

from __future__ import annotations

import json
import os
import time

from absl import logging

LOG_PREFIX = "startup: "

_marks: dict[str, float] = {}
_notes: dict[str, object] = {}
_reported = False


def _process_age_s() -> float | None:
    """Seconds since this process started (Linux), else None."""
    try:
        with open("/proc/self/stat") as f:
            # Field 22 (starttime, clock ticks after boot); the command name
            # (field 2) may hold spaces, so count from its closing bracket.
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


# Wall time of the process's start, or (elsewhere than Linux) of this import.
_age = _process_age_s()
PROCESS_START = time.time() - (_age or 0.0)


def mark(name: str) -> None:
    """Records the first time this process reaches milestone ``name``."""
    _marks.setdefault(name, time.time())


def note(key: str, value: object) -> None:
    """Adds a fact to the ``startup`` line (e.g. where the data came from)."""
    _notes.setdefault(key, value)


def marks() -> dict[str, float]:
    """Seconds from the process's start to each milestone reached so far."""
    return {k: round(v - PROCESS_START, 3) for k, v in _marks.items()}


def report(**extra) -> None:
    """Logs the milestones once per process (the ``startup:`` line)."""
    global _reported
    if _reported:
        return
    _reported = True
    logging.info("%s%s", LOG_PREFIX, json.dumps(
        {"since_start_s": marks(), "process_start": round(PROCESS_START, 3),
         **_notes, **extra}))


def timed_first_loop(loop):
    """``loop`` (a training loop: ``(iterator, num_steps) -> tensors``), whose
    first call is marked (``first_loop``, ``first_loop_done``) and reported."""

    def call(iterator, num_steps):
        if _reported:
            return loop(iterator, num_steps)
        mark("first_loop")
        out = loop(iterator, num_steps)
        # Wait for the steps themselves, not just their dispatch.
        first = out[0] if isinstance(out, tuple | list) else out
        first.numpy()
        mark("first_loop_done")
        report(first_loop_steps=int(num_steps))
        return out

    return call
