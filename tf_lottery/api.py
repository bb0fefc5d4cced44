"""The Python API: build a config, run an experiment, read a run back, export its ticket.

The command line and Python share everything below the config: ``make_config``
builds the same validated ``ExperimentConfig`` the flags build (settings by
their flag names, a model given as a function), ``run`` is the command line's
``tf_lottery.main.run``, and ``load`` reads a ``--model_dir`` back as typed
records. See docs/api.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from absl import flags as absl_flags

from tf_lottery import config as config_lib
from tf_lottery import rundir
from tf_lottery.core import layout, records, store
from tf_lottery.errors import ConfigError

ModelArg = str | Callable[..., Any]


def _flag_value(value: Any) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ",".join(str(v) for v in value)
    return str(value)


def make_config(experiment: str = "train", *, model_dir: str,
                model: ModelArg = "lenet_300_100", **settings: Any
                ) -> config_lib.ExperimentConfig:
    """The validated config of an experiment, as the command line would build it.

    Args:
      experiment: 'train', 'instability' or 'imp'.
      model_dir: where the run lives (resumes when it already holds it).
      model: a registry name, an import path 'package.module:function', or a
        builder function ``(num_classes, image_shape) -> tf_keras.Model``
        (known by its import path; one defined in a script or notebook
        resolves in that process).
      **settings: any other flag by its name without '--' (``dataset="mnist"``,
        ``train_steps=100``, ``rewind_steps=[0, 50]``, ``augment_seed=3``);
        lists for list flags, booleans for switches.

    Raises:
      ConfigError: one line naming the setting at fault.
    """
    from tf_lottery.models import registry as model_registry

    name = model if isinstance(model, str) else model_registry.given(model)
    fv = absl_flags.FlagValues()
    config_lib.define_flags(fv)
    args = ["tf_lottery", f"--experiment={experiment}", f"--model_dir={model_dir}",
            f"--model={name}"]
    for key, value in settings.items():
        if key not in fv or key in ("experiment", "model_dir", "model"):
            raise ConfigError(f"{key}= is not a setting (settings are the command line's "
                              "flags, e.g. train_steps=100; see docs/flags.md)")
        if isinstance(value, bool):
            args.append(f"--{key}" if value else f"--no{key}")
        elif value is not None:
            args.append(f"--{key}={_flag_value(value)}")
    try:
        fv(args)
    except absl_flags.Error as e:
        raise ConfigError(str(e).splitlines()[0]) from None
    return config_lib.config_from_flags(fv)


def run(config: config_lib.ExperimentConfig, force_unlock: bool = False
        ) -> records.Results:
    """Runs (or resumes) ``config``'s experiment; returns the record it wrote
    to ``results.json`` (``RunRecord``, ``InstabilityResults`` or ``ImpResults``)."""
    from tf_lottery import main

    return main.run(config, force_unlock=force_unlock)


@dataclasses.dataclass(frozen=True)
class Run:
    """A run directory read back: its config and its results.

    Attributes:
      model_dir: the directory.
      config: the resolved config it was launched with (config.json).
      results: its results.json (None before its first record is written):
        ``RunRecord``, ``InstabilityResults`` or ``ImpResults``.
    """

    model_dir: str
    config: config_lib.ExperimentConfig
    results: records.Results | None

    @property
    def complete(self) -> bool:
        return layout.is_complete(self.results)

    def export(self, out: str, *, level: int | None = None, which: str = "final",
               format: str | None = None, rewind_step: int | None = None,
               weights: str | None = None) -> Any:
        """Writes this run's network as a plain Keras model (``export.export_ticket``;
        ``weights='evaluated'``, the default for the final network, is the one
        its metrics were computed on, its ``--ema_decay`` average if it had one)."""
        from tf_lottery import export

        return export.export_ticket(self.model_dir, out, level=level, which=which,
                                    format=format, rewind_step=rewind_step, weights=weights)


def load(model_dir: str) -> Run:
    """Reads ``model_dir`` back (read-only: a launch may be writing it).

    Raises:
      ConfigError: it holds no run (no config.json), or a file is damaged.
    """
    config = rundir.recorded_config(model_dir)
    results = store.read(layout.results_file(model_dir), records.ExperimentResults, model_dir)
    return Run(model_dir, config, results)
