"""Requests in flight and recently finished, seen by a pure-ASGI middleware.

`InspectorMiddleware` wraps the whole ASGI app (`inspector run` installs it through
`inspector.agent.probes.wrap_asgi`) before any agent exists. It finds the live state through a
module-level slot that `RequestsProbe.install` fills, so with no agent running it costs one global
read and one extra coroutine frame per request. It is never a `BaseHTTPMiddleware`: that class
runs the app in a separate task, hides client disconnects and delays background work.

Per request it keeps a mutable `RequestRecord` (written on the loop thread only) that the agent
thread copies into frozen `RequestInfo`s at snapshot time. Every write is a single attribute or
container operation, atomic under the GIL, so no lock is taken on the hot path.

A full record costs the loop about six microseconds per request, which a hello-world endpoint
under heavy load notices. So the records are rationed: up to `AgentConfig.request_detail_rate`
requests a second are recorded in full; above it one request in N is, N set anew each second
from the rate of the second before, and the others are only listed while in flight (id, start,
scope: a tuple in `RequestTracker.light`, by serving task) and counted. Their phase is read from
uvicorn's cycle at snapshot time. When one of them does something worth tying to it (queues a
background task, hands sync code to a worker thread, logs an error), `request_now()` gives it a
record on the spot, which then finishes into the history like any other; only its status and
bytes sent stay unknown. A request whose exception escapes the app is always recorded.

Phases: "handler" from the start; "receiving" while the app awaits the request body before the
response started; "sending" once the response started; "streaming" from the first body chunk
that announces more; "background" once the last body chunk is handed to the server while the app
has not returned yet (Starlette runs a response's background tasks there); "done".
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from threading import get_ident as _get_ident
from types import MethodType
from typing import TYPE_CHECKING, Any, Final

from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions, TaskLink
from inspector.agent.probes.current import current_request, current_task, current_task_on
from inspector.model import RequestInfo, RequestPhase, RouteStats

if TYPE_CHECKING:
    from inspector.agent.probes.background import JobRecord
    from inspector.agent.probes.tasklinks import RequestTaskTable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]

_TRACKED_SCOPES: Final = frozenset({"http", "websocket"})
_MAX_ROUTES: Final = 256
"""Distinct (method, route) keys reported in latency statistics."""
STATS_WINDOW: Final = 1000
"""Finished requests the per-route latency statistics are computed over (at least)."""
_NO_ROUTE: Final = "(no route)"

_perf = time.perf_counter


def describe_exception(exc: BaseException) -> str:
    """`repr()` of an exception, bounded, never raising."""
    try:
        text = repr(exc)
    except Exception:
        text = f"{type(exc).__qualname__}(<unrepresentable>)"
    return text if len(text) <= 500 else text[:497] + "..."


class RequestRecord:
    """One request as the middleware sees it. Written on the loop thread only.

    Built for every request, so it does the least it can. Each Python-level call on the request
    path costs about a thousand machine instructions and its share of cache misses, more than the
    work most of them do, so the per-request steps are written out where they run (the
    middleware, `send`, `RequestTracker.finish`) rather than split into small helpers.
    """

    __slots__ = (
        "id",
        "start",
        "started_at",
        "scope",
        "task",
        "task_id",
        "method",
        "path",
        "scheme",
        "_receive",
        "_send",
        "end",
        "phase",
        "status",
        "bytes_sent",
        "disconnected",
        "disconnected_at",
        "response_complete",
        "route",
        "raw_client",
        "threads",
        "jobs",
        "running_job",
        "background_ran",
        "error",
        "detailed",
    )

    def __init__(
        self,
        request_id: int,
        start: float,
        scope: Scope,
        receive: Receive,
        send: Send,
        wall: float,
        task: asyncio.Task[Any] | None,
    ) -> None:
        self.id = request_id
        self.start = start
        self.started_at = wall
        self.scope: Scope | None = scope
        self.task = task
        self.task_id = id(task) if task is not None else None
        self._receive = receive
        self._send = send
        if scope["type"] == "http":
            self.method: str = scope.get("method") or "GET"
            self.scheme = "http"
        else:
            self.method = "WS"
            self.scheme = "ws"
        self.path: str = scope.get("path") or ""
        self.end: float | None = None
        self.phase: RequestPhase = "handler"
        self.status: int | None = None
        self.bytes_sent = 0
        self.disconnected = False
        self.disconnected_at: float | None = None
        self.response_complete = False
        """Set once the last response message is handed to the server."""
        self.route: str | None = None
        self.raw_client: Any = None
        self.threads: set[int] | None = None
        """Worker threads running this request's sync code right now (thread idents)."""
        self.jobs: list[JobRecord] | None = None
        """Background jobs queued while serving this request (the background probe adds them)."""
        self.running_job: JobRecord | None = None
        self.background_ran: list[str] | None = None
        """Function names of the background tasks that ran for this request, in order."""
        self.error: str | None = None
        self.detailed = True
        """False when made late (`RequestTracker.record_late`): status and bytes are unknown."""

    @property
    def label(self) -> str:
        """ "GET /export"."""
        return f"{self.method} {self.path}"

    @property
    def cycle(self) -> Any:
        """uvicorn's RequestResponseCycle (its `disconnected` flag shows a client that left even
        when the app never calls `receive` again), when the server is uvicorn."""
        receive = self._receive
        return receive.__self__ if type(receive) is MethodType else None

    @property
    def job_ids(self) -> tuple[int, ...]:
        jobs = self.jobs
        return tuple(job.id for job in jobs) if jobs else ()

    async def receive(self) -> Message:
        if self.phase == "handler" and self.status is None and self.scheme == "http":
            self.phase = "receiving"
            try:
                message: Message = await self._receive()
            finally:
                if self.phase == "receiving":
                    self.phase = "handler"
        else:
            message = await self._receive()
        kind = message.get("type")
        if (kind == "http.disconnect" or kind == "websocket.disconnect") and not (
            self.response_complete
        ):
            # uvicorn also answers "http.disconnect" to a receive after the response completed;
            # that one is not the client leaving.
            self.mark_disconnected()
        return message

    def send(self, message: Message) -> Awaitable[None]:
        # A plain function returning the server's awaitable: no coroutine frame per message.
        kind = message.get("type")
        last = kind == "http.response.pathsend"
        if kind == "http.response.body":
            body = message.get("body")
            if body:
                self.bytes_sent += len(body)
            if message.get("more_body", False):
                self.phase = "streaming"
            else:
                last = True
        elif kind == "http.response.start":
            self.status = message.get("status")
            self.phase = "sending"
        elif kind == "websocket.send":
            data = message.get("bytes") or message.get("text")
            if data:
                self.bytes_sent += len(data)
        elif kind == "websocket.accept":
            self.status = 101
        if last:
            # The response's last message. The server drops what is sent to a client that
            # already left: the response would "complete" for nobody. (The `cycle` property,
            # inlined.)
            receive = self._receive
            if (
                not self.disconnected
                and type(receive) is MethodType
                and getattr(receive.__self__, "disconnected", False) is True
            ):
                self.mark_disconnected()
            self.response_complete = True
            self.phase = "background"
        return self._send(message)  # type: ignore[no-any-return]

    def mark_disconnected(self) -> None:
        if not self.disconnected:
            self.disconnected = True
            self.disconnected_at = time.time()

    def client_gone(self) -> bool:
        """True when the client left before the response completed.

        Also called from the agent thread: it then only records the moment it first noticed.
        """
        if self.disconnected:
            return True
        if self.response_complete:
            return False
        cycle = self.cycle
        if cycle is not None and getattr(cycle, "disconnected", False) is True:
            self.mark_disconnected()
            return True
        return False

    def note_error(self, exc: BaseException) -> None:
        """Remember the first exception the endpoint raised (not a background task's)."""
        if self.error is None and not self.response_complete:
            self.error = describe_exception(exc)

    def to_info(self, now: float) -> RequestInfo:
        """This request as it is now, while in flight."""
        scope = self.scope
        threads = self.threads
        return RequestInfo(
            id=self.id,
            method=self.method,
            path=self.path,
            started_at=self.started_at,
            phase=self.phase,
            route=route_template(scope),
            client=_client_text(scope.get("client") if scope is not None else None),
            duration=max(0.0, now - self.start),
            status=self.status,
            bytes_sent=self.bytes_sent,
            disconnected=self.client_gone(),
            disconnected_at=self.disconnected_at,
            task_id=self.task_id,
            thread_ids=tuple(sorted(threads)) if threads else (),
            background_ids=self.job_ids,
            error=self.error,
            scheme=self.scheme,
            detailed=self.detailed,
        )


def _unknown_send(message: Message) -> Awaitable[None]:
    """The `send` of a record made late: the app holds the server's own, so this is never used."""
    raise RuntimeError("this request's send is not wrapped")


LightEntry = tuple[int, float, Scope, Receive]
"""A request listed without a record: (id, perf_counter start, scope, receive)."""


def _method_of(scope: Scope) -> str:
    """What `RequestRecord` stores as the method: the HTTP method, or "WS"."""
    return (scope.get("method") or "GET") if scope.get("type") == "http" else "WS"


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
    method = _method_of(scope)
    duration = max(0.0, now - start)
    return RequestInfo(
        id=request_id,
        method=method,
        path=scope.get("path") or "",
        started_at=wall_now - duration,
        phase=phase,
        route=route_template(scope),
        client=_client_text(scope.get("client")),
        duration=duration,
        disconnected=disconnected,
        task_id=id(task) if task is not None else None,
        scheme="ws" if method == "WS" else "http",
        detailed=False,
    )


def finished_info(values: tuple[Any, ...]) -> RequestInfo:
    (
        request_id,
        method,
        path,
        started_at,
        route,
        client,
        duration,
        status,
        bytes_sent,
        disconnected,
        disconnected_at,
        task_id,
        background_ids,
        error,
        scheme,
        detailed,
    ) = values
    return RequestInfo(
        id=request_id,
        method=method,
        path=path,
        started_at=started_at,
        phase="done",
        route=route,
        client=_client_text(client),
        duration=duration,
        status=status,
        bytes_sent=bytes_sent,
        disconnected=disconnected,
        disconnected_at=disconnected_at,
        task_id=task_id,
        thread_ids=(),
        background_ids=background_ids,
        error=error,
        scheme=scheme,
        detailed=detailed,
    )


def _client_text(client: Any) -> str | None:
    try:
        return f"{client[0]}:{client[1]}" if client else None
    except (TypeError, IndexError):
        return None


def route_template(scope: Mapping[str, Any] | None) -> str | None:
    """The matched route's template ("/users/{id}"), with the prefix of any Mount it is under."""
    if scope is None:
        return None
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    root_path = scope.get("root_path") or ""
    app_root_path = scope.get("app_root_path")
    if isinstance(root_path, str) and isinstance(app_root_path, str):
        if root_path.startswith(app_root_path) and len(root_path) > len(app_root_path):
            return root_path[len(app_root_path) :] + path
    return path


def route_stats(entries: tuple[tuple[Any, ...], ...]) -> tuple[RouteStats, ...]:
    """Latency per (method, route) over finished-request entries (see `RequestTracker.finish`)."""
    groups: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for entry in entries:
        method, route, duration, status, error = entry[1], entry[4], entry[6], entry[7], entry[13]
        failed = error is not None or (status or 0) >= 500
        groups.setdefault((method, route or _NO_ROUTE), []).append((duration, failed))
    result = []
    for (method, route), samples in groups.items():
        durations = sorted(duration for duration, _ in samples)
        result.append(
            RouteStats(
                route=route,
                method=method,
                count=len(durations),
                errors=sum(1 for _, failed in samples if failed),
                p50=_percentile(durations, 0.50),
                p95=_percentile(durations, 0.95),
                max=durations[-1],
            )
        )
    result.sort(key=lambda stats: (stats.route, stats.method))
    return tuple(result[:_MAX_ROUTES])


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


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

    def __init__(self, max_history: int, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.ids = itertools.count(1)
        self.current_task: Callable[[], asyncio.Task[Any] | None] = current_task
        """Replaced by a lookup bound to the loop when the probe is installed."""
        self.in_flight: dict[int, RequestRecord] = {}
        self._by_task: tuple[tuple[int, int | None], dict[int, RequestRecord]] = ((0, None), {})
        self.light: dict[asyncio.Task[Any] | None, LightEntry | RequestRecord] = {}
        """In-flight requests without a record (or given one late), by the task serving them."""
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
        self.finished: deque[tuple[Any, ...]] = deque(maxlen=max(STATS_WINDOW, 5 * self._recent))
        self._infos: dict[int, RequestInfo] = {}
        """Finished requests already converted, by id (touched by the agent thread only)."""
        self.finish_listeners: list[Callable[[RequestRecord], None]] = []
        self.context: AgentContext | None = None
        self.tasks: RequestTaskTable | None = None
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

        The history keeps a tuple of plain values (see `finished_info`), not the record: the
        record keeps the server's `receive`/`send` for whoever may still call them, and with
        them the connection.
        """
        end = record.end = _perf()
        scope = record.scope
        route = record.route = route_template(scope)
        client = record.raw_client = scope.get("client") if scope is not None else None
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
                route,
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
        return request_id, f"{_method_of(scope)} {scope.get('path') or ''}"

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
        now = _perf()
        record = RequestRecord(
            request_id, start, scope, receive, _unknown_send, self.clock() - (now - start), task
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
        now = _perf()
        wall_now = self.clock()
        in_flight = [record.to_info(now) for record in _retrying_tuple(self.in_flight.values())]
        for task, entry in _retrying_tuple(self.light.items()):
            if type(entry) is tuple:  # else given a record late: listed above
                in_flight.append(light_info(entry, task, now, wall_now))
        in_flight.sort(key=lambda info: info.started_at)
        entries = _retrying_tuple(self.finished)
        infos = self._infos
        recent = []
        for values in entries[-self._recent :]:
            info = infos.get(values[0])
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


_active_tracker: RequestTracker | None = None
"""Filled by `RequestsProbe.install`; the middleware passes requests through while it is None."""


def request_now() -> RequestRecord | None:
    """The record of the request the running code works for, from any thread, or None.

    In flight, from the tracker; once finished, from the task table when the running task was
    created while serving it (a fire-and-forget task).
    """
    request_id = current_request.get()
    tracker = _active_tracker
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


class InspectorMiddleware:
    """Pure-ASGI middleware recording each HTTP and WebSocket request for the agent."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        # Servers and tests sometimes reach through the app (app.state, app.router, ...).
        try:
            app = self.__dict__["app"]
        except KeyError:
            raise AttributeError(name) from None
        return getattr(app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracker = _active_tracker
        if (
            tracker is None
            or scope["type"] not in _TRACKED_SCOPES
            or current_request.get() is not None  # wrapped twice: the outer one records
        ):
            await self.app(scope, receive, send)
            return
        request_id = next(tracker.ids)
        start = _perf()
        if start >= tracker.window_end:
            tracker.new_window(start, request_id)
        if not next(tracker.turns):
            # No record for this one (see the module's docstring). Written out here: a helper
            # coroutine would cost as much as what it saves.
            light = tracker.light
            task = tracker.current_task()
            light[task] = (request_id, start, scope, receive)
            try:
                await self.app(scope, receive, send)
            except BaseException as exc:
                tracker.light_failed(task, exc)
                raise
            finally:
                entry = light.pop(task, None)
                if entry is not None and type(entry) is not tuple:
                    tracker.finish(entry)  # type: ignore[arg-type]  # given a record late
            return
        try:
            record = RequestRecord(
                request_id, start, scope, receive, send, tracker.clock(), tracker.current_task()
            )
            tracker.in_flight[request_id] = record
        except Exception as error:  # never let bookkeeping break the request
            tracker.report(f"request middleware: {error!r}")
            await self.app(scope, receive, send)
            return
        token = current_request.set(record.id)
        try:
            await self.app(scope, record.receive, record.send)
        except BaseException as exc:
            record.note_error(exc)
            tracker.remember_escaped(exc, record)
            raise
        finally:
            current_request.reset(token)
            try:
                tracker.finish(record)
            except Exception as error:
                tracker.report(f"request middleware: {error!r}")


class RequestLinker:
    """Answers which request (and background job) a task is working for."""

    def __init__(self, tracker: RequestTracker, tasks: RequestTaskTable | None) -> None:
        self._tracker = tracker
        self._tasks = tasks

    def link_for(self, task: asyncio.Task[Any]) -> TaskLink | None:
        record = self._tracker.in_flight_for(task)
        job: JobRecord | None = None
        if record is not None:
            job = record.running_job
        else:
            if self._tasks is not None:
                found = self._tasks.lookup(task)
                if found is not None:
                    record, job = found
        if record is None:
            light = self._tracker.light_for(task)
            if light is None:
                return None
            return TaskLink(request_id=light[0], request_label=light[1])
        return TaskLink(
            request_id=record.id,
            request_label=record.label,
            background_label=job.function if job is not None else None,
        )


class RequestsProbe:
    """Activates the request middleware and reports requests and per-route latency."""

    name = "requests"

    def __init__(
        self, config: AgentConfig, tracker: RequestTracker, tasks: RequestTaskTable | None
    ) -> None:
        self._config = config
        self.tracker = tracker
        self._tasks = tasks
        tracker.tasks = tasks
        self._linker = RequestLinker(tracker, tasks)
        self._context: AgentContext | None = None
        self._lookup_patch: _EndpointErrorHook | None = None

    def install(self, context: AgentContext) -> None:
        global _active_tracker
        self._context = context
        self.tracker.context = context
        self.tracker.clock = context.clock
        self.tracker.current_task = current_task_on(context.loop)
        self.tracker.ration_detail(self._config.request_detail_rate)
        if self._tasks is not None:
            try:
                self._tasks.install(context.loop)
            except Exception as error:
                context.record_error(f"requests: task factory: {error!r}")
        context.linkers.append(self._linker)
        self._lookup_patch = _EndpointErrorHook.install()
        _active_tracker = self.tracker

    def collect(self, context: AgentContext, options: CollectOptions) -> Mapping[str, Any]:
        return self.tracker.snapshot()

    def close(self) -> None:
        global _active_tracker
        try:
            if _active_tracker is self.tracker:
                _active_tracker = None
            if self._lookup_patch is not None:
                self._lookup_patch.close()
                self._lookup_patch = None
            if self._tasks is not None:
                self._tasks.close()
            context = self._context
            if context is not None and self._linker in context.linkers:
                context.linkers.remove(self._linker)
        except Exception as error:  # close must not raise
            if self._context is not None:
                self._context.record_error(f"requests: close: {error!r}")


class _EndpointErrorHook:
    """Notes the exception an endpoint raised even when an exception handler turned it into a
    response (an HTTPException becomes a 404 and never reaches the middleware).

    Starlette looks the handler up through `starlette._exception_handler._lookup_exception_handler`
    (a module global read at call time) for every exception an app raises, so wrapping it sees
    exactly those exceptions and costs nothing on requests that do not raise.
    """

    def __init__(self, module: Any, original: Callable[..., Any]) -> None:
        self._module = module
        self._original = original

        def lookup(handlers: Any, exc: Exception) -> Any:
            record = request_now()
            if record is not None:
                record.note_error(exc)
            return original(handlers, exc)

        self.wrapper = lookup

    @classmethod
    def install(cls) -> _EndpointErrorHook | None:
        module = sys.modules.get("starlette._exception_handler")
        original = getattr(module, "_lookup_exception_handler", None)
        if module is None or not callable(original):
            return None
        hook = cls(module, original)
        module._lookup_exception_handler = hook.wrapper  # type: ignore[attr-defined]
        return hook

    def close(self) -> None:
        if getattr(self._module, "_lookup_exception_handler", None) is self.wrapper:
            self._module._lookup_exception_handler = self._original
