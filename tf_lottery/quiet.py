"""Drops TensorFlow's log lines that say nothing to a researcher.

TensorFlow's checkpoint writer logs "Sharding callback duration: N
microseconds" at INFO on every save (a third of an instability run's log);
a filter on absl's logger drops such lines, and only those, so the log
keeps tf_lottery's progress and TensorFlow's warnings.
"""

from __future__ import annotations

import logging

from absl import logging as absl_logging

# Message templates (the ``msg`` before formatting) that are dropped.
NOISE = ("Sharding callback duration",)


class _Noise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(NOISE))


_FILTER = _Noise()


def install() -> None:
    """Filters the noise out of absl's logger (idempotent)."""
    logger = absl_logging.get_absl_logger()
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
