"""tf_lottery: instability analysis and IMP with rewinding for Keras/TensorFlow.

Importing this package selects Keras 2 (``tf_keras``) for ``tf.keras``: TFMOT
only supports Keras 2, and the choice must be made before TensorFlow loads.
So must the CPU numerics setting (``tf_lottery.numerics``), applied here too.
"""

import os

if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    if "tensorflow" in __import__("sys").modules:
        raise ImportError(
            "tf_lottery must be imported before tensorflow (or run with "
            "TF_USE_LEGACY_KERAS=1): it needs Keras 2 via tf_keras."
        )
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The CPU numerics setting (portable by default) must also be in the
# environment before TensorFlow loads: tf_lottery/numerics.py says why.
from tf_lottery import numerics as _numerics  # noqa: E402

_numerics.apply()

__version__ = "0.1.0"

# The Python API (docs/api.md), imported on first use: importing the package
# must stay cheap and must not load TensorFlow before Keras 2 is selected.
_API = {"make_config": "tf_lottery.api", "run": "tf_lottery.api", "load": "tf_lottery.api",
        "Run": "tf_lottery.api", "export_ticket": "tf_lottery.export",
        "Exported": "tf_lottery.export"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tf_lottery' has no attribute {name!r}")
