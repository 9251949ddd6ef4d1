"""The live request state: what is in flight, the history, and how many requests get a record.

`RequestTracker` is what the middleware writes into and the requests probe reads from. While a
requests probe is installed its tracker is `active` (set by `activate`), which the middleware,
the other probes and `request_now()` read; with no agent running it is None and the middleware
passes requests through.

A full record costs the loop about six microseconds per request, which a hello-world endpoint
under heavy load notices. So the records are rationed: up to `AgentConfig.request_detail_rate`
requests a second are recorded in full; above it one request in N is, N set anew each second
from the rate of the second before, and the others are only listed while in flight (id, start,
scope: a tuple in `RequestTracker.light`, by serving task) and counted. Their phase is read from
uvicorn's cycle at snapshot time. When one of them does something worth tying to it (queues a
background task, hands sync code to a worker thread, logs an error), `request_now()` gives it a
record on the spot, which then finishes into the history like any other; only its status and
bytes sent stay unknown. A request whose exception escapes the app is always recorded.

Both clocks are parameters of the tracker, so the rationing and the history can be driven by a
test's own clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from threading import get_ident as _get_ident
from types import MethodType
from typing import Any

from inspector.agent.probe import AgentContext
from inspector.agent.probes.current import current_request, current_task
from inspector.agent.probes.records import (
    FinishedRequest,
    LightEntry,
    RequestRecord,
    TaskTable,
    client_text,
    method_of,
    route_template,
    unknown_send,
)
from inspector.agent.probes.routes import STATS_WINDOW, route_stats
from inspector.model import RequestInfo, RequestPhase

_named = FinishedRequest._make
"""A history row with its field names, made on the agent's thread when a snapshot reads it."""


def light_info(
    entry: LightEntry, task: asyncio.Task[Any] | None, now: float, wall_now: float
) -> RequestInfo:
    """An in-flight request that has no record, described from its scope and uvicorn's cycle."""
    request_id, start, scope, receive = entry
    phase: RequestPhase = "handler"
    disconnected = False
    cycle = receive.__self__ if type(receive) is MethodType else None
    if cycle is not None:
        if getattr(cycle, "response_complete", False) is True:
            phase = "background"
        elif getattr(cycle, "response_started", False) is True:
            phase = "sending"
        disconnected = getattr(cycle, "disconnected", False) is True and phase != "background"
    method = method_of(scope)
    duration = max(0.0, now - start)
    return RequestInfo(
        id=request_id,
        method=method,
        path=scope.get("path") or "",
        started_at=wall_now - duration,
        phase=phase,
        route=route_template(scope),
        client=client_text(scope.get("client")),
        duration=duration,
        disconnected=disconnected,
        task_id=id(task) if task is not None else None,
        scheme="ws" if method == "WS" else "http",
        detailed=False,
    )


def finished_info(done: FinishedRequest) -> RequestInfo:
    """A finished request as reported: done, and no worker thread runs its code any more."""
    return RequestInfo(
        id=done.id,
        method=done.method,
        path=done.path,
        started_at=done.started_at,
        phase="done",
        route=done.route,
        client=client_text(done.client),
        duration=done.duration,
        status=done.status,
        bytes_sent=done.bytes_sent,
        disconnected=done.disconnected,
        disconnected_at=done.disconnected_at,
        task_id=done.task_id,
        thread_ids=(),
        background_ids=done.background_ids,
        error=done.error,
        scheme=done.scheme,
        detailed=done.detailed,
    )


def _retrying_tuple(items: Any) -> tuple[Any, ...]:
    # tuple() of a dict view or deque runs in C without releasing the GIL; the retry covers
    # interpreters where another thread can still mutate it mid-copy.
    for _ in range(5):
        try:
            return tuple(items)
        except RuntimeError:
            continue
    return ()


class RequestTracker:
    """The live request state the middleware writes into while a probe has it activated."""

    def __init__(
        self,
        max_history: int,
        clock: Callable[[], float] = time.time,
        perf: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.clock = clock
        """Wall-clock time, for `started_at`."""
        self.perf = perf
        """A monotonic clock for durations and the one-second rationing windows."""
        self.ids = itertools.count(1)
        self.current_task: Callable[[], asyncio.Task[Any] | None] = current_task
        """Replaced by a lookup bound to the loop when the probe is installed."""
        self.in_flight: dict[int, RequestRecord] = {}
        self._by_task: tuple[tuple[int, int | None], dict[int, RequestRecord]] = ((0, None), {})
        self.light: dict[asyncio.Task[Any] | None, LightEntry | RequestRecord] = {}
        """In-flight requests without a record (or given one late), by the task serving them."""
        self.start_unknown: set[int] = set()
        """Ids of the requests listed as already running when the agent was injected."""
        self.by_thread: dict[int, RequestRecord] = {}
        """Worker thread ident -> the request whose sync code it runs (the threadpool's)."""
        self.undetailed = 0
        """Requests served without a record, counted once a second."""
        self.detail_rate: int | None = None
        self.detail_every = 1
        """One request in this many gets a record, this second."""
        self.turns: Iterator[bool] = itertools.repeat(True)
        """Whether each next request gets a record: one C call per request decides."""
        self.window_end = float("inf")
        """perf_counter time the current one-second window ends (never while unrationed)."""
        self._window_start = 0.0
        self._window_first_id = 1
        self._recent = max(1, max_history)
        # One entry per finished request, kept longer than the recent list: the route latency
        # statistics are computed from it at snapshot time, so finishing a request is one append.
        # The entries are plain tuples in `FinishedRequest`'s field order, named only when read:
        # the collector stops tracking a plain tuple of plain values, never a tuple subclass,
        # and every collection walked the whole history (counted: 1,650 instructions a request).
        self.finished: deque[tuple[Any, ...]] = deque(maxlen=max(STATS_WINDOW, 5 * self._recent))
        self._infos: dict[int, RequestInfo] = {}
        """Finished requests already converted, by id (touched by the agent thread only)."""
        self.finish_listeners: list[Callable[[RequestRecord], None]] = []
        self.context: AgentContext | None = None
        self.tasks: TaskTable | None = None
        # id(exception) -> (type name, request id, label) for exceptions that left the app:
        # uvicorn logs them after the middleware returned, outside the request's context.
        self._escaped: OrderedDict[int, tuple[str, int, str]] = OrderedDict()

    def ration_detail(self, rate: int | None) -> None:
        """Record at most about `rate` requests a second in full; None records every one."""
        self.detail_rate = rate if rate is None else max(1, int(rate))
        self.detail_every = 1
        self.turns = itertools.repeat(True)
        self.window_end = float("inf") if rate is None else 0.0

    def new_window(self, start: float, request_id: int) -> None:
        """Set how many requests share one record, from the rate since the last window began.

        Called by the first request at or after `window_end`, once a second under load.
        """
        try:
            rate = self.detail_rate
            if rate is None:
                return
            seen = request_id - self._window_first_id
            self.undetailed += seen - -(-seen // self.detail_every)  # one in every N had one
            per_second = seen / max(1.0, start - self._window_start)
            every = max(1, -int(-per_second // rate))
            if every != self.detail_every:
                self.detail_every = every
                self.turns = (
                    itertools.repeat(True)
                    if every == 1
                    else itertools.cycle((True,) + (False,) * (every - 1))
                )
            self._window_start = start
            self._window_first_id = request_id
            self.window_end = start + 1.0
        except Exception as error:  # never let bookkeeping break the request
            self.window_end = start + 1.0
            self.report(f"request detail: {error!r}")

    def light_failed(self, task: asyncio.Task[Any] | None, exc: BaseException) -> None:
        """An exception escaped a request listed without a record: it gets one now, which the
        middleware then finishes into the history, so failures show under any load."""
        try:
            record = self._record_for(task)
            if record is not None:
                record.note_error(exc)
                self.remember_escaped(exc, record)
        except Exception as error:
            self.report(f"request middleware: {error!r}")

    def remember_escaped(self, exc: BaseException, record: RequestRecord) -> None:
        self._escaped[id(exc)] = (type(exc).__qualname__, record.id, record.label)
        if len(self._escaped) > 32:
            self._escaped.popitem(last=False)

    def request_for_exception(self, exc: BaseException) -> tuple[int, str] | None:
        """The (id, label) of the request an exception escaped from, if it did so recently."""
        found = self._escaped.get(id(exc))
        if found is not None and found[0] == type(exc).__qualname__:
            return found[1], found[2]
        return None

    def finish(self, record: RequestRecord) -> None:
        """Move a request from in flight to the history.

        The history keeps a `FinishedRequest` of plain values, not the record: the
        record keeps the server's `receive`/`send` for whoever may still call them, and with
        them the connection.
        """
        end = self.perf()
        scope = record.scope
        client = scope.get("client") if scope is not None else None
        if not record.response_complete:
            record.client_gone()  # notes a client that left mid-response
        record.phase = "done"
        del self.in_flight[record.id]
        # A task created during the request keeps the record (in its context) while it lives.
        record.task = None
        record.scope = None
        jobs = record.jobs
        self.finished.append(
            (
                record.id,
                record.method,
                record.path,
                record.started_at,
                route_template(scope),
                client,
                end - record.start,
                record.status,
                record.bytes_sent,
                record.disconnected,
                record.disconnected_at,
                record.task_id,
                tuple(job.id for job in jobs) if jobs else (),
                record.error,
                record.scheme,
                record.detailed,
            )
        )
        if jobs:
            for listener in self.finish_listeners:
                try:
                    listener(record)
                except Exception as error:  # a listener bug must not break the request
                    self.report(f"request finish listener: {error!r}")

    def label_of(self, request_id: int) -> str | None:
        """ "GET /path" of a request in flight or in the history (a rare lookup: it scans)."""
        record = self.in_flight.get(request_id)
        if record is not None:
            return record.label
        for row in reversed(self.finished):
            finished = _named(row)
            if finished.id == request_id:
                return f"{finished.method} {finished.path}"
        return None

    def in_flight_for(self, task: asyncio.Task[Any]) -> RequestRecord | None:
        """The in-flight request `task` serves, if any.

        The index by task is built when first asked after the in-flight set changed, not per
        request: requests come and go far more often than anyone asks. The keys of `in_flight`
        only grow, so its size and last key tell whether it changed.
        """
        in_flight = self.in_flight
        for _ in range(5):
            try:
                signature = (len(in_flight), next(reversed(in_flight), None))
                if signature != self._by_task[0]:
                    index = {}
                    for record in tuple(in_flight.values()):
                        if record.task_id is not None:
                            index[record.task_id] = record
                    self._by_task = (signature, index)
                break
            except RuntimeError:  # changed while read from the agent thread
                continue
        found = self._by_task[1].get(id(task))
        return found if found is not None and found.task is task else None

    def light_for(self, task: asyncio.Task[Any]) -> tuple[int, str] | None:
        """The (id, label) of the in-flight request without a record that `task` serves."""
        entry = self.light.get(task)
        if type(entry) is not tuple:
            return None
        request_id, _, scope, _ = entry
        return request_id, f"{method_of(scope)} {scope.get('path') or ''}"

    def record_late(self) -> RequestRecord | None:
        """A record for the request without one that the running code serves, made now.

        On the loop, the request is the one the current task serves; in a worker thread, the one
        whose sync code the thread runs (given a record when it was handed over).
        """
        task = current_task()
        if task is None:
            return self.by_thread.get(_get_ident()) if self.by_thread else None
        return self._record_for(task)

    def _record_for(self, task: asyncio.Task[Any] | None) -> RequestRecord | None:
        """The record of the request without one that `task` serves, made on first call."""
        light = self.light
        entry = light.get(task)
        if not isinstance(entry, tuple):
            return entry
        request_id, start, scope, receive = entry
        now = self.perf()
        record = RequestRecord(
            request_id, start, scope, receive, unknown_send, self.clock() - (now - start), task
        )
        record.detailed = False
        light[task] = record
        self.in_flight[request_id] = record
        return record

    def report(self, message: str) -> None:
        context = self.context
        if context is not None:
            context.record_error(message)

    def snapshot(self) -> dict[str, Any]:
        now = self.perf()
        wall_now = self.clock()
        in_flight = [record.to_info(now) for record in _retrying_tuple(self.in_flight.values())]
        for task, entry in _retrying_tuple(self.light.items()):
            if type(entry) is tuple:  # else given a record late: listed above
                light = light_info(entry, task, now, wall_now)
                if light.id in self.start_unknown:
                    light = dataclasses.replace(light, start_unknown=True)
                in_flight.append(light)
        in_flight.sort(key=lambda info: info.started_at)
        entries = tuple(map(_named, _retrying_tuple(self.finished)))
        infos = self._infos
        recent = []
        for values in entries[-self._recent :]:
            info = infos.get(values.id)
            if info is None:
                info = finished_info(values)
            recent.append(info)
        self._infos = {info.id: info for info in recent}
        return {
            "requests": tuple(in_flight),
            "recent_requests": tuple(recent),
            "routes": route_stats(entries),
            # A window that has ended stays in force only until the next request, which, after
            # a quiet spell, finds a low rate: say so now rather than at that request.
            "requests_detailed_every": self.detail_every if now < self.window_end else 1,
            "requests_undetailed": self.undetailed,
        }


active: RequestTracker | None = None
"""The installed requests probe's tracker; None while no agent runs."""


def activate(tracker: RequestTracker) -> None:
    global active
    active = tracker


def deactivate(tracker: RequestTracker) -> None:
    """Stop `tracker` being the active one, if it still is."""
    global active
    if active is tracker:
        active = None


def request_now() -> RequestRecord | None:
    """The record of the request the running code works for, from any thread, or None.

    In flight, from the tracker; once finished, from the task table when the running task was
    created while serving it (a fire-and-forget task).
    """
    request_id = current_request.get()
    tracker = active
    if tracker is None:
        return None
    if request_id is None:
        return tracker.record_late() if tracker.light or tracker.by_thread else None
    record = tracker.in_flight.get(request_id)
    if record is not None:
        return record
    tasks = tracker.tasks
    task = current_task()
    if tasks is not None and task is not None:
        found = tasks.lookup(task)
        if found is not None and found[0].id == request_id:
            return found[0]
    return None
