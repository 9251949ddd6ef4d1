"""The snapshot model: what the agent reports and every client reads.

Pure data. Frozen dataclasses with a JSON round trip (`to_json_dict` / `from_json_dict`) that
validates every field on the way in, because a client decodes whatever the peer sends. Both the
agent and the client import this module, so it imports only the standard library.

Times: `*_at` fields are wall-clock seconds since the epoch (`time.time()`) in the target
process; durations and ages are seconds. Task and request ids are opaque integers that are
stable for the life of the object in the target process.
"""

from __future__ import annotations

import dataclasses
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar, Union

SCHEMA_VERSION: Final = 1
"""Bumped when a field changes meaning or is removed; adding a defaulted field does not bump it."""

TaskState = Literal["pending", "running", "done", "cancelled", "failed"]
RequestPhase = Literal[
    "receiving",  # reading the request body
    "handler",  # in the endpoint (or its dependencies)
    "sending",  # response started, not finished
    "streaming",  # a streaming response is producing its body
    "background",  # response sent, running its background tasks
    "done",
]
BackgroundState = Literal["queued", "running", "done", "failed", "dropped", "skipped", "cancelled"]
ExceptionKind = Literal[
    "task-exception-unretrieved",
    "coroutine-never-awaited",
    "background-failed",
    "logged-error",
    "exception-swallowed",
]
WaitKind = Literal[
    "lock",
    "semaphore",
    "event",
    "condition",
    "queue-get",
    "queue-put",
    "queue-join",
    "sleep",
    "task",
    "gather",
    "taskgroup",
    "thread",  # a concurrent future run in a thread (to_thread, run_in_executor, anyio)
    "limiter",  # an anyio CapacityLimiter token
    "stream",  # a stream / socket read
    "future",
    "unknown",
]


class ModelError(ValueError):
    """Raised when data does not match the model; the message names the offending path."""


# --- building blocks -------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One stack frame. `code` is the stripped source line when it could be read."""

    file: str
    line: int
    function: str
    code: str | None = None

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class WaitInfo:
    """What a suspended task waits for: the leaf of its await chain, in words and ids."""

    kind: WaitKind
    description: str
    object_id: int | None = None
    """`id()` of the awaited primitive, shared by every task that waits on the same object."""
    holder_task_ids: tuple[int, ...] = ()
    """Tasks that hold the primitive (a Lock's owner, a Semaphore's holders) where known."""
    awaited_task_ids: tuple[int, ...] = ()
    """Tasks awaited (a task, gather or TaskGroup children)."""
    waiters: int | None = None
    is_set: bool | None = None
    remaining: float | None = None
    """Seconds left for a sleep or timeout."""
    thread_id: int | None = None
    """The worker thread running the awaited function, for kind="thread"."""


@dataclass(frozen=True)
class TaskInfo:
    """One asyncio task of the app's loop."""

    id: int
    name: str
    state: TaskState
    coro: str
    """Qualified name of the task's coroutine."""
    stack: tuple[Frame, ...] = ()
    """The await chain, outermost coroutine first. For the running task: the loop thread's
    real stack (task.get_stack() is wrong for a running task)."""
    waiting_on: WaitInfo | None = None
    age: float | None = None
    """Seconds since the agent first saw the task (or since creation where known)."""
    created_at: Frame | None = None
    request_id: int | None = None
    """The request this task serves, or the request it was created while serving."""
    parent_task_id: int | None = None
    exception: str | None = None
    """repr() of the exception of a finished task (read without retrieving it)."""


@dataclass(frozen=True)
class StackSample:
    """The loop thread's stack sampled `offset` seconds after a stall began."""

    offset: float
    frames: tuple[Frame, ...]


@dataclass(frozen=True)
class Stall:
    """An interval during which the app loop did not run its heartbeat."""

    id: int
    started_at: float
    duration: float
    ongoing: bool
    samples: tuple[StackSample, ...] = ()
    task_id: int | None = None
    task_name: str | None = None
    request_id: int | None = None
    request_label: str | None = None
    """"GET /export" when the stall happened while serving a request."""
    background_label: str | None = None
    """The background job's function when the stall happened in a background task."""


@dataclass(frozen=True)
class LoopStats:
    """Event-loop health as measured by the heartbeat."""

    implementation: str
    """"asyncio" or "uvloop" (the loop's class module and name otherwise)."""
    lag: float
    """The latest heartbeat lag, seconds."""
    lag_series: tuple[tuple[float, float], ...] = ()
    """(wall time, lag seconds) pairs, oldest first, bounded."""
    stall_threshold: float = 0.1
    stalled_for: float | None = None
    """Seconds the loop has been stalled right now, or None when it is running."""
    total_stalls: int = 0
    total_stalled_seconds: float = 0.0


@dataclass(frozen=True)
class RequestInfo:
    """One HTTP or WebSocket request, in flight or recently finished."""

    id: int
    method: str
    path: str
    started_at: float
    phase: RequestPhase
    route: str | None = None
    """The route template ("/users/{id}") once routing matched."""
    client: str | None = None
    duration: float | None = None
    """Seconds from start to the end (finished) or to the snapshot (in flight)."""
    status: int | None = None
    bytes_sent: int = 0
    disconnected: bool = False
    """The client went away while the request was still being served."""
    disconnected_at: float | None = None
    """When the client went away, if it did."""
    task_id: int | None = None
    thread_ids: tuple[int, ...] = ()
    """Worker threads running this request's sync endpoint or dependencies right now."""
    background_ids: tuple[int, ...] = ()
    error: str | None = None
    """repr() of the exception the endpoint raised, if any."""
    scheme: str = "http"


@dataclass(frozen=True)
class RouteStats:
    """Latency of finished requests per route, over the agent's recent window."""

    route: str
    method: str
    count: int
    errors: int
    p50: float
    p95: float
    max: float


@dataclass(frozen=True)
class ExceptionInfo:
    """An exception with its traceback, innermost frame last."""

    type: str
    message: str
    traceback: tuple[Frame, ...] = ()


@dataclass(frozen=True)
class BackgroundJob:
    """One Starlette BackgroundTask, from enqueue to outcome."""

    id: int
    function: str
    state: BackgroundState
    queued_at: float
    request_id: int | None = None
    call_site: Frame | None = None
    """Where `add_task` (or `BackgroundTask(...)`) was called."""
    started_at: float | None = None
    finished_at: float | None = None
    error: ExceptionInfo | None = None
    reason: str | None = None
    """Why a job was dropped, skipped or flagged, in words."""
    flagged: str | None = None
    """A problem seen at enqueue time, e.g. "add_task() got a coroutine object"."""
    dispatch: Literal["loop", "threadpool"] | None = None
    task_id: int | None = None


@dataclass(frozen=True)
class ThreadInfo:
    """A Python thread of the process with its current stack."""

    id: int
    name: str
    pool: Literal["loop", "anyio", "executor", "agent", "other"]
    stack: tuple[Frame, ...] = ()
    request_id: int | None = None
    busy: bool = False
    """True when the thread runs a submitted job (not idling in its pool's queue)."""


@dataclass(frozen=True)
class Borrower:
    """A task that holds a token of anyio's default thread limiter."""

    task_id: int
    request_id: int | None = None
    since: float | None = None


@dataclass(frozen=True)
class ThreadpoolState:
    """anyio's default CapacityLimiter for the loop, and the loop's default executor."""

    total: int
    borrowed: int
    waiting: int
    borrowers: tuple[Borrower, ...] = ()
    executor_max_workers: int | None = None
    executor_threads: int = 0
    executor_queued: int = 0


@dataclass(frozen=True)
class ExceptionEvent:
    """An exception nobody looked at."""

    id: int
    kind: ExceptionKind
    at: float
    error: ExceptionInfo
    location: Frame | None = None
    """The innermost application frame (raise site, creation line, `except` line)."""
    request_id: int | None = None
    request_label: str | None = None
    task_name: str | None = None
    count: int = 1
    """How many identical events (same kind, type and location) were folded into this one."""


@dataclass(frozen=True)
class ProcessInfo:
    """The target process, as reported in the handshake."""

    pid: int
    argv: tuple[str, ...] = ()
    python: str = ""
    started_at: float | None = None
    ppid: int | None = None
    cwd: str | None = None
    uvicorn: str | None = None
    app: str | None = None
    loop: str | None = None
    agent_version: str | None = None
    worker: int | None = None
    """Index of this worker among `--workers N`, when known."""


@dataclass(frozen=True)
class AgentHealth:
    """The agent's own errors: probes catch them, count them and report them here."""

    errors: int = 0
    recent_errors: tuple[str, ...] = ()
    dropped_events: int = 0
    collect_seconds: float = 0.0
    probes: tuple[str, ...] = ()
    """Probes that are installed and working."""
    read_only: bool = False


# --- the snapshot ----------------------------------------------------------------------------


Capability = Literal[
    "tasks", "stacks", "stalls", "requests", "background", "threadpool", "exceptions", "cancel"
]
ALL_CAPABILITIES: Final[tuple[Capability, ...]] = typing.get_args(Capability)


@dataclass(frozen=True)
class Snapshot:
    """Everything known about one target process at one instant, plus its bounded histories."""

    process: ProcessInfo
    taken_at: float
    loop: LoopStats | None = None
    tasks: tuple[TaskInfo, ...] = ()
    current_task_id: int | None = None
    """The task running on the loop at the instant of the snapshot, if any."""
    loop_thread_stack: tuple[Frame, ...] = ()
    stalls: tuple[Stall, ...] = ()
    requests: tuple[RequestInfo, ...] = ()
    """In flight, oldest first."""
    recent_requests: tuple[RequestInfo, ...] = ()
    """Recently finished, newest last, bounded."""
    routes: tuple[RouteStats, ...] = ()
    background: tuple[BackgroundJob, ...] = ()
    threadpool: ThreadpoolState | None = None
    threads: tuple[ThreadInfo, ...] = ()
    exceptions: tuple[ExceptionEvent, ...] = ()
    health: AgentHealth = field(default_factory=AgentHealth)
    capabilities: tuple[Capability, ...] = ALL_CAPABILITIES
    """What the source could report: a plain aiomonitor has no requests, stalls, …"""
    source: Literal["agent", "aiomonitor", "file"] = "agent"
    schema: int = SCHEMA_VERSION

    def task(self, task_id: int) -> TaskInfo | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def request(self, request_id: int) -> RequestInfo | None:
        for request in self.requests:
            if request.id == request_id:
                return request
        return next((r for r in self.recent_requests if r.id == request_id), None)

    @property
    def ongoing_stall(self) -> Stall | None:
        return next((s for s in reversed(self.stalls) if s.ongoing), None)

    def to_json_dict(self) -> dict[str, Any]:
        return typing.cast("dict[str, Any]", to_json_dict(self))

    @classmethod
    def from_json_dict(cls, data: object) -> Snapshot:
        return from_json_dict(cls, data)


# --- JSON round trip -------------------------------------------------------------------------

T = TypeVar("T")

MAX_DEPTH: Final = 64
_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType)
_hints_cache: dict[type, dict[str, Any]] = {}


def to_json_dict(obj: Any, *, compact: bool = False) -> Any:
    """A model object as JSON-ready data: dataclasses become dicts, tuples become lists.

    `compact` is the wire form: fields that hold their default (None, (), 0, False, ...) are left
    out, and each distinct `Frame` is written once, in a `"$frames"` table beside the top-level
    fields, and referred to by its index. Thousands of tasks parked on the same lines then cost
    a few characters each instead of a few hundred. `from_json_dict` reads both forms; saved files
    and `--format json` use the full form, for people and jq.
    """
    if not compact:
        return _encode(obj, None)
    table: dict[Frame, int] = {}
    data = _encode(obj, table)
    if table and isinstance(data, dict):
        data[FRAME_TABLE_KEY] = [_encode(frame, None) for frame in table]
    return data


FRAME_TABLE_KEY: Final = "$frames"


def _encode(obj: Any, frames: dict[Frame, int] | None) -> Any:
    kind = type(obj)
    if kind in _SCALARS or obj is None:
        return obj
    if kind is Frame and frames is not None:
        index = frames.get(obj)
        if index is None:
            index = frames[obj] = len(frames)
        return index
    if kind is tuple or kind is list:
        return [_encode(item, frames) for item in obj]
    if kind is dict:
        return {str(key): _encode(value, frames) for key, value in obj.items()}
    fields = _field_defaults.get(kind)
    if fields is None:
        if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
            return obj
        fields = _defaults_of(kind)
    values = obj.__dict__
    out: dict[str, Any] = {}
    scalars = _SCALARS
    for name, default in fields:
        value = values[name]
        value_type = type(value)
        if frames is not None and value_type is type(default) and value == default:
            continue
        # Scalars inline: a call per field is most of the cost of a 10,000-task snapshot.
        out[name] = value if value_type in scalars or value is None else _encode(value, frames)
    return out


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


def from_json_dict(cls: type[T], data: object) -> T:
    """Build `cls` from JSON data, checking every field's type; raises ModelError.

    Unknown keys are ignored (a newer agent may add fields); missing keys take the field's
    default, and a missing required field is an error. A decoder is compiled once per type;
    paths for messages are built only when something fails.
    """
    table: tuple[Frame, ...] = ()
    if isinstance(data, dict) and FRAME_TABLE_KEY in data:
        table = _decode_frame_table(data[FRAME_TABLE_KEY])
    previous = getattr(_frame_tables, "current", ())
    _frame_tables.current = table
    try:
        return typing.cast(T, _decoder(cls)(data))
    except _Invalid as error:
        raise error.model_error() from None
    finally:
        _frame_tables.current = previous


def _decode_frame_table(data: object) -> tuple[Frame, ...]:
    try:
        return typing.cast("tuple[Frame, ...]", _decoder(tuple[Frame, ...])(data))
    except _Invalid as error:
        raise error.at(f".{FRAME_TABLE_KEY}").model_error() from None


_frame_tables = threading.local()
"""The `"$frames"` table of the message being decoded on this thread (see `to_json_dict`)."""


def _frame_decoder(by_fields: Decoder) -> Decoder:
    def frame(data: object) -> Any:
        if type(data) is int:
            table: tuple[Frame, ...] = getattr(_frame_tables, "current", ())
            if 0 <= data < len(table):
                return table[data]
            raise _Invalid(f"{{path}}: frame {data} is not in the frame table")
        return by_fields(data)

    return frame


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
    if tp is Frame:
        return _frame_decoder(_dataclass_decoder(tp))
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
            if type(data) is float:
                return data
            if isinstance(data, bool) or not isinstance(data, (int, float)):
                raise _Invalid(f"{{path}}: expected a number, got {_short(data)}")
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
    plan: list[tuple[str, Decoder, bool, Any, Any, type | None, bool]] | None = None

    def compile_plan() -> list[tuple[str, Decoder, bool, Any, Any, type | None, bool]]:
        # Compiled on first use, when this decoder is already cached: a model type that
        # refers to itself would find it instead of recursing.
        hints = _hints(cls)
        steps = []
        for f in dataclasses.fields(cls):
            missing = dataclasses.MISSING
            required = f.default is missing and f.default_factory is missing
            factory = None if f.default_factory is dataclasses.MISSING else f.default_factory
            field_type = hints[f.name]
            steps.append(
                (f.name, _decoder(field_type), required, f.default, factory, *_shortcut(field_type))
            )
        return steps

    new = object.__new__

    def decode(data: object) -> object:
        nonlocal plan
        if not isinstance(data, dict):
            raise _Invalid(f"{{path}}: expected an object, got {type(data).__name__}")
        if plan is None:
            plan = compile_plan()
        state: dict[str, Any] = {}
        for name, field_decoder, required, default, factory, plain, nullable in plan:
            if name in data:
                value = data[name]
                if value.__class__ is plain or (value is None and nullable):
                    state[name] = value  # already the right type: nothing to convert
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
    def sequence(data: object) -> tuple[Any, ...]:
        if not isinstance(data, list):
            raise _Invalid(f"{{path}}: expected a list, got {type(data).__name__}")
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
    text = repr(data)
    return text if len(text) <= 40 else text[:37] + "..."
