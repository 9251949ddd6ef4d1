"""Waits for a connection from a pool, in the pool's own terms.

A task waiting for httpx's pool ends in an anyio Event; one waiting for aiohttp's connector in a
bare Future; one waiting for SQLAlchemy's async pool in `greenlet_spawn`; one waiting for a pool
written in the app in `Queue.get`, `Semaphore.acquire` or `Condition.wait`. Said as "Event not
set" none of them tells the user that every connection is checked out. Here the frames of a
waiting task are matched against the pools' own waiting functions (httpcore's
`AsyncPoolRequest.wait_for_connection`, aiohttp's `_wait_for_available_connection`, the
`QueuePool._do_get` inside SQLAlchemy's greenlet, or a primitive awaited from a method of a
class named like a pool, which is also how asyncpg's `Pool` and redis's
`BlockingConnectionPool` wait), and the pool object found there says its capacity, how many are
in use, how many wait, and, where the frames of other tasks show it (httpx, aiohttp), which
tasks hold the connections.

Every read is of a suspended frame's locals and of plain attributes, from the agent's thread,
once per pool per collect.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from inspector.agent.known_code import KnownCode
from inspector.agent.locks import asyncio_class
from inspector.frame_kinds import classify
from inspector.model import WaitInfo

SCAN_TASKS: Final = 2000
"""Tasks whose frames are searched for the holders of one pool, at most."""
HOME_MADE_DEPTH: Final = 4
"""Frames above a Queue.get / Semaphore.acquire searched for a pool's method."""
LIBRARY_DIRS: Final = ("httpcore", "httpx", "aiohttp")
"""Packages whose frames can hold a pool's connection."""

CAPACITY_ATTRIBUTES: Final = (
    "max_size",
    "maxsize",
    "max_connections",
    "size",
    "capacity",
    "_max_size",
    "_maxsize",
    "_max_connections",
    "_size",
)
"""Where pools written in the app (and asyncpg's, redis's) keep how many connections they lend."""

Chain = Callable[[object], "tuple[list[types.FrameType], object | None]"]
RequestOf = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class _Library:
    """A pool library: where its waiters wait and how its pool object counts."""

    name: str
    module: str
    waiting_function: str
    """The function a task waiting for a connection is suspended in (dotted, in `module`)."""


HTTPCORE: Final = _Library(
    "httpx", "httpcore._async.connection_pool", "AsyncPoolRequest.wait_for_connection"
)
AIOHTTP: Final = _Library(
    "aiohttp", "aiohttp.connector", "BaseConnector._wait_for_available_connection"
)
SQLALCHEMY: Final = _Library("SQLAlchemy", "sqlalchemy.util.concurrency", "greenlet_spawn")
"""SQLAlchemy's async engine runs its pool in a greenlet: the task awaits in `greenlet_spawn`,
and the greenlet's own (suspended) stack holds the pool's `_do_get`."""
LIBRARIES: Final = (HTTPCORE, AIOHTTP, SQLALCHEMY)
GREENLET_DEPTH: Final = 40
"""Frames of a suspended greenlet searched for the pool's `_do_get`."""


_codes: Final = KnownCode(
    (library.module, library.waiting_function, library) for library in LIBRARIES
)


@dataclass(frozen=True)
class PoolState:
    name: str
    """"httpx's pool", "aiohttp's connector", "ConnectionPool"."""
    capacity: int | None
    in_use: int | None
    waiting: int


def pool_wait(
    frames: list[types.FrameType],
    info: WaitInfo | None,
    loop: asyncio.AbstractEventLoop,
    chain: Chain | None,
    shared: Callable[[tuple[Any, ...], Callable[[], WaitInfo]], WaitInfo],
    request_of: RequestOf | None = None,
) -> WaitInfo | None:
    """A `kind="pool"` description when the task waits for a pool's connection, else None.
    The table of the libraries' waiting functions is brought up to date once per collect
    (`refresh_known`), not for each waiting task."""
    codes = _codes.by_id
    if codes:
        for index in range(len(frames) - 1, max(-1, len(frames) - 8), -1):
            library = codes.get(id(frames[index].f_code))
            if library is not None:
                pool = _library_pool(library, frames, index)
                if pool is not None:
                    return shared(
                        ("pool", id(pool)),
                        partial(_describe, library, pool, loop, chain, request_of),
                    )
    if info is not None and info.kind in ("queue-get", "semaphore", "condition"):
        return _home_made(frames, info)
    return None


def refresh_known() -> None:
    """Look up the waiting functions of pool libraries imported since the last collect."""
    _codes.fresh()


def _self_of(frame: types.FrameType) -> Any:
    return frame.f_locals.get("self")  # read only (a write-through proxy on 3.13)


def _library_pool(library: _Library, frames: list[types.FrameType], index: int) -> Any:
    if library is HTTPCORE:
        # wait_for_connection belongs to the request; the pool is the caller's `self`.
        return _self_of(frames[index - 1]) if index > 0 else None
    if library is SQLALCHEMY:
        return _sqlalchemy_pool(frames[index])
    return _self_of(frames[index])


def _sqlalchemy_pool(spawn: types.FrameType) -> Any:
    """The QueuePool whose `_do_get` the greenlet awaiting in `spawn` is suspended in."""
    greenlet = spawn.f_locals.get("context")
    frame = getattr(greenlet, "gr_frame", None)
    for _ in range(GREENLET_DEPTH):
        if frame is None:
            return None
        code = frame.f_code
        if code.co_name == "_do_get" and code.co_filename.replace("\\", "/").endswith(
            "sqlalchemy/pool/impl.py"
        ):
            return frame.f_locals.get("self")
        frame = frame.f_back
    return None


def _state(library: _Library, pool: Any) -> PoolState:
    if library is HTTPCORE:
        requests = list(getattr(pool, "_requests", ()))
        waiting = sum(1 for request in requests if getattr(request, "connection", 1) is None)
        capacity = getattr(pool, "_max_connections", None)
        if not isinstance(capacity, int) or capacity >= sys.maxsize:
            capacity = None
        return PoolState("httpx's pool", capacity, len(requests) - waiting, waiting)
    if library is SQLALCHEMY:
        return _sqlalchemy_state(pool)
    limit = getattr(pool, "_limit", 0)
    waiters = getattr(pool, "_waiters", {}) or {}
    waiting = sum(len(queue) for queue in list(waiters.values()))
    return PoolState(
        "aiohttp's connector",
        limit if isinstance(limit, int) and limit > 0 else None,
        len(getattr(pool, "_acquired", ())),
        waiting,
    )


def _sqlalchemy_state(pool: Any) -> PoolState:
    queue = getattr(pool, "_pool", None)
    size = getattr(queue, "maxsize", 0)
    waiting_room = vars(queue).get("_queue") if hasattr(queue, "__dict__") else None
    idle = waiting_room.qsize() if isinstance(waiting_room, asyncio.Queue) else 0
    overflow = getattr(pool, "_overflow", 0)
    max_overflow = getattr(pool, "_max_overflow", 0)
    capacity = None if max_overflow < 0 else size + max_overflow
    waiting = len(getattr(waiting_room, "_getters", ()) or ())
    return PoolState("SQLAlchemy's pool", capacity, size - idle + overflow, waiting)


def _describe(
    library: _Library,
    pool: Any,
    loop: asyncio.AbstractEventLoop,
    chain: Chain | None,
    request_of: RequestOf | None,
) -> WaitInfo:
    state = _state(library, pool)
    scanned = chain is not None and library is not SQLALCHEMY  # its holders run in greenlets
    holders = _holders(pool, library, loop, chain) if scanned and chain is not None else []
    return WaitInfo(
        kind="pool",
        description=_words(state, holders if scanned else None, request_of),
        object_id=id(pool),
        holder_task_ids=tuple(id(task) for task in holders),
        waiters=state.waiting,
        capacity=state.capacity,
        in_use=state.in_use,
    )


HOLDERS_NAMED: Final = 3


def _words(
    state: PoolState,
    holders: list[asyncio.Task[Any]] | None,
    request_of: RequestOf | None = None,
) -> str:
    """What the task waits for, as a noun: "a connection from httpx's pool: 2 of 2 in use by
    GET /images/1, GET /images/2, 1 waiting"."""
    capacity = f" of {state.capacity}" if state.capacity is not None else ""
    text = f"a connection from {state.name}: {state.in_use}{capacity} in use"
    if holders and request_of is not None:
        labels = [label for label in (_label(request_of, task) for task in holders) if label]
        if labels:
            more = len(holders) - HOLDERS_NAMED
            text += (
                " by "
                + ", ".join(labels[:HOLDERS_NAMED])
                + (f" and {more} more" if more > 0 else "")
            )
    text += f", {state.waiting} waiting"
    if holders is not None and state.in_use is not None and len(holders) < state.in_use:
        text += f"; {state.in_use - len(holders)} held by no running task (never released)"
    return text


def _label(request_of: RequestOf, task: asyncio.Task[Any]) -> str | None:
    try:
        return request_of(task)
    except Exception:
        return None


def _holders(
    pool: Any, library: _Library, loop: asyncio.AbstractEventLoop, chain: Chain
) -> list[asyncio.Task[Any]]:
    """Tasks inside a call through `pool` that are not waiting for it: they hold a connection."""
    waiting_code = _codes.code_of.get(id(library))
    holders: list[asyncio.Task[Any]] = []
    for task in _tasks(loop)[:SCAN_TASKS]:
        try:
            frames, _ = chain(task.get_coro())
        except Exception:
            continue
        library_frames = [f for f in frames if _in_library(f.f_code.co_filename)]
        if not library_frames or any(f.f_code is waiting_code for f in library_frames):
            continue
        if any(_refers_to(_self_of(frame), pool) for frame in library_frames):
            holders.append(task)
    return holders


def _in_library(filename: str) -> bool:
    parts = filename.replace("\\", "/").split("/")
    return any(package in parts for package in LIBRARY_DIRS)


def _refers_to(obj: Any, pool: Any) -> bool:
    """`obj` is the pool, or one of the objects that lead to it (a stream, a transport, a
    session, a response's connection)."""
    if obj is None:
        return False
    if obj is pool:
        return True
    for attribute in ("_pool", "_connector"):
        if getattr(obj, attribute, None) is pool:
            return True
    transport = getattr(obj, "_transport", None)
    if getattr(transport, "_pool", None) is pool:
        return True
    connection = getattr(obj, "_connection", None)
    return getattr(connection, "_connector", None) is pool


def _tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    for _ in range(20):
        try:
            return list(asyncio.all_tasks(loop))
        except RuntimeError:  # the set changed while it was copied
            continue
    return []


# --- home-made pools ---------------------------------------------------------------------------


def _home_made(frames: list[types.FrameType], info: WaitInfo) -> WaitInfo | None:
    """A Queue.get, Semaphore.acquire or Condition.wait called from a method of a class named
    like a pool."""
    for frame in _callers(frames, HOME_MADE_DEPTH):
        if not _may_be_pool_method(frame.f_code):
            continue
        owner = _self_of(frame)
        if owner is None or isinstance(owner, _PRIMITIVES):
            continue  # the primitive itself (a Semaphore subclass), not a pool holding one
        if "pool" not in type(owner).__name__.lower():
            continue
        capacity = _capacity(owner)
        name = type(owner).__name__
        if info.kind == "semaphore":
            in_use: int | None = len(info.holder_task_ids) or None
            if capacity is not None:
                in_use = max(in_use or 0, capacity - max(0, _semaphore_value(owner, capacity)))
        else:
            in_use = capacity  # the queue is empty: every connection is out
        state = PoolState(name, capacity, in_use, info.waiters or 1)
        return WaitInfo(
            kind="pool",
            description=_words(state, None),
            object_id=id(owner),
            holder_task_ids=info.holder_task_ids,
            waiters=state.waiting,
            capacity=capacity,
            in_use=in_use,
        )
    return None


def _primitives() -> tuple[type, ...]:
    """asyncio's own classes, even where the app (or a helper) replaced `asyncio.Semaphore`."""
    found: list[type] = [asyncio.Queue, asyncio.Condition]
    for name in ("Semaphore", "Lock"):
        try:
            found.append(asyncio_class(name))
        except LookupError:
            continue
    return tuple(found)


_PRIMITIVES: Final = _primitives()


def _may_be_pool_method(code: types.CodeType) -> bool:
    """Whether a frame can be a method of a class named like a pool, from its code alone
    (3.11+ qualified names say the class), so the frame's locals are read only for those."""
    qualname = getattr(code, "co_qualname", None)
    if qualname is None:  # Python 3.10: only the locals can tell
        return "self" in code.co_varnames
    owner, _, _ = qualname.rpartition(".")
    return "pool" in owner.lower()


def _callers(frames: list[types.FrameType], depth: int) -> Iterable[types.FrameType]:
    """The frames above the asyncio primitive's own, innermost first."""
    outer = [f for f in frames if not _is_asyncio(f.f_code.co_filename)]
    return reversed(outer[-depth:])


def _is_asyncio(filename: str) -> bool:
    """The standard library's asyncio (not a library's own `asyncio` package: redis.asyncio)."""
    return classify(filename) == "stdlib" and "asyncio" in filename.replace("\\", "/").split("/")


def _capacity(pool: Any) -> int | None:
    for attribute in CAPACITY_ATTRIBUTES:
        value = getattr(pool, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _semaphore_value(pool: Any, capacity: int) -> int:
    for value in vars(pool).values() if hasattr(pool, "__dict__") else ():
        if isinstance(value, asyncio.Semaphore):
            return int(getattr(value, "_value", capacity))
    return capacity
