"""Tasks created while serving a request, remembered so they can be tied back to it.

asyncio copies the current context into every new task, so a fire-and-forget task created in an
endpoint carries the request's `current_request` value. Python 3.12 can read it back
(`Task.get_context()`); 3.10 and 3.11 have no accessor on the C Task. So the loop's task factory
is wrapped (chaining whatever factory was there, eager or custom) and each task created while a
request is current is noted in a table keyed by `id(task)` holding only a weak reference to the
task.

The table also lets the exceptions probe find tasks that failed and are still referenced, which
is when the stdlib's "Task exception was never retrieved" message never comes. For that it also
remembers, in a second bounded table, the tasks created outside any request whose coroutine is
application code (lifespan workers, pollers, a janitor's short jobs): such a task can die on its
first line, before any snapshot listed it. uvicorn's own per-connection tasks run library code
and are passed over with one cached look at their coroutine's file.

Every remembered task also keeps the application line that created it (a short walk up the
creating frames), which names the `create_task` line of a task collected while pending and the
`gather` call of a task gather created. Measured on this machine: about 2 µs per task
remembered, a fraction of a µs per task passed over (create + await of a trivial task costs
~4.7 µs).
"""

from __future__ import annotations

import asyncio
import sys
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Final, NamedTuple

from inspector.agent.frames import frame_at
from inspector.agent.probes import tracker as tracking
from inspector.agent.probes.current import current_job, current_request
from inspector.agent.probes.records import JobRecord, RequestRecord
from inspector.agent.probes.tracker import request_now
from inspector.frame_kinds import is_application
from inspector.model import Frame

TaskFactory = Callable[..., "asyncio.Future[Any]"]
_GONE_REMEMBERED: Final = 64
_WORKERS_REMEMBERED: Final = 4096
"""Live tasks created outside requests remembered at most; past it new ones are not."""
_SITE_DEPTH: Final = 12
"""Frames walked up from the task factory to find the application line that created a task."""


class _TaskRef(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a task with the request and job it was created for (none for a task
    created outside requests) and the application line that created it."""

    __slots__ = ("key", "request", "job", "reported", "site", "failed_at", "gathered")

    key: int
    request: RequestRecord | None
    job: JobRecord | None
    reported: bool
    site: tuple[types.CodeType, int] | None
    failed_at: float | None
    """Monotonic time a scan first saw it failed and unretrieved (tasks created outside
    requests)."""
    gathered: bool
    """A child of `asyncio.gather`, which retrieves (or reports) its exception itself."""

    @property
    def created_at(self) -> Frame | None:
        site = self.site
        return frame_at(*site) if site is not None else None


class _Gone(NamedTuple):
    request_id: int | None
    label: str | None
    site: tuple[types.CodeType, int] | None


def _creation_site(frame: types.FrameType | None) -> tuple[types.CodeType, int] | None:
    """The innermost application frame among the callers: the line that created the task."""
    depth = 0
    while frame is not None and depth < _SITE_DEPTH:
        code = frame.f_code
        if is_application(code.co_filename):
            return code, frame.f_lineno
        frame = frame.f_back
        depth += 1
    return None


def _runs_application_code(coro: Any) -> bool:
    code = getattr(coro, "cr_code", None)
    return isinstance(code, types.CodeType) and is_application(code.co_filename)


class RequestTaskTable:
    """Weakly remembers which request (and background job) each task was created under."""

    def __init__(self) -> None:
        self._entries: dict[int, _TaskRef] = {}
        self._workers: dict[int, _TaskRef] = {}
        """Tasks created outside requests that run application code."""
        self._gone: OrderedDict[int, _Gone] = OrderedDict()
        """id(task) -> the request (id, label) and creating line of the last tasks collected:
        the collector drops a task's weak references before its finalizer reports it "destroyed
        but pending". Only those, not the request's record and its connection objects."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: TaskFactory | None = None
        self._active = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wrap the loop's task factory. Call on the loop thread."""
        self._previous = loop.get_task_factory()
        self._loop = loop
        self._active = True
        loop.set_task_factory(self._factory)

    def close(self) -> None:
        """Give the loop its previous factory back if ours is still the one installed.

        When someone replaced ours meanwhile, theirs may be chaining ours: ours then only passes
        through.
        """
        self._active = False
        loop = self._loop
        self._loop = None
        if loop is None:
            return
        if loop.get_task_factory() == self._factory:
            loop.set_task_factory(self._previous)
        self._entries.clear()
        self._workers.clear()

    def _factory(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Future[Any]:
        previous = self._previous
        if previous is not None:
            task = previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        if not self._active:
            return task
        try:
            self._note(task, coro)
        except Exception:  # whatever a custom factory returned: the task is the app's all the same
            pass
        return task

    def _note(self, task: asyncio.Future[Any], coro: Any) -> None:
        if current_request.get() is not None:
            record = request_now()
            if record is not None:
                self._remember(task, record, self._entries)
                return
        if len(self._workers) < _WORKERS_REMEMBERED and _runs_application_code(coro):
            self._remember(task, None, self._workers)

    def _remember(
        self, task: asyncio.Future[Any], record: RequestRecord | None, table: dict[int, _TaskRef]
    ) -> _TaskRef | None:
        try:
            ref = _TaskRef(task, self._forget)
        except TypeError:  # a custom factory returned something without weakref support
            return None
        ref.key = id(task)
        ref.request = record
        ref.job = current_job.get() if record is not None else None
        ref.reported = ref.gathered = False
        ref.failed_at = None
        ref.site = _creation_site(sys._getframe(3))  # above _remember, _note and the factory
        table[ref.key] = ref
        return ref

    def _forget(self, ref: weakref.ref[Any]) -> None:
        key = getattr(ref, "key", None)
        if key is None:
            return
        for table in (self._entries, self._workers):
            if table.get(key) is ref:
                del table[key]
                request = getattr(ref, "request", None)
                self._gone[key] = _Gone(
                    request.id if request is not None else None,
                    request.label if request is not None else None,
                    getattr(ref, "site", None),
                )
                if len(self._gone) > _GONE_REMEMBERED:
                    self._gone.popitem(last=False)
                return

    def request_of_gone(self, task: asyncio.Future[Any]) -> tuple[int, str] | None:
        """(id, label) of the request a task that is being collected was created under."""
        gone = self._gone.get(id(task))
        if gone is None or gone.request_id is None or gone.label is None:
            return None
        return gone.request_id, gone.label

    def created_at_of_gone(self, task: asyncio.Future[Any]) -> Frame | None:
        """The line that created a task that is being collected, when it was remembered."""
        gone = self._gone.get(id(task))
        return frame_at(*gone.site) if gone is not None and gone.site is not None else None

    def entry(self, task: asyncio.Future[Any]) -> _TaskRef | None:
        """The entry of a live task, created in a request or by application code outside one."""
        key = id(task)
        ref = self._entries.get(key) or self._workers.get(key)
        return ref if ref is not None and ref() is task else None

    def created_at(self, task: asyncio.Future[Any]) -> Frame | None:
        """The application line that created `task`, when it was remembered."""
        ref = self.entry(task)
        return ref.created_at if ref is not None else None

    def mark_gathered(self, task: asyncio.Future[Any]) -> None:
        ref = self.entry(task)
        if ref is not None:
            ref.gathered = True

    def lookup(self, task: asyncio.Future[Any]) -> tuple[RequestRecord, JobRecord | None] | None:
        """The request and job `task` was created under, if known."""
        ref = self._entries.get(id(task))
        if ref is not None and ref() is task and ref.request is not None:
            return ref.request, ref.job
        get_context = getattr(task, "get_context", None)  # Python >= 3.12
        if get_context is not None:
            try:
                context = get_context()
            except Exception:
                return None
            request_id = context.get(current_request)
            tracker = tracking.active
            if request_id is not None and tracker is not None:
                record = tracker.in_flight.get(request_id)
                if record is not None and record.task is not task:
                    return record, context.get(current_job)
        return None

    def tracked(self) -> Iterator[_TaskRef]:
        """The live entries of tasks created in requests, copied first (the loop thread keeps
        adding)."""
        yield from _copy(self._entries)

    def workers(self) -> Iterator[_TaskRef]:
        """The live entries of tasks created outside requests, copied first."""
        yield from _copy(self._workers)

    def __len__(self) -> int:
        return len(self._entries)


def _copy(table: dict[int, _TaskRef]) -> tuple[_TaskRef, ...]:
    for _ in range(5):
        try:
            return tuple(table.values())
        except RuntimeError:
            continue
    return ()
