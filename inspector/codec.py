"""The snapshot model's JSON round trip: the wire's compact columnar form and the full form saved
for people, and a decoder that validates every field on the way in.

A client decodes whatever the peer sends, so decoding checks each field's type and range and
names the offending path in a `ModelError`. Both the agent and the client import this module,
so, like the model, it imports only the standard library. The decoders are compiled once per
class from the dataclasses' type hints: adding a defaulted field to the model needs no change
here.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import types
import typing
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal, TypeVar, Union

from inspector.model import Frame, ModelError, WaitInfo

T = TypeVar("T")

MAX_DEPTH: Final = 64
MAX_MAGNITUDE: Final = 1e15
"""No float in a snapshot comes near it (1e15 seconds is 30 million years). Beyond it, or not
finite (JSON's 1e400 reads as inf), a value is corrupt: refused where it is decoded, before a
view does arithmetic or formatting with it. The agent itself cannot send NaN or inf
(``allow_nan=False``)."""
MIN_INT: Final = -(2**63)
MAX_INT: Final = 2**64 - 1
"""Counts, sizes, line numbers and pids fit 64 bits: a larger one would overflow the float
arithmetic of the views (a bar's width, "1.2 GB"). Ids (`id`, `*_id`, `*_ids`) are opaque, only
compared and printed, so they are taken at any size: the id columns of 10,000 tasks (their
own, their requests', their parents') are then not scanned for a range."""
MIN_WALL_CLOCK: Final = 0.0
MAX_WALL_CLOCK: Final = 32_503_680_000.0
"""Wall-clock fields (`*_at`, `at`, `since`) lie between 1970 and 3000, where every platform's
`time.localtime` can convert them."""
_WALL_CLOCK_NAMES: Final = frozenset(("at", "since"))
_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType)
_hints_cache: dict[type, dict[str, Any]] = {}


def to_json_dict(obj: Any, *, compact: bool = False) -> Any:
    """A model object as JSON-ready data: dataclasses become dicts, tuples become lists.

    `compact` is the wire form: fields that hold their default (None, (), 0, False, ...) are left
    out, and each distinct `Frame` and `WaitInfo` is written once, in a table beside the top-level
    fields (`"$frames"`, `"$waits"`), and referred to by its index. Ten thousand tasks parked on
    the same lines, waiting on the same Event, then cost a few characters each instead of a few
    hundred. A list of two or more model objects of one class (the tasks, the requests, a table)
    is written by columns, `{"$n": N, "<field>": [N values], ...}`, leaving out every column
    whose values all hold the field's default: the field names are not repeated per object, and
    both sides handle a column at a time instead of a field of an object at a time.
    `from_json_dict` reads both forms; saved files and `--format json` use the full form, for
    people and jq.
    """
    if not compact:
        return _encode(obj, None)
    tables = {cls: _Interned() for cls in INTERNED}
    data = _encode(obj, tables)
    if isinstance(data, dict):
        for cls, key in INTERNED.items():
            items = tables[cls].items
            if items:
                data[key] = _encode(items, _NO_TABLES)
    return data


FRAME_TABLE_KEY: Final = "$frames"
WAIT_TABLE_KEY: Final = "$waits"
INTERNED: Final[dict[type, str]] = {Frame: FRAME_TABLE_KEY, WaitInfo: WAIT_TABLE_KEY}
"""The classes the compact form writes once per distinct value, and the key of each table."""
_TABLE_WORDS: Final[dict[type, str]] = {Frame: "frame", WaitInfo: "wait"}


class _Interned:
    """The distinct objects of one class met while encoding, in order, with their indexes.

    Looked up by identity first: the agent hands out one object per distinct frame and per
    awaited primitive, so the value lookup (a hash over every field) runs once per object, not
    once per reference. Every object stays referenced by the snapshot while it is encoded, so an
    `id()` cannot be reused meanwhile.
    """

    __slots__ = ("by_id", "by_value", "items")

    def __init__(self) -> None:
        self.by_id: dict[int, int] = {}
        self.by_value: dict[Any, int] = {}
        self.items: list[Any] = []

    def index(self, obj: Any) -> int:
        index = self.by_id.get(id(obj))
        if index is None:
            index = self.by_value.get(obj)
            if index is None:
                index = self.by_value[obj] = len(self.items)
                self.items.append(obj)
            self.by_id[id(obj)] = index
        return index

    def indexes(self, objs: list[Any]) -> list[int | None]:
        """The index of each object, None for None, with no Python-level step per reference."""
        ids = list(map(id, objs))
        found: list[int | None] = list(map(self.by_id.get, ids))
        if None in found:
            for obj in dict(zip(ids, objs, strict=True)).values():
                if obj is not None:
                    self.index(obj)
            found = list(map(self.by_id.get, ids))
        return found


_NO_TABLES: Final[dict[type, _Interned]] = {}
"""Compact form without interning: how the tables' own entries are written."""


def _encode(obj: Any, tables: dict[type, _Interned] | None) -> Any:
    kind = type(obj)
    if kind in _SCALARS or obj is None:
        return obj
    if tables:
        table = tables.get(kind)
        if table is not None:
            return table.index(obj)
    if kind is tuple or kind is list:
        if tables is not None and len(obj) >= 2:
            columns = _encode_columns(obj, tables)
            if columns is not None:
                return columns
        return [_encode(item, tables) for item in obj]
    if kind is dict:
        return {str(key): _encode(value, tables) for key, value in obj.items()}
    fields = _field_defaults.get(kind)
    if fields is None:
        if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
            return obj
        fields = _defaults_of(kind)
    values = obj.__dict__
    out: dict[str, Any] = {}
    scalars = _SCALARS
    compact = tables is not None
    for name, default in fields:
        value = values[name]
        value_type = type(value)
        if compact and value_type is type(default) and value == default:
            continue
        # Scalars inline: a call per field is most of the cost of a 10,000-task snapshot.
        out[name] = value if value_type in scalars or value is None else _encode(value, tables)
    return out


COUNT_KEY: Final = "$n"
"""The key holding the number of objects in a list written by columns."""


def _encode_columns(items: Sequence[Any], tables: dict[type, _Interned]) -> dict[str, Any] | None:
    """`items` by columns, or None when they are not all model objects of one plain class."""
    cls = type(items[0])
    if cls in tables or cls in _SCALARS or len(set(map(type, items))) != 1:
        return None
    fields = _field_defaults.get(cls)
    if fields is None:
        if not dataclasses.is_dataclass(cls):
            return None
        fields = _defaults_of(cls)
    count = len(items)
    states = [item.__dict__ for item in items]
    out: dict[str, Any] = {COUNT_KEY: count}
    for name, default in fields:
        column = [state[name] for state in states]
        kinds = set(map(type, column))
        if default is not _NO_DEFAULT and kinds == {type(default)}:
            if default is None or column.count(default) == count:
                continue
        out[name] = _encode_column(column, kinds, tables)
    # With no column the count would be the only thing on the wire: a decoder could not check it.
    return out if len(out) > 1 else None


_SCALARS_OR_NONE: Final = frozenset((str, int, float, bool, type(None)))


def _encode_column(column: list[Any], kinds: set[type], tables: dict[type, _Interned]) -> Any:
    if kinds <= _SCALARS_OR_NONE:
        return column
    objects = kinds - {type(None)}
    if len(objects) == 1:
        table = tables.get(next(iter(objects)))
        if table is not None:
            return table.indexes(column)
    if kinds == {tuple}:
        # Tuples shared by several objects (a stack reused for tasks parked at one place) are
        # converted once each.
        ids = list(map(id, column))
        distinct = list(dict(zip(ids, column, strict=True)).values())
        flat = list(itertools.chain.from_iterable(distinct))
        inner = set(map(type, flat))
        if inner <= _SCALARS:
            return list(map(list, column))
        table = tables.get(next(iter(inner))) if len(inner) == 1 else None
        if table is not None:
            # A stack column: every frame looked up at once, then cut back into stacks.
            indexes = table.indexes(flat)
            starts = list(itertools.accumulate(map(len, distinct), initial=0))
            converted = [indexes[start:end] for start, end in itertools.pairwise(starts)]
            if len(distinct) == len(column):
                return converted
            by_id = dict(zip(map(id, distinct), converted, strict=True))
            return list(map(by_id.__getitem__, ids))
    scalars = _SCALARS
    return [
        value if type(value) in scalars or value is None else _encode(value, tables)
        for value in column
    ]


_SCALARS: Final = frozenset((str, int, float, bool))
_NO_DEFAULT: Final = object()
# class -> ((field name, default or _NO_DEFAULT), ...), read once per class: this is the hot path
# of a 10,000-task snapshot.
_field_defaults: dict[type, tuple[tuple[str, Any], ...]] = {}


def _defaults_of(cls: type) -> tuple[tuple[str, Any], ...]:
    found = _field_defaults.get(cls)
    if found is None:
        found = tuple(
            (f.name, f.default if f.default is not dataclasses.MISSING else _NO_DEFAULT)
            for f in dataclasses.fields(cls)
        )
        _field_defaults[cls] = found
    return found


def assemble(cls: type[T], **values: Any) -> T:
    """`cls(**values)` for a model class, without its frozen `__init__`.

    A frozen dataclass sets each field through `object.__setattr__` (about 0.1 µs a field); the
    agent builds thousands of tasks per snapshot. Fields not given take their defaults; the
    model's classes have no `__slots__` and no `__post_init__` (the decoders rely on it too).
    """
    state = _default_states.get(cls)
    if state is None:
        state = _default_states[cls] = {
            name: default for name, default in _defaults_of(cls) if default is not _NO_DEFAULT
        }
    state = {**state, **values}
    if len(state) != len(_defaults_of(cls)):
        missing = [name for name, _ in _defaults_of(cls) if name not in state]
        unknown = [name for name in values if name not in dict(_defaults_of(cls))]
        raise TypeError(f"{cls.__name__}: missing {missing}, unknown {unknown}")
    instance = object.__new__(cls)
    object.__setattr__(instance, "__dict__", state)
    return instance


_default_states: dict[type, dict[str, Any]] = {}


def from_json_dict(cls: type[T], data: object) -> T:
    """Build `cls` from JSON data, checking every field's type; raises ModelError.

    Unknown keys are ignored (a newer agent may add fields); missing keys take the field's
    default, and a missing required field is an error. A decoder is compiled once per type;
    paths for messages are built only when something fails.
    """
    tables: dict[type, tuple[Any, ...]] = {}
    if isinstance(data, dict):
        for table_cls, key in INTERNED.items():
            if key in data:
                tables[table_cls] = _decode_table(table_cls, key, data[key])
    previous = getattr(_tables, "current", _NO_DECODE_TABLES)
    _tables.current = tables
    try:
        return typing.cast(T, _decoder(cls)(data))
    except _Invalid as error:
        raise error.model_error() from None
    finally:
        _tables.current = previous


def _decode_table(cls: type, key: str, data: object) -> tuple[Any, ...]:
    # Entries are written in full: a table entry that refers to a table is refused.
    previous = getattr(_tables, "current", _NO_DECODE_TABLES)
    _tables.current = _NO_DECODE_TABLES
    try:
        return typing.cast("tuple[Any, ...]", _decoder(tuple[cls, ...])(data))  # type: ignore[valid-type]
    except _Invalid as error:
        raise error.at(f".{key}").model_error() from None
    finally:
        _tables.current = previous


_tables = threading.local()
"""The tables (`"$frames"`, `"$waits"`) of the message being decoded on this thread."""
_NO_DECODE_TABLES: Final[dict[type, tuple[Any, ...]]] = {}


def _interned_decoder(cls: type, by_fields: Decoder) -> Decoder:
    what = _TABLE_WORDS[cls]

    def interned(data: object) -> Any:
        if type(data) is int:
            table: tuple[Any, ...] = getattr(_tables, "current", _NO_DECODE_TABLES).get(cls, ())
            if 0 <= data < len(table):
                return table[data]
            raise _Invalid(f"{{path}}: {what} {data} is not in the {what} table")
        return by_fields(data)

    return interned


def _hints(cls: type) -> dict[str, Any]:
    hints = _hints_cache.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _hints_cache[cls] = hints
    return hints


Decoder = Callable[[object], Any]


class _Invalid(Exception):
    """A value failed to decode; `where` collects path parts innermost first on the way out."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.where: list[str] = []

    def at(self, part: str) -> _Invalid:
        self.where.append(part)
        return self

    def model_error(self) -> ModelError:
        return ModelError(self.message.replace("{path}", "$" + "".join(reversed(self.where)), 1))


_decoders: dict[Any, Decoder] = {}


def _decoder(tp: Any) -> Decoder:
    decoder = _decoders.get(tp)
    if decoder is None:
        decoder = _decoders[tp] = _compile(tp)
    return decoder


def _compile(tp: Any) -> Decoder:
    origin = typing.get_origin(tp)
    if tp is Any:
        return lambda data: data
    if tp in INTERNED:
        return _interned_decoder(tp, _dataclass_decoder(tp))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_decoder(tp)
    if origin in _UNION_TYPES:
        return _union_decoder(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)

        def literal(data: object) -> object:
            if data not in allowed or isinstance(data, bool):
                raise _Invalid(f"{{path}}: {_short(data)} is not one of {allowed}")
            return data

        return literal
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence_decoder(args[0])
        return _fixed_tuple_decoder(args)
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        return _dict_decoder(key_type, value_type)
    if tp is float:

        def number(data: object) -> float:
            if type(data) is float and -MAX_MAGNITUDE <= data <= MAX_MAGNITUDE:
                return data  # NaN fails the comparison too
            if isinstance(data, bool) or not isinstance(data, (int, float)):
                raise _Invalid(f"{{path}}: expected a number, got {_short(data)}")
            if not -MAX_MAGNITUDE <= data <= MAX_MAGNITUDE:  # exact for ints of any size
                got = _short(data)
                raise _Invalid(f"{{path}}: expected a finite number within ±1e15, got {got}")
            return float(data)

        return number
    if tp is int:

        def integer(data: object) -> int:
            if type(data) is int:
                return data
            if isinstance(data, bool) or not isinstance(data, int):
                raise _Invalid(f"{{path}}: expected an integer, got {_short(data)}")
            return data

        return integer
    if tp in (str, bool):
        name = tp.__name__

        def exact(data: object) -> object:
            if not isinstance(data, tp):
                raise _Invalid(f"{{path}}: expected {name}, got {_short(data)}")
            return data

        return exact
    if tp is type(None):

        def null(data: object) -> None:
            if data is not None:
                raise _Invalid("{path}: expected null")
            return None

        return null
    raise ModelError(f"$: unsupported type {tp!r}")  # a bug in the model, not the input


def _dataclass_decoder(cls: type) -> Decoder:
    # Frozen dataclasses set each field through object.__setattr__ in __init__ (about 1 µs a
    # field: most of the decoding time). The model's classes have no __slots__ and no
    # __post_init__, so the instance dict is filled directly; the result is identical.
    direct = not hasattr(cls, "__slots__") and not hasattr(cls, "__post_init__")
    plan: list[RowStep] | None = None

    def compile_plan() -> list[RowStep]:
        # Compiled on first use, when this decoder is already cached: a model type that
        # refers to itself would find it instead of recursing.
        hints = _hints(cls)
        steps: list[RowStep] = []
        for f in dataclasses.fields(cls):
            missing = dataclasses.MISSING
            required = f.default is missing and f.default_factory is missing
            factory = None if f.default_factory is dataclasses.MISSING else f.default_factory
            field_type = hints[f.name]
            low, high = _bounds(f.name, field_type) or (None, None)
            decoder = _field_decoder(f.name, field_type)
            plain, nullable = _shortcut(field_type)
            default = f.default
            steps.append((f.name, decoder, required, default, factory, plain, nullable, low, high))
        return steps

    new = object.__new__

    def decode(data: object) -> object:
        nonlocal plan
        if not isinstance(data, dict):
            raise _Invalid(f"{{path}}: expected an object, got {type(data).__name__}")
        if plan is None:
            plan = compile_plan()
        state: dict[str, Any] = {}
        for name, field_decoder, required, default, factory, plain, nullable, low, high in plan:
            if name in data:
                value = data[name]
                if value.__class__ is plain:
                    # Already the right type: nothing to convert. A number is compared with its
                    # range in place (NaN fails it too): no call per value.
                    if low is None or low <= value <= high:
                        state[name] = value
                        continue
                elif value is None and nullable:
                    state[name] = None
                    continue
                try:
                    state[name] = field_decoder(value)
                except _Invalid as error:
                    raise error.at(f".{name}") from None
            elif required:
                raise _Invalid(f"{{path}}: missing field {name!r}")
            elif direct:
                state[name] = default if factory is None else factory()
        if not direct:
            return cls(**state)
        instance: Any = new(cls)
        instance.__dict__.update(state)
        return instance

    return decode


RowStep = tuple[str, Decoder, bool, Any, Any, "type | None", bool, Any, Any]
"""name, decoder, required, default, default factory, as-is class, None as-is, low, high."""


def _bounds(name: str, tp: Any) -> tuple[float, float] | None:
    """The range the values of number field `name` lie in; None when any value of its type is
    taken (not a number, or an id)."""
    plain, _ = _shortcut(tp)
    if plain is float:
        if name.endswith("_at") or name in _WALL_CLOCK_NAMES:
            return MIN_WALL_CLOCK, MAX_WALL_CLOCK
        return -MAX_MAGNITUDE, MAX_MAGNITUDE  # what the float decoder checks itself
    if plain is int and not (name == "id" or name.endswith(("_id", "_ids"))):
        return MIN_INT, MAX_INT
    return None


_RANGE_WORDS: Final[dict[tuple[float, float], str]] = {
    (MIN_WALL_CLOCK, MAX_WALL_CLOCK): "a time between 1970 and 3000",
    (MIN_INT, MAX_INT): "an integer of 64 bits",
}


def _field_decoder(name: str, tp: Any) -> Decoder:
    """The decoder of field `name`: its type's, checking the field's range where the type's
    decoder does not (a wall-clock time, a count)."""
    decoder = _decoder(tp)
    bounds = _bounds(name, tp)
    if bounds is None or bounds not in _RANGE_WORDS:
        return decoder
    low, high = bounds
    expected = _RANGE_WORDS[bounds]

    def in_range(data: object) -> object:
        # Before the type's decoder, so that a time of 1e400 is named as a time.
        if type(data) in (int, float) and not low <= typing.cast(float, data) <= high:
            raise _Invalid(f"{{path}}: expected {expected}, got {_short(data)}")
        return decoder(data)

    return in_range


def _shortcut(tp: Any) -> tuple[type | None, bool]:
    """(the class a value of `tp` is taken as-is for, whether None is allowed as-is)."""
    options = typing.get_args(tp) if typing.get_origin(tp) in _UNION_TYPES else (tp,)
    nullable = type(None) in options
    others = [option for option in options if option is not type(None)]
    plain = others[0] if len(others) == 1 and others[0] in (str, int, float, bool) else None
    return plain, nullable


def _union_decoder(tp: Any) -> Decoder:
    options = typing.get_args(tp)
    nullable = type(None) in options
    others = [option for option in options if option is not type(None)]

    def union(data: object) -> object:
        if data is None and nullable:
            return None
        errors: list[_Invalid] = []
        for option in others:
            try:
                return _decoder(option)(data)
            except _Invalid as error:
                errors.append(error)
        if len(errors) == 1:
            raise errors[0]
        raise _Invalid("{path}: matches no allowed type")

    if nullable and len(others) == 1:
        only: list[Decoder] = []

        def optional(data: object) -> object:
            if data is None:
                return None
            if not only:
                only.append(_decoder(others[0]))
            return only[0](data)

        return optional
    return union


def _sequence_decoder(item_type: Any) -> Decoder:
    interned = item_type if item_type in INTERNED else None
    by_columns = dataclasses.is_dataclass(item_type) and isinstance(item_type, type)

    def sequence(data: object) -> tuple[Any, ...]:
        if not isinstance(data, list):
            if by_columns and isinstance(data, dict):
                return _columns_decoder(item_type)(data)
            raise _Invalid(f"{{path}}: expected a list, got {type(data).__name__}")
        if interned is not None:
            # A stack on the wire is a list of frame-table indexes: look them up in one go.
            table = getattr(_tables, "current", _NO_DECODE_TABLES).get(interned, ())
            try:
                found = [table[index] for index in data if type(index) is int and index >= 0]
            except IndexError:
                found = []
            if len(found) == len(data):
                return tuple(found)
        item = _decoder(item_type)
        try:
            return tuple([item(value) for value in data])
        except _Invalid as error:
            # Find which item failed (only on the error path).
            for index, value in enumerate(data):
                try:
                    item(value)
                except _Invalid as located:
                    raise located.at(f"[{index}]") from None
            raise error

    return sequence


_columns_decoders: dict[type, Callable[[dict[str, Any]], tuple[Any, ...]]] = {}


def _columns_decoder(cls: type) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    decoder = _columns_decoders.get(cls)
    if decoder is None:
        decoder = _columns_decoders[cls] = _compile_columns(cls)
    return decoder


ColumnPlan = list[tuple[str, bool, Any, Any, "Callable[[list[Any]], list[Any]]"]]


def _compile_columns(cls: type) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Objects of `cls` from the column form (see `to_json_dict`), a column at a time."""
    direct = not hasattr(cls, "__slots__") and not hasattr(cls, "__post_init__")
    plan: ColumnPlan | None = None

    def compile_plan() -> ColumnPlan:
        hints = _hints(cls)
        steps: ColumnPlan = []
        for f in dataclasses.fields(cls):
            missing = dataclasses.MISSING
            required = f.default is missing and f.default_factory is missing
            factory = None if f.default_factory is missing else f.default_factory
            column_decoder = _column_decoder(f.name, hints[f.name])
            steps.append((f.name, required, f.default, factory, column_decoder))
        return steps

    def decode(data: dict[str, Any]) -> tuple[Any, ...]:
        nonlocal plan
        if plan is None:
            plan = compile_plan()
        count = _column_count(data)
        names: list[str] = []
        columns: list[Iterable[Any]] = []
        for name, required, default, factory, column_decoder in plan:
            if name in data:
                columns.append(_decode_column(name, data[name], count, column_decoder))
            elif required:
                raise _Invalid(f"{{path}}: missing field {name!r}")
            elif factory is not None:
                columns.append([factory() for _ in range(count)])
            else:
                columns.append(itertools.repeat(default, count))
            names.append(name)
        states = _build_states(names)(columns)
        if not direct:
            return tuple(cls(**state) for state in states)
        instances: list[Any] = list(map(object.__new__, itertools.repeat(cls, count)))
        # Frozen: each instance dict is set as a whole, as the row decoder fills it (see there).
        deque(map(object.__setattr__, instances, itertools.repeat("__dict__"), states), maxlen=0)
        return tuple(instances)

    return decode


_state_builders: dict[tuple[str, ...], Callable[[list[Iterable[Any]]], list[dict[str, Any]]]] = {}


def _build_states(names: list[str]) -> Callable[[list[Iterable[Any]]], list[dict[str, Any]]]:
    """A function turning columns (in `names` order) into one instance dict per object.

    Generated once per field list, as `dataclasses` generates `__init__`: a dict display with
    constant keys builds each dict in one step, twice as fast as `dict(zip(names, row))`, which
    is most of the decoding time of a 10,000-task snapshot. The names are the model's own field
    names (identifiers), never data from the wire.
    """
    key = tuple(names)
    builder = _state_builders.get(key)
    if builder is None:
        assert all(name.isidentifier() for name in names)
        variables = [f"v{index}" for index in range(len(names))]
        items = ", ".join(f"{name!r}: v{index}" for index, name in enumerate(names))
        source = (
            f"def build(columns):\n"
            f"    return [{{{items}}} for {', '.join(variables)}, in zip(*columns)]\n"
        )
        namespace: dict[str, Any] = {}
        exec(source, namespace)  # noqa: S102
        builder = _state_builders[key] = namespace["build"]
    return builder


def _column_count(data: dict[str, Any]) -> int:
    """The `"$n"` of a column object, vouched for by a column that holds that many values."""
    count = data.get(COUNT_KEY)
    if type(count) is not int or count < 0:
        raise _Invalid(f"{{path}}: expected a count of objects, got {_short(count)}").at(
            f".{COUNT_KEY}"
        )
    # Nothing is allocated for a count that no column backs, known to this model or not.
    if count and not any(type(column) is list and len(column) == count for column in data.values()):
        raise _Invalid(f"{{path}}: no column holds {count} values")
    return count


def _decode_column(
    name: str, column: object, count: int, column_decoder: Callable[[list[Any]], list[Any]]
) -> list[Any]:
    try:
        if type(column) is not list:
            raise _Invalid(f"{{path}}: expected a list, got {type(column).__name__}")
        if len(column) != count:
            raise _Invalid(f"{{path}}: expected {count} values, got {len(column)}")
        return column_decoder(column)
    except _Invalid as error:
        raise error.at(f".{name}") from None


def _column_decoder(name: str, tp: Any) -> Callable[[list[Any]], list[Any]]:
    """Decodes a column of field `name`, of type `tp`: in bulk where the type allows, else by value.

    The bulk checks accept exactly what the value decoders take as-is; anything else (an int
    for a float, a frame written in full, a bad value or one out of range) goes through the
    value decoders, which convert it or name the offending index.
    """
    bulk = _bulk_column(tp, _bounds(name, tp))
    by_value: list[Decoder] = []

    def column(values: list[Any]) -> list[Any]:
        if bulk is not None:
            decoded = bulk(values)
            if decoded is not None:
                return decoded
        if not by_value:
            by_value.append(_field_decoder(name, tp))
        return _decode_each(by_value[0], values)

    return column


def _decode_each(item: Decoder, values: list[Any]) -> list[Any]:
    try:
        return [item(value) for value in values]
    except _Invalid as error:
        for index, value in enumerate(values):  # find which value failed (error path only)
            try:
                item(value)
            except _Invalid as located:
                raise located.at(f"[{index}]") from None
        raise error


BulkColumn = Callable[[list[Any]], "list[Any] | None"]


def _bulk_column(tp: Any, bounds: tuple[float, float] | None = None) -> BulkColumn | None:
    """A check-and-convert for a whole column of `tp`, None where it takes a value at a time."""
    options = typing.get_args(tp) if typing.get_origin(tp) in _UNION_TYPES else (tp,)
    none: frozenset[type] = frozenset((type(None),)) if type(None) in options else frozenset()
    others = [option for option in options if option is not type(None)]
    if len(others) != 1:
        return None
    (only,) = others
    if only in (str, int, float, bool):
        return _bulk_plain(frozenset((only,)) | none, bounds)
    if typing.get_origin(only) is Literal:
        allowed = typing.get_args(only)
        if all(type(value) is str for value in allowed):
            return _bulk_literal(frozenset(allowed), bool(none))
        return None
    if only in INTERNED:
        return _bulk_interned(only, bool(none))
    args = typing.get_args(only)
    if typing.get_origin(only) is tuple and not none and len(args) == 2 and args[1] is Ellipsis:
        if args[0] in INTERNED:
            return _bulk_interned_tuples(args[0])
        if args[0] in (str, int, float, bool):
            # Only floats are checked item by item (ints in tuples are ids): as `number` does.
            items = (-MAX_MAGNITUDE, MAX_MAGNITUDE) if args[0] is float else None
            return _bulk_plain_tuples(args[0], items)
    return None


def _bulk_plain(allowed: frozenset[type], bounds: tuple[float, float] | None) -> BulkColumn:
    if bounds is None:

        def plain(values: list[Any]) -> list[Any] | None:
            return values if set(map(type, values)) <= allowed else None

        return plain
    low, high = bounds
    floats = float in allowed

    def numbers(values: list[Any]) -> list[Any] | None:
        kinds = set(map(type, values))
        if not kinds <= allowed:
            return None
        present = list(filter(None, values)) if type(None) in kinds else values  # 0 is in range
        return values if _within(present, low, high, floats=floats) else None

    return numbers


def _within(values: list[Any], low: float, high: float, *, floats: bool) -> bool:
    """Whether every number lies in [low, high], in a few passes of C (no step per value)."""
    if not values:
        return True
    if floats:
        total = sum(values)
        if total - total != 0:  # NaN or inf among them (or a sum that overflowed)
            return False
    return bool(low <= min(values) and max(values) <= high)


def _bulk_literal(allowed: frozenset[str], nullable: bool) -> BulkColumn:
    kinds = frozenset((str, type(None))) if nullable else frozenset((str,))
    accepted: frozenset[Any] = allowed | {None} if nullable else allowed

    def literal(values: list[Any]) -> list[Any] | None:
        if set(map(type, values)) <= kinds and set(values) <= accepted:
            return values
        return None

    return literal


def _current_table(cls: type) -> tuple[Any, ...]:
    tables: dict[type, tuple[Any, ...]] = getattr(_tables, "current", _NO_DECODE_TABLES)
    return tables.get(cls, ())


def _in_table(indexes: list[Any], size: int) -> bool:
    """Whether every item is a table index: an int (never a bool), 0 <= index < size."""
    return not indexes or (
        set(map(type, indexes)) == {int} and min(indexes) >= 0 and max(indexes) < size
    )


def _bulk_interned(cls: type, nullable: bool) -> BulkColumn:
    def interned(values: list[Any]) -> list[Any] | None:
        table = _current_table(cls)
        if nullable and None in values:
            present = [value for value in values if value is not None]
            if not _in_table(present, len(table)):
                return None
            return [None if value is None else table[value] for value in values]
        return list(map(table.__getitem__, values)) if _in_table(values, len(table)) else None

    return interned


def _bulk_interned_tuples(cls: type) -> BulkColumn:
    def stacks(values: list[Any]) -> list[Any] | None:
        if not values:
            return values
        if set(map(type, values)) != {list}:
            return None
        if set(map(type, itertools.chain.from_iterable(values))) != {int}:
            return None  # before hashing: 1.0 and True would find the entry of 1
        # Tasks parked at one place have equal stacks: each distinct one is built once, shared.
        keys = list(map(tuple, values))
        distinct = dict.fromkeys(keys)
        table = _current_table(cls)
        if not _in_table(list(itertools.chain.from_iterable(distinct)), len(table)):
            return None
        getitem = table.__getitem__
        for key in distinct:
            distinct[key] = tuple(map(getitem, key))
        return list(map(distinct.__getitem__, keys))

    return stacks


def _bulk_plain_tuples(item_type: type, bounds: tuple[float, float] | None) -> BulkColumn:
    def tuples(values: list[Any]) -> list[Any] | None:
        if values and set(map(type, values)) != {list}:
            return None
        items = list(itertools.chain.from_iterable(values))
        if not set(map(type, items)) <= {item_type}:
            return None
        if bounds is not None and not _within(items, *bounds, floats=item_type is float):
            return None
        return list(map(tuple, values))

    return tuples


def _fixed_tuple_decoder(args: tuple[Any, ...]) -> Decoder:
    def fixed(data: object) -> tuple[Any, ...]:
        if not isinstance(data, list):
            raise _Invalid(f"{{path}}: expected a list, got {type(data).__name__}")
        if len(args) != len(data):
            raise _Invalid(f"{{path}}: expected {len(args)} items, got {len(data)}")
        values = []
        for index, (arg, value) in enumerate(zip(args, data, strict=True)):
            try:
                values.append(_decoder(arg)(value))
            except _Invalid as error:
                raise error.at(f"[{index}]") from None
        return tuple(values)

    return fixed


def _dict_decoder(key_type: Any, value_type: Any) -> Decoder:
    def mapping(data: object) -> dict[Any, Any]:
        if not isinstance(data, dict):
            raise _Invalid(f"{{path}}: expected an object, got {type(data).__name__}")
        result = {}
        for key, value in data.items():
            try:
                decoded_key = _decoder(key_type)(key)
            except _Invalid as error:
                raise error.at(".<key>") from None
            try:
                result[decoded_key] = _decoder(value_type)(value)
            except _Invalid as error:
                raise error.at(f".{key}") from None
        return result

    return mapping


def _short(data: object) -> str:
    if type(data) is int and data.bit_length() > 128:
        return f"an integer of {data.bit_length()} bits"  # repr refuses past 4300 digits
    text = repr(data)
    return text if len(text) <= 40 else text[:37] + "..."
