"""The JSON of the records (``records.py``), through one cattrs converter.

Why cattrs (issue 25): it structures the frozen standard-library dataclasses
the records already are (no model base class, nothing changes for their
callers or for mypy), its hooks see ``Annotated`` field types (so a path is
marked once, in the field's type) and wrap the code it generates per class
(so a schema 1 record is migrated by a plain dict transform before it is
structured), and its errors say which key of which nested entry was wrong.
It is pure Python: no wheel per platform. msgspec imports faster, but its
hooks see only types it does not know (no ``Annotated`` mark, no renamed
key for a dataclass), so paths and per-split keys would again need code of
our own; pydantic v2 imports slower still. Import times, measured:
docs/benchmarks.md ("The records' JSON library").

What the converter does beyond cattrs' defaults, for every record alike:

- primitives are strict: an ``int`` field takes an int (not a bool, a float
  or a string of digits), a ``float`` field an int or a float, a ``str`` a
  string, a ``bool`` a bool. cattrs' defaults would call ``int(x)`` and
  ``str(x)``, which turns a damaged file into a wrong record;
- a field typed ``RecordPath`` is stored relative to the root a record is
  written under and read back absolute (``layout.relative``,
  ``layout.resolve``; a 0.1.0 record's absolute paths under its
  ``recorded_root``);
- a ``dict[int, ...]`` is a JSON object keyed by the decimal integers, in
  increasing order;
- a ``Record`` is written with ``"schema"`` first (and ``"experiment"`` after
  ``"status"`` where the class names one); read, its schema is checked and a
  schema 1 one is handed to the class' ``migrate_v1`` first;
- a field named in ``BY_SPLIT`` (a split -> value map) is stored as one key
  per split, ``<split>_<field>`` (``test_error``, ``train_error``), where
  the field stands.

Pure Python: no TensorFlow, no I/O.
"""

import contextvars
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, TypeVar, get_args, get_origin

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import format_exception

from tf_lottery.core import layout
from tf_lottery.core.layout import SPLITS

SCHEMA = 2  # what this release writes, for every record
Json = dict[str, Any]


class _PathMark:
    """The ``Annotated`` mark of a path field (``RecordPath``)."""


RecordPath = Annotated[str, _PathMark]
"""A path: absolute in the record, relative to the record's root in its JSON."""


class RecordFormatError(ValueError):
    """A value of the wrong type or a schema this release cannot read: the
    message says which (and the converter keeps it as it is)."""


class _Where:
    """Where a record's relative paths are rooted (and a 0.1.0 record's were)."""

    def __init__(self, root: str, recorded_root: str | None):
        self.root = root
        self.recorded_root = recorded_root


_WHERE: contextvars.ContextVar[_Where | None] = contextvars.ContextVar("record_root",
                                                                      default=None)


class Value:
    """A JSON object inside records that holds no path and no schema of its own
    (a metric, a barrier, a curve's summary)."""

    BY_SPLIT: ClassVar[tuple[str, ...]] = ()
    RENAMED: ClassVar[Mapping[str, str]] = {}

    def to_json(self) -> Json:
        return _unstructure(self, None)

    @classmethod
    def from_json(cls: type["V"], obj: Mapping[str, Any]) -> "V":
        return _structure(obj, cls, None)


class Record:
    """A versioned JSON object (a file, or a piece embedded in one) whose paths
    are relative to a root: ``X.from_json(x.to_json(root), root) == x``."""

    BY_SPLIT: ClassVar[tuple[str, ...]] = ()
    RENAMED: ClassVar[Mapping[str, str]] = {}

    def to_json(self, root: str) -> Json:
        return _unstructure(self, _Where(root, None))

    @classmethod
    def from_json(cls: type["R"], obj: Mapping[str, Any], root: str,
                  recorded_root: str | None = None) -> "R":
        return _structure(obj, cls, _Where(root, recorded_root))

    @staticmethod
    def migrate_v1(obj: Mapping[str, Any]) -> Mapping[str, Any]:
        """A schema 1 (release 0.1.0) object in the current shape; by default
        the same keys (its absolute paths resolve under ``recorded_root``)."""
        return obj


V = TypeVar("V", bound=Value)
R = TypeVar("R", bound=Record)


def _unstructure(record: Value | Record, where: _Where | None) -> Json:
    token = _WHERE.set(where)
    try:
        return _CONVERTER.unstructure(record, type(record))
    finally:
        _WHERE.reset(token)


def _structure(obj: Mapping[str, Any], kind: type[Any], where: _Where | None) -> Any:
    """``obj`` as a ``kind``; ValueError (one line: every wrong key, with its
    place, ``$.rewind_steps[0].barrier``) if it is not one."""
    token = _WHERE.set(where)
    try:
        return _CONVERTER.structure(obj, kind)
    except cattrs.BaseValidationError as e:
        wrong = cattrs.transform_error(e, format_exception=_message)
        raise ValueError(f"{kind.__name__}: {'; '.join(wrong)}") from None
    finally:
        _WHERE.reset(token)


def _message(exc: BaseException, type_: type[Any] | None) -> str:
    return str(exc) if isinstance(exc, RecordFormatError) else format_exception(exc, type_)


def _where() -> _Where:
    where = _WHERE.get()
    if where is None:
        raise RecordFormatError("a path outside a record")
    return where


# -- primitives, paths, integer keys ------------------------------------------------------

_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _strict(kind: type[Any]) -> Callable[[Any, Any], Any]:
    """The hook of a primitive type that takes only its own JSON type (an int
    for a float: JSON writes 1.0 as 1 in other tools; never a bool for a number)."""
    types = (int, float) if kind is float else (kind,)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, types) or (kind is not bool and isinstance(value, bool)):
            raise RecordFormatError(f"expected {_NAMES[kind]}, got {value!r}")
        return float(value) if kind is float else value
    return structure


def _relative(path: str) -> str:
    return layout.relative(_where().root, path)


def _resolve(stored: Any, _: Any) -> str:
    where = _where()
    return layout.resolve(where.root, _strict(str)(stored, None), where.recorded_root)


def _int_keyed(kind: Any) -> bool:
    return get_origin(kind) is dict and get_args(kind)[:1] == (int,)


def _int_key(key: Any) -> int:
    if isinstance(key, str) and key.lstrip("-").isdigit():
        return int(key)
    return _strict(int)(key, None)


def _int_keyed_structure(kind: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    value_kind = get_args(kind)[1]

    def structure(obj: Any, _: Any) -> dict[int, Any]:
        if not isinstance(obj, Mapping):
            raise RecordFormatError(f"expected an object, got {obj!r}")
        return {_int_key(k): conv.structure(v, value_kind) for k, v in obj.items()}
    return structure


def _int_keyed_unstructure(kind: Any, conv: cattrs.Converter) -> Callable[[Any], Any]:
    value_kind = get_args(kind)[1]
    return lambda obj: {str(k): conv.unstructure(v, value_kind) for k, v in sorted(obj.items())}


# -- records --------------------------------------------------------------------------------

def _flattened(obj: Json, by_split: tuple[str, ...]) -> Json:
    """``{"error": {"test": t, "train": u}}`` as ``{"test_error": t, "train_error": u}``,
    in the field's place."""
    if not by_split:
        return obj
    flat: Json = {}
    for key, value in obj.items():
        if key in by_split:
            flat.update({f"{s}_{key}": value[s] for s in SPLITS})
        else:
            flat[key] = value
    return flat


def _unflattened(obj: Mapping[str, Any], by_split: tuple[str, ...]) -> Mapping[str, Any]:
    """The inverse of ``_flattened`` (a field whose split keys are not all
    there is left absent: reported as missing)."""
    if not by_split:
        return obj
    nested = dict(obj)
    for name in by_split:
        keys = {s: f"{s}_{name}" for s in SPLITS}
        if all(k in nested for k in keys.values()):
            nested[name] = {s: nested.pop(k) for s, k in keys.items()}
    return nested


def _current(obj: Mapping[str, Any], kind: type[Record]) -> Mapping[str, Any]:
    """``obj`` in the current schema: checked, and migrated from schema 1 (release
    0.1.0's; for pieces and nested entries, no ``"schema"`` reads as 1)."""
    version = obj.get("schema", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordFormatError(f"{kind.__name__}: schema {version!r} is not a version")
    if version > SCHEMA:
        raise RecordFormatError(f"{kind.__name__}: schema {version} is newer than this "
                                f"tf_lottery reads ({SCHEMA}); read it with a newer tf_lottery")
    return kind.migrate_v1(obj) if version == 1 else obj


def _is_record(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, (Value, Record))


def _renamed(kind: type[Value | Record]) -> dict[str, Any]:
    return {field: override(rename=key) for field, key in kind.RENAMED.items()}


def _record_structure(kind: type[Value | Record], conv: cattrs.Converter
                      ) -> Callable[[Any, Any], Any]:
    generated = make_dict_structure_fn(kind, conv, **_renamed(kind))

    def structure(obj: Any, _: Any) -> Any:
        if not isinstance(obj, Mapping):
            raise RecordFormatError(f"expected an object, got {obj!r}")
        if issubclass(kind, Record):
            obj = _current(obj, kind)
        return generated(_unflattened(obj, kind.BY_SPLIT), kind)
    return structure


def _record_unstructure(kind: type[Value | Record], conv: cattrs.Converter
                        ) -> Callable[[Any], Json]:
    generated = make_dict_unstructure_fn(kind, conv, **_renamed(kind))
    experiment = getattr(kind, "EXPERIMENT", None)

    def unstructure(record: Any) -> Json:
        if type(record) is not kind:  # a subclass where its base is declared
            return conv.unstructure(record, type(record))
        obj = _flattened(generated(record), kind.BY_SPLIT)
        if not issubclass(kind, Record):
            return obj
        head: Json = {"schema": SCHEMA}
        if experiment is not None:
            head.update(status=obj.pop("status"), experiment=experiment)
        return {**head, **obj}
    return unstructure


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    for kind in _NAMES:
        conv.register_structure_hook(kind, _strict(kind))
    conv.register_structure_hook_func(lambda t: t == RecordPath, _resolve)
    conv.register_unstructure_hook_func(lambda t: t == RecordPath, _relative)
    conv.register_structure_hook_factory(_int_keyed, _int_keyed_structure)
    conv.register_unstructure_hook_factory(_int_keyed, _int_keyed_unstructure)
    conv.register_structure_hook_factory(_is_record, _record_structure)
    conv.register_unstructure_hook_factory(_is_record, _record_unstructure)
    return conv


_CONVERTER = _converter()
