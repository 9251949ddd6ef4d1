"""Requests in flight and recently finished, seen by a pure-ASGI middleware.

`InspectorMiddleware` wraps the whole ASGI app (`inspector run` installs it through
`inspector.agent.probes.wrap_asgi`) before any agent exists. It finds the live state through a
module-level slot that `RequestsProbe.install` fills, so with no agent running it costs one global
read and one extra coroutine frame per request. It is never a `BaseHTTPMiddleware`: that class
runs the app in a separate task, hides client disconnects and delays background work.

Per request it keeps a mutable `RequestRecord` (written on the loop thread only) that the agent
thread copies into frozen `RequestInfo`s at snapshot time. Every write is a single attribute or
container operation, atomic under the GIL, so no lock is taken on the hot path.

Phases: "handler" from the start; "receiving" while the app awaits the request body before the
response started; "sending" once the response started; "streaming" from the first body chunk
that announces more; "background" once the last body chunk is sent while the app has not returned
yet (Starlette runs a response's background tasks there); "done".
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from types import MethodType
from typing import TYPE_CHECKING, Any, Final

from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions, TaskLink
from inspector.agent.probes.current import current_request, current_task
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

    Built for every request, so it does the least it can: what most requests never change has a
    default on the class, the client address and the uvicorn cycle are read when asked for, and
    containers (worker threads, background jobs) are created on first use.
    """

    end: float | None = None
    phase: RequestPhase = "handler"
    status: int | None = None
    bytes_sent: int = 0
    disconnected: bool = False
    disconnected_at: float | None = None
    response_complete: bool = False
    route: str | None = None
    raw_client: Any = None
    threads: set[int] | None = None
    """Worker threads running this request's sync code right now (thread idents)."""
    jobs: list[JobRecord] | None = None
    """Background jobs queued while serving this request (the background probe adds them)."""
    running_job: JobRecord | None = None
    background_ran: list[str] | None = None
    """Function names of the background tasks that ran for this request, in order."""
    error: str | None = None
    scheme: str = "http"

    def __init__(
        self,
        request_id: int,
        scope: Scope,
        receive: Receive,
        send: Send,
        wall: float,
        task: asyncio.Task[Any] | None,
    ) -> None:
        self.id = request_id
        self.start = _perf()
        self.started_at = wall
        self.scope: Scope | None = scope
        self.task = task
        self.task_id = id(task) if task is not None else None
        self._receive = receive
        self._send = send
        if scope["type"] == "http":
            self.method: str = scope.get("method") or "GET"
        else:
            self.method = "WS"
            self.scheme = "ws"
        self.path: str = scope.get("path") or ""

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
        # A plain function returning the server's awaitable: no extra coroutine frame per
        # message. Only the last body chunk needs work after it is sent (`_send_last`).
        kind = message.get("type")
        if kind == "http.response.body":
            body = message.get("body")
            if body:
                self.bytes_sent += len(body)
            if not message.get("more_body", False):
                return self._send_last(message)
            self.phase = "streaming"
        elif kind == "http.response.start":
            self.status = message.get("status")
            self.phase = "sending"
        elif kind == "websocket.send":
            data = message.get("bytes") or message.get("text")
            if data:
                self.bytes_sent += len(data)
        elif kind == "websocket.accept":
            self.status = 101
        elif kind == "http.response.pathsend":
            return self._send_last(message)
        return self._send(message)  # type: ignore[no-any-return]

    async def _send_last(self, message: Message) -> None:
        await self._send(message)
        if not self.disconnected:
            # The server drops what is sent to a client that left: the response "completed"
            # for nobody. (The `cycle` property, inlined: this runs for every request.)
            receive = self._receive
            if (
                type(receive) is MethodType
                and getattr(receive.__self__, "disconnected", False) is True
            ):
                self.mark_disconnected()
        self.response_complete = True
        self.phase = "background"

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
        )

    def finished(self, duration: float) -> tuple[Any, ...]:
        """What the history keeps of this request: plain values, no connection objects.

        The record itself keeps the server's `receive`/`send` for whoever may still call them,
        and with them the connection and the scope, so the history holds this copy instead.
        """
        return (
            self.id,
            self.method,
            self.path,
            self.started_at,
            self.route,
            self.raw_client,
            duration,
            self.status,
            self.bytes_sent,
            self.disconnected,
            self.disconnected_at,
            self.task_id,
            self.job_ids,
            self.error,
            self.scheme,
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
    """Latency per (method, route) over finished-request entries (see `RequestRecord.finished`)."""
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
        self._ids = itertools.count(1)
        self.in_flight: dict[int, RequestRecord] = {}
        self.by_task: dict[int, RequestRecord] = {}
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

    def begin(self, scope: Scope, receive: Receive, send: Send) -> RequestRecord:
        task = current_task()
        record = RequestRecord(next(self._ids), scope, receive, send, self.clock(), task)
        self.in_flight[record.id] = record
        if task is not None:
            self.by_task[id(task)] = record
        return record

    def finish(self, record: RequestRecord) -> None:
        end = record.end = _perf()
        scope = record.scope
        record.route = route_template(scope)
        if scope is not None:
            record.raw_client = scope.get("client")
        if not record.response_complete:
            record.client_gone()  # notes a client that left mid-response
        record.phase = "done"
        del self.in_flight[record.id]
        task_id = record.task_id
        if task_id is not None and self.by_task.get(task_id) is record:
            del self.by_task[task_id]
        # A task created during the request keeps the record (in its context) while it lives.
        record.task = None
        record.scope = None
        duration = end - record.start
        self.finished.append(record.finished(duration))
        if record.jobs:
            for listener in self.finish_listeners:
                try:
                    listener(record)
                except Exception as error:  # a listener bug must not break the request
                    self.report(f"request finish listener: {error!r}")

    def report(self, message: str) -> None:
        context = self.context
        if context is not None:
            context.record_error(message)

    def snapshot(self) -> dict[str, Any]:
        now = _perf()
        in_flight = sorted(
            (record.to_info(now) for record in _retrying_tuple(self.in_flight.values())),
            key=lambda info: info.started_at,
        )
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
        }


_active_tracker: RequestTracker | None = None
"""Filled by `RequestsProbe.install`; the middleware passes requests through while it is None."""


def request_now() -> RequestRecord | None:
    """The record of the request the running code works for, from any thread, or None.

    In flight, from the tracker; once finished, from the task table when the running task was
    created while serving it (a fire-and-forget task).
    """
    request_id = current_request.get()
    if request_id is None:
        return None
    tracker = _active_tracker
    if tracker is None:
        return None
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
        try:
            record = tracker.begin(scope, receive, send)
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
        record = self._tracker.by_task.get(id(task))
        job: JobRecord | None = None
        if record is not None and record.task is task:
            job = record.running_job
        else:
            record = None
            if self._tasks is not None:
                found = self._tasks.lookup(task)
                if found is not None:
                    record, job = found
        if record is None:
            return None
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
