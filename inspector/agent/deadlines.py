"""When the timeout around a task's current wait fires: `asyncio.timeout`, `wait_for`, anyio.

A task parked in `asyncio.wait_for(queue.get(), timeout=20)` or under `async with
asyncio.timeout(...)` is not stuck: the timeout will end the wait. What tells is on the loop:
each such timeout is a timer handle whose callback belongs to the task (`Timeout._on_timeout`
with its `_task`, anyio's `CancelScope._timeout` with its `_host_task`; on 3.10, `wait_for`'s
`_release_waiter` with the future the task awaits). One pass over the loop's timers finds them
all, so reading them costs one copy of the timer heap per snapshot.

uvloop keeps its timers in C, out of reach. There, a task awaiting `asyncio.wait_for` is still
known to wait under a timeout, from the `timeout` argument of the `wait_for` coroutine in its
await chain: the seconds it has left are then at most that. `asyncio.timeout` scopes are noted
as they are entered (`timeout_registry`, installed only on such loops), and anyio keeps each
task's cancel scopes, with their deadlines, where they can be read.
"""

from __future__ import annotations

import asyncio
import math
import sys
from typing import Any

from inspector.agent import timeout_registry

_OWNER_ATTRIBUTES = ("_task", "_host_task")
_WAIT_FOR_CODE = asyncio.wait_for.__code__
_MAX_CHAIN = 64


def _timers(loop: asyncio.AbstractEventLoop) -> tuple[Any, ...]:
    scheduled = getattr(loop, "_scheduled", None)
    if not isinstance(scheduled, list):
        return ()
    for _ in range(5):  # the loop thread pushes and pops meanwhile
        try:
            return tuple(scheduled)
        except RuntimeError:
            continue
    return ()


def task_deadlines(
    loop: asyncio.AbstractEventLoop, tasks: dict[int, asyncio.Task[Any]]
) -> dict[int, float]:
    """id(task) -> seconds until a timeout around its wait fires (negative once it is due)."""
    if not isinstance(getattr(loop, "_scheduled", None), list):
        return _unreadable_timers(loop, tasks)
    when_by_task: dict[int, float] = {}
    when_by_future: dict[int, float] = {}
    for handle in _timers(loop):
        if getattr(handle, "_cancelled", True):
            continue
        when = getattr(handle, "_when", None)
        callback = getattr(handle, "_callback", None)
        if not isinstance(when, float) or callback is None:
            continue
        owner = getattr(callback, "__self__", None)
        if owner is not None:
            for name in _OWNER_ATTRIBUTES:
                task = getattr(owner, name, None)
                if isinstance(task, asyncio.Task):
                    key = id(task)
                    when_by_task[key] = min(when, when_by_task.get(key, when))
                    break
        elif getattr(callback, "__name__", None) == "_release_waiter":  # wait_for on 3.10
            args = getattr(handle, "_args", None) or ()
            if args:
                when_by_future[id(args[0])] = when
    if when_by_future:
        for key, task in tasks.items():
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is not None and id(waiter) in when_by_future:
                when_by_task.setdefault(key, when_by_future[id(waiter)])
    if not when_by_task:
        return {}
    now = loop.time()
    return {key: when - now for key, when in when_by_task.items() if key in tasks}


def _unreadable_timers(
    loop: asyncio.AbstractEventLoop, tasks: dict[int, asyncio.Task[Any]]
) -> dict[int, float]:
    """Deadlines on a loop whose timers cannot be read: `wait_for`'s argument, the
    `asyncio.timeout()` scopes `timeout_registry` noted, and anyio's cancel scopes."""
    found = _wait_for_timeouts(tasks)
    for source in (timeout_registry.deadlines(loop), _anyio_deadlines(loop, tasks)):
        for key, left in source.items():
            if key in tasks:
                found[key] = min(left, found.get(key, left))
    return found


def _anyio_deadlines(
    loop: asyncio.AbstractEventLoop, tasks: dict[int, asyncio.Task[Any]]
) -> dict[int, float]:
    """id(task) -> seconds until the earliest anyio cancel scope around it is due. anyio keeps
    each task's innermost scope in `_task_states`; its parents are a chain of `_parent_scope`."""
    backend = sys.modules.get("anyio._backends._asyncio")
    states = getattr(backend, "_task_states", None)
    if states is None:
        return {}
    found: dict[int, float] = {}
    now = loop.time()
    for key, task in tasks.items():
        try:
            scope = getattr(states.get(task), "cancel_scope", None)
            earliest = math.inf
            for _ in range(_MAX_CHAIN):
                if scope is None:
                    break
                deadline = getattr(scope, "_deadline", math.inf)
                if isinstance(deadline, float) and deadline < earliest:
                    earliest = deadline
                scope = getattr(scope, "_parent_scope", None)
        except Exception:  # anyio's internals changed: no deadline rather than an error
            continue
        if earliest < math.inf:
            found[key] = earliest - now
    return found


def _wait_for_timeouts(tasks: dict[int, asyncio.Task[Any]]) -> dict[int, float]:
    """id(task) -> the timeout of the `wait_for` its await chain passes through, if any."""
    found: dict[int, float] = {}
    for key, task in tasks.items():
        try:
            timeout = _wait_for_timeout(task.get_coro())
        except Exception:  # a task or coroutine of the app's own that misbehaves: no deadline
            continue
        if timeout is not None:
            found[key] = timeout
    return found


def _wait_for_timeout(coro: Any) -> float | None:
    for _ in range(_MAX_CHAIN):
        if coro is None:
            return None
        if getattr(coro, "cr_code", None) is _WAIT_FOR_CODE:
            frame = getattr(coro, "cr_frame", None)
            timeout = frame.f_locals.get("timeout") if frame is not None else None
            if isinstance(timeout, (int, float)) and 0 < timeout < 1e15:
                return float(timeout)
            return None
        coro = getattr(coro, "cr_await", None)
    return None
