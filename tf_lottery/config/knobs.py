"""Config fields that declare their own command-line flag.

A config section is a frozen, keyword-only dataclass (a ``Section``) whose
fields are declared with ``knob(...)``: default, help, flag name, allowed
values and check, all beside the field. From these declarations
``define_flags`` defines the absl flags and ``FlagReader.fields`` reads them
back, parsed to the fields' types. Checks run whenever a section is built, so
a config read from JSON or made in Python is validated like one from flags.
Only derived values (steps from epochs, a dataset's own augmentation, ...)
are computed by hand, in a section's ``from_flags``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from absl import flags as absl_flags

from tf_lottery.errors import ConfigError, FieldError

Check = Callable[[Any], "str | None"]  # a value -> what is wrong with it, or None
REQUIRED: Any = dataclasses.MISSING  # a knob without a default: its flag defaults to None
_KNOB = "tf_lottery.knob"


def must(ok: Callable[[Any], bool], rule: str) -> Check:
    """A check: ``ok(value)`` or "must <rule>, got <value>"."""
    return lambda value: None if ok(value) else f"must {rule}, got {value}"


def at_least(low: float, note: str = "") -> Check:
    return must(lambda v: v >= low, f"be >= {low}{note}")


positive = must(lambda v: v > 0, "be positive")


@dataclasses.dataclass(frozen=True)
class Flag:
    """An input flag that is not a field of its own: a field given in epochs."""

    name: str
    default: Any
    help: str


@dataclasses.dataclass(frozen=True)
class Knob:
    """What a field declares about its flag (see ``knob``)."""

    help: str
    flag: str | None = None  # None: the field's name
    derived: bool = False  # no flag of its own: computed in ``from_flags``
    choices: tuple[str, ...] = ()
    check: Check | None = None
    normalize: Callable[[Any], Any] | None = None
    epochs: Flag | None = None
    late: bool = False  # added after runs were launched: at its default, not hashed

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this field, or None."""
        if self.choices:
            for item in value if isinstance(value, tuple) else (value,):
                if item not in self.choices:
                    return f"has unknown value {item!r} (known: {', '.join(self.choices)})"
        return self.check(value) if self.check else None


def knob(default: Any, help: str, *, flag: str | None = None,
         choices: tuple[str, ...] = (), check: Check | None = None,
         normalize: Callable[[Any], Any] | None = None, epochs: Flag | None = None,
         late: bool = False) -> Any:
    """A config field with its flag: ``--<flag or field name>``.

    Args:
      default: the field's and the flag's default (``REQUIRED``: none; the
        flag defaults to None and ``from_flags`` must supply the value).
      help: the flag's help, starting with its group ("IMP: ...").
      flag: the flag's name where it differs from the field's.
      choices: allowed values (an enum flag for a string field; every item
        for a tuple field).
      check: ``must(...)``-style check of the value, run on every build.
      normalize: applied to the parsed flag value (e.g. sort, deduplicate).
      epochs: the same quantity given in epochs; ``from_flags`` converts it.
      late: the knob was added after recipe hashes were recorded; at its
        default it is left out of ``recipe_hash`` (not of the recipe), so
        the hash of every run launched before it, and of every run that
        leaves it at its default, stays what it was.
    """
    return dataclasses.field(default=default, metadata={_KNOB: Knob(
        help, flag, False, tuple(choices), check, normalize, epochs, late)})


def derived(help: str, *, epochs: Flag | None = None, default: Any = REQUIRED,
            late: bool = False) -> Any:
    """A field computed from other flags in ``from_flags`` (no flag of its own);
    ``late`` as for ``knob``."""
    return dataclasses.field(default=default, metadata={_KNOB: Knob(
        help, derived=True, epochs=epochs, late=late)})


class Section:
    """Base of config sections; ``section`` is the section's key in the
    config (``config.<section>``) and in ``config.json``."""

    section: ClassVar[str]
    # Fields added after runs were recorded without them: left out of the
    # recipe (its hash, config.json) while at their default, so that those
    # runs keep their identity.
    optional: ClassVar[tuple[str, ...]] = ()
    # An add-on section only adds pieces beside finished ones (curves beside
    # pairs): a run recorded without it may be relaunched with it
    # (``recipe.recipe_changes``); once recorded, it is compared as any other.
    addon: ClassVar[bool] = False
    # A section whose knobs only add evaluation pieces to a run and change none
    # already computed: left out of the recipe (its hash, config.json, the
    # relaunch check), so a finished run relaunched with other values computes
    # only the pieces they add.
    measures_only: ClassVar[bool] = False
    # Every section is a dataclass; declared so that type checkers know it.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __post_init__(self) -> None:
        for field, declared, _ in declarations(type(self)):
            problem = declared.problem(getattr(self, field.name))
            if problem:
                raise FieldError(f"{self.section}.{field.name}", problem)
        self.validate()

    def validate(self) -> None:
        """Checks between this section's own fields; raises ``FieldError``."""

    def validate_in(self, config: Any) -> None:
        """Checks against the other sections of ``config``; raises ``FieldError``."""

    @classmethod
    def from_flags(cls, flags: FlagReader, built: Mapping[str, Section]) -> Section:
        """The section from parsed flags; ``built`` holds the sections built
        before it. Sections with derived values override this."""
        return cls(**flags.fields(cls))


Declaration = tuple[dataclasses.Field, Knob, Any]
_DECLARATIONS: dict[type[Section], tuple[Declaration, ...]] = {}


def declarations(cls: type[Section]) -> tuple[Declaration, ...]:
    """(field, knob, field type) of every knob of a section class."""
    if cls not in _DECLARATIONS:
        hints = typing.get_type_hints(cls)
        _DECLARATIONS[cls] = tuple((field, field.metadata[_KNOB], hints[field.name])
                                   for field in dataclasses.fields(cls)
                                   if _KNOB in field.metadata)
    return _DECLARATIONS[cls]


def declaration(cls: type[Section], name: str) -> tuple[dataclasses.Field, Knob, Any]:
    return next(d for d in declarations(cls) if d[0].name == name)


def flag_of(field: dataclasses.Field, declared: Knob) -> str | None:
    """The field's own flag name, or None for a derived field."""
    return None if declared.derived else declared.flag or field.name


def label(cls: type[Section], name: str) -> str:
    """How the command line names a field: its flag(s), e.g. '--rewind_steps/--rewind_epochs'."""
    field, declared, _ = declaration(cls, name)
    names = [n for n in (flag_of(field, declared), declared.epochs and declared.epochs.name) if n]
    return "/".join(f"--{n}" for n in names) or f"{cls.section}.{name}"


def _base(tp: Any) -> tuple[Any, bool]:
    """(item type, is a list) of a field type such as ``int | None`` or ``tuple[str, ...]``."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is tuple:
        return typing.get_args(tp)[0], True
    return tp, False


def _define(fv: absl_flags.FlagValues, name: str, tp: Any, default: Any, help: str,
            choices: tuple[str, ...]) -> None:
    item, is_list = _base(tp)
    if is_list:
        absl_flags.DEFINE_list(name, [str(v) for v in default], help, flag_values=fv)
    elif item is str and choices:
        absl_flags.DEFINE_enum(name, default, choices, help, flag_values=fv)
    else:
        define = {bool: absl_flags.DEFINE_boolean, int: absl_flags.DEFINE_integer,
                  float: absl_flags.DEFINE_float, str: absl_flags.DEFINE_string}[item]
        define(name, default, help, flag_values=fv)


def define_flags(cls: type, fv: absl_flags.FlagValues) -> None:
    """Defines the flags a section class declares (its own and epoch twins)."""
    for field, declared, tp in declarations(cls):
        name = flag_of(field, declared)
        if name:
            default = None if field.default is dataclasses.MISSING else field.default
            _define(fv, name, tp, default, declared.help, declared.choices)
        if declared.epochs:
            epochs_type = tuple[float, ...] if _base(tp)[1] else float
            _define(fv, declared.epochs.name, epochs_type, declared.epochs.default,
                    declared.epochs.help, ())


def _parse(value: Any, tp: Any, flag: str) -> Any:
    item, is_list = _base(tp)
    if not is_list or value is None:
        return value
    if item is str:
        return tuple(value)
    try:
        return tuple(item(v) for v in value if str(v).strip() != "")
    except ValueError:
        kind = "integers" if item is int else "numbers"
        raise ConfigError(f"--{flag} must be a comma-separated list of {kind}, "
                          f"got {','.join(value)!r}") from None


class FlagReader:
    """Parsed absl flags as config sections read them: by field, parsed to
    the field's type."""

    def __init__(self, fv: absl_flags.FlagValues):
        self._fv = fv

    def fields(self, cls: type[Section]) -> dict[str, Any]:
        """Every field of ``cls`` that has a flag of its own, from its flag."""
        out = {}
        for field, declared, tp in declarations(cls):
            name = flag_of(field, declared)
            if name:
                value = _parse(self._fv[name].value, tp, name)
                if declared.normalize and value is not None:
                    value = declared.normalize(value)
                out[field.name] = value
        return out

    def field(self, cls: type[Section], name: str) -> Any:
        return self.fields(cls)[name]

    def given(self, cls: type[Section], name: str) -> bool:
        """Whether the field's own flag was given (on the command line or in a flagfile)."""
        field, declared, _ = declaration(cls, name)
        return bool(self._fv[flag_of(field, declared)].present)

    def epochs(self, cls: type[Section], name: str) -> Any:
        """The field's value in epochs (its ``epochs`` flag), parsed."""
        _, declared, tp = declaration(cls, name)
        if declared.epochs is None:
            raise ValueError(f"{cls.__name__}.{name} has no epochs flag")
        flag = declared.epochs.name
        return _parse(self._fv[flag].value, tuple[float, ...] if _base(tp)[1] else float, flag)


def sorted_set(values: tuple) -> tuple:
    return tuple(sorted(set(values)))


def unique(values: tuple) -> tuple:
    """Duplicates dropped, first occurrences kept in order."""
    return tuple(dict.fromkeys(values))


def epochs_to_steps(epochs: float, steps_per_epoch: int) -> int:
    return int(round(epochs * steps_per_epoch))
