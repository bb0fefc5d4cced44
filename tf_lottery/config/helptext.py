"""``python -m tf_lottery.main --help``: tf_lottery's own flags, by group, at once.

absl's ``--help`` lists the main module's flags only (tf_lottery's are
declared by their config sections, so it showed none) and comes after
TensorFlow has loaded; ``--helpfull`` buries them among other libraries'.
This help is printed before TensorFlow is imported: ``--experiment`` with
every registered experiment, then one group per config section (model,
data, train, …, then each experiment's own), each flag with its default
and help. ``--helpfull`` still gives absl's complete listing.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from absl import flags

from tf_lottery.config import experiments, knobs
from tf_lottery.config.sections import COMMON

HELP_FLAGS = ("-h", "-help", "--help", "-?", "--helpshort", "-helpshort")
_WIDTH = 88


def flag_names(cls: type[knobs.Section]) -> list[str]:
    """The flags a config section declares, in declaration order (epoch twins after)."""
    names = []
    for field, declared, _ in knobs.declarations(cls):
        name = knobs.flag_of(field, declared)
        names += [n for n in (name, declared.epochs and declared.epochs.name) if n]
    return names


def _title(cls: type[knobs.Section]) -> str:
    """The section's name and the first sentence of its docstring."""
    paragraph = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    sentence = paragraph.split(". ")[0].rstrip(".").replace("``", "")
    return "\n".join(textwrap.wrap(f"{cls.section}: {sentence}", _WIDTH,
                                   subsequent_indent="  "))


def _flag(fv: flags.FlagValues, name: str) -> list[str]:
    flag = fv[name]
    default = flag.default_as_str or "''"
    head = f"  --{name} (default: {default})"
    return [head, *textwrap.wrap(flag.help, _WIDTH, initial_indent="      ",
                                 subsequent_indent="      ")]


def experiments_help() -> list[str]:
    """``--experiment`` and every registered experiment, one a line."""
    lines = ["  --experiment (default: train): what to run, one of:"]
    for e in experiments.EXPERIMENTS.values():
        lines += textwrap.wrap(f"{e.name}: {e.summary}", _WIDTH, initial_indent="      ",
                               subsequent_indent="        ")
    return lines


def grouped(fv: flags.FlagValues, usage: str, extra: Sequence[str] = ()) -> str:
    """The help text: ``usage``, ``--experiment``, each section's flags, then
    ``extra`` flags of the entry point (already defined on ``fv``)."""
    lines = [usage.strip(), "", "Flags (--helpfull: every library's):", "",
             *experiments_help()]
    for cls in (*COMMON, *experiments.section_types()):
        lines += ["", _title(cls)]
        for name in flag_names(cls):
            lines += _flag(fv, name)
    if extra:
        lines += ["", "launch:"]
        for name in extra:
            lines += _flag(fv, name)
    return "\n".join(lines) + "\n"


def asked(argv: Sequence[str]) -> bool:
    """Whether the command line asks for help (not --helpfull)."""
    return any(a.split("=", 1)[0] in HELP_FLAGS for a in argv[1:])
