"""Console scripts: ``tf-lottery`` is ``python -m tf_lottery.main``, and so on.

Each script runs its module as ``__main__``, as ``python -m`` does, so both
forms take the same path through the module: the same absl ``main``, the
same flags, and ``--help`` answered before TensorFlow loads. ``python -m
tf_lottery.main`` stays the documented form (DESIGN.md); the scripts are
what a ``pip install`` of the wheel puts on PATH.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable

# script name -> the module it runs (setup.cfg's [options.entry_points]).
SCRIPTS = {
    "tf-lottery": "tf_lottery.main",
    "tf-lottery-report": "tf_lottery.report",
    "tf-lottery-status": "tf_lottery.status",
    "tf-lottery-export": "tf_lottery.export",
    "tf-lottery-align": "tf_lottery.align",
}


def _as_main(module: str) -> Callable[[], None]:
    def run() -> None:
        runpy.run_module(module, run_name="__main__", alter_sys=True)

    run.__doc__ = f"``python -m {module}``."
    return run


main = _as_main(SCRIPTS["tf-lottery"])
report = _as_main(SCRIPTS["tf-lottery-report"])
status = _as_main(SCRIPTS["tf-lottery-status"])
export = _as_main(SCRIPTS["tf-lottery-export"])
align = _as_main(SCRIPTS["tf-lottery-align"])
