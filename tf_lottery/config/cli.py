"""The command line: absl flags from the sections' declarations, and parsed
flags -> a validated ``ExperimentConfig``.

Nothing outside the config package reads ``FLAGS``. Every flag is declared
once, by its field (``knobs.knob``) or, for ``--experiment``, by the
experiment registry; errors come back naming flags, one line each.
"""

from __future__ import annotations

from typing import Any

from absl import flags

from tf_lottery.config import experiments, knobs
from tf_lottery.config.recipe import ExperimentConfig
from tf_lottery.config.sections import COMMON
from tf_lottery.errors import ConfigError, FieldError


def _sections() -> dict[str, type[knobs.Section]]:
    return {cls.section: cls for cls in (*COMMON, *experiments.section_types())}


def define_flags(fv: flags.FlagValues | None = None) -> None:
    """Defines every tf_lottery flag on ``fv`` (default: absl's global FLAGS).

    Idempotent; tests pass a fresh ``FlagValues`` to parse flags in isolation.
    """
    fv = flags.FLAGS if fv is None else fv
    if "experiment" in fv:
        return
    flags.DEFINE_enum("experiment", "train", experiments.names(), experiments.help_text(),
                      flag_values=fv)
    for cls in _sections().values():
        knobs.define_flags(cls, fv)


def flag_label(field: str) -> str:
    """How the command line names the field ``section.name``: '--imp_levels'."""
    section, _, name = field.partition(".")
    cls = _sections().get(section)
    return knobs.label(cls, name) if cls else field


def cli_message(error: ConfigError) -> str:
    """The one line the command line prints for ``error``, naming flags."""
    return error.render(flag_label) if isinstance(error, FieldError) else str(error)


def config_from_flags(fl: flags.FlagValues | None = None) -> ExperimentConfig:
    """Resolves parsed flags into a validated ``ExperimentConfig``.

    The sections the experiment uses are built in order (model, data, train,
    optimizer, schedule, runtime, then the experiment's own); epoch-valued
    flags become steps on the way, so everything downstream works in steps.

    Raises:
      ConfigError: one line naming the flag(s) at fault.
    """
    fv = fl or flags.FLAGS
    reader = knobs.FlagReader(fv)
    by_name = _sections()
    experiment = experiments.get(fv.experiment)

    def switch(path: str) -> bool:
        section, _, name = path.partition(".")
        return bool(reader.field(by_name[section], name))

    try:
        built: dict[str, knobs.Section] = {}
        for cls in (*COMMON, *experiment.section_types(switch)):
            built[cls.section] = cls.from_flags(reader, built)
        common: dict[str, Any] = {cls.section: built[cls.section] for cls in COMMON}
        return ExperimentConfig(
            experiment=experiment.name, **common,
            sections=tuple(built[cls.section] for cls in experiment.section_types(switch)))
    except FieldError as e:
        raise ConfigError(cli_message(e)) from None
