"""What the running code is working for: the request and the background job, as context variables.

The request middleware sets `current_request` for the duration of a request and the background
probe sets `current_job` while a Starlette background task runs. Context variables follow the
work wherever it goes: into tasks created while serving the request (asyncio copies the context
at task creation) and into anyio worker threads (anyio runs the function in a copy of the
caller's context). That is how a worker thread, a fire-and-forget task or a logged error is tied
back to the request that caused it, without any lookup table on the hot path.

`current_request` holds the request's id, an int, not its record: copies of the context outlive
the request (uvicorn's keep-alive timer is scheduled from inside the response, and a timer handle
keeps a copy of the context until it expires), and a record would keep the connection and the
scope alive with it. `inspector.agent.probes.tracker.request_now()` turns the id into the record.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from inspector.agent.probes.records import JobRecord

current_request: ContextVar[int | None] = ContextVar("inspector_current_request", default=None)
current_job: ContextVar[JobRecord | None] = ContextVar("inspector_current_job", default=None)


def _current_task_factory() -> Callable[[], asyncio.Task[Any] | None]:
    """`asyncio.current_task()` without its Python wrapper where possible (it runs per request).

    Python >= 3.12 has it in C; 3.10 and 3.11 wrap a dict lookup in a Python function.
    """
    try:
        import _asyncio
    except ImportError:  # pragma: no cover - every CPython has it
        return asyncio.current_task
    function = getattr(_asyncio, "current_task", None)
    if function is not None:
        return function  # type: ignore[no-any-return]
    tasks = getattr(_asyncio, "_current_tasks", None)
    get_running_loop = getattr(_asyncio, "_get_running_loop", None)
    if not isinstance(tasks, dict) or get_running_loop is None:
        return asyncio.current_task
    lookup = tasks.get

    def current_task() -> asyncio.Task[Any] | None:
        return lookup(get_running_loop())

    return current_task


current_task = _current_task_factory()


def current_task_on(loop: asyncio.AbstractEventLoop) -> Callable[[], asyncio.Task[Any] | None]:
    """`current_task()` for code that runs on `loop`, callable without a Python frame.

    On 3.10 and 3.11 `current_task` above is a Python function; the request middleware runs it
    for every request, so for the agent's own loop it binds the lookup to that loop instead.
    Called on another loop, the bound lookup answers None.
    """
    if not hasattr(current_task, "__code__"):
        return current_task  # already C
    try:
        import _asyncio
    except ImportError:  # pragma: no cover - every CPython has it
        return current_task
    tasks = getattr(_asyncio, "_current_tasks", None)
    if not isinstance(tasks, dict):
        return current_task
    return functools.partial(tasks.get, loop)
