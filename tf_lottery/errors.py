"""User-facing errors: one clear line naming the flag or file and what to do."""

import re
from collections.abc import Callable


class ConfigError(ValueError):
    """Bad flags, data or run directory; reported as one line, exit status 2.

    Raised before anything under --model_dir is written or overwritten.
    """


class FieldError(ConfigError):
    """A config field holds a value the experiment cannot run with.

    ``field`` is its dotted name (``pruning.levels``); ``problem`` says what is
    wrong and may name other fields as ``{section.field}``. The library speaks
    in fields; the command line (``config.cli_message``) shows each as its flag,
    so a user reads "--imp_levels must be >= 1, got 0".
    """

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(self.render(lambda name: name))

    def render(self, label: Callable[[str], str]) -> str:
        """The message with every field named by ``label(dotted_name)``."""
        text = re.sub(r"\{(\w+\.\w+)\}", lambda m: label(m[1]), self.problem)
        return f"{label(self.field)}{'' if text.startswith('=') else ' '}{text}"


class CorruptFileError(ConfigError):
    """A file tf_lottery wrote (or reads) cannot be parsed: truncated by a full
    disk, a preempted copy, a hand edit. ``path`` names it.

    Where the file is a summary that its writer can recompute, the writer sets
    it aside and recomputes it instead (``files.read_summary``); elsewhere the
    error is reported as one line.
    """

    def __init__(self, path: str, reason: str, advice: str = ""):
        self.path = path
        self.reason = reason
        self.advice = advice or "restore it from a copy, or move it aside and relaunch"
        super().__init__(f"{path} is damaged ({reason}); {self.advice}")
