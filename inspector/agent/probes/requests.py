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
import time
from types import MethodType
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, MutableMapping
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
"""Distinct (method, route) keys kept for latency statistics; the least recently used go first."""
_MAX_JOBS_PER_REQUEST: Final = 100
_MAX_BACKGROUND_RAN: Final = 20
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

    Built once per request, so it does the least it can: containers that most requests never
    need (worker threads, background jobs) are created on first use.
    """

    __slots__ = (
        "id",
        "method",
        "path",
        "scheme",
        "raw_client",
        "started_at",
        "start",
        "end",
        "phase",
        "status",
        "bytes_sent",
        "disconnected",
        "disconnected_at",
        "response_complete",
        "task",
        "task_id",
        "scope",
        "cycle",
        "route",
        "threads",
        "jobs",
        "running_job",
        "background_ran",
        "error",
        "_http",
        "_receive",
        "_send",
    )

    def __init__(
        self, request_id: int, scope: Scope, receive: Receive, send: Send, wall: float
    ) -> None:
        self.id = request_id
        self.start = _perf()
        self.started_at = wall
        if scope["type"] == "http":
            self.method: str = scope.get("method") or "GET"
            self.scheme = "http"
            self._http = True
        else:
            self.method = "WS"
            self.scheme = "ws"
            self._http = False
        self.path: str = scope.get("path") or ""
        self.raw_client: Any = scope.get("client")
        self.end: float | None = None
        self.phase: RequestPhase = "handler"
        self.status: int | None = None
        self.bytes_sent = 0
        self.disconnected = False
        self.disconnected_at: float | None = None
        self.response_complete = False
        task = current_task()
        self.task: asyncio.Task[Any] | None = task
        self.task_id: int | None = id(task) if task is not None else None
        self.scope: Scope | None = scope
        # uvicorn passes its RequestResponseCycle's bound `receive`: the cycle's `disconnected`
        # flag shows a client that left even when the app never calls `receive` again.
        self.cycle: Any = receive.__self__ if type(receive) is MethodType else None
        self.route: str | None = None
        self.threads: set[int] | None = None
        """Worker threads running this request's sync code right now (thread idents)."""
        self.jobs: list[JobRecord] | None = None
        """Background jobs queued while serving this request (the background probe adds them)."""
        self.running_job: JobRecord | None = None
        self.background_ran: list[str] | None = None
        """Function names of the background tasks that ran for this request, in order."""
        self.error: str | None = None
        self._receive = receive
        self._send = send

    @property
    def label(self) -> str:
        """"GET /export"."""
        return f"{self.method} {self.path}"

    @property
    def client(self) -> str | None:
        return _client_text(self.raw_client)

    @property
    def job_ids(self) -> tuple[int, ...]:
        jobs = self.jobs
        return tuple(job.id for job in jobs) if jobs else ()

    async def receive(self) -> Message:
        if self.phase == "handler" and self.status is None and self._http:
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

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.body":
            body = message.get("body")
            if body:
                self.bytes_sent += len(body)
            if message.get("more_body", False):
                if self.phase != "streaming":
                    self.phase = "streaming"
                await self._send(message)
                return
            await self._send(message)
            if self.cycle is not None and not self.disconnected:
                # The server drops what is sent to a client that left: the response "completed"
                # for nobody.
                if getattr(self.cycle, "disconnected", False) is True:
                    self.mark_disconnected()
            self.response_complete = True
            self.phase = "background"
            return
        if kind == "http.response.start":
            self.status = message.get("status")
            self.phase = "sending"
        elif kind == "websocket.send":
            data = message.get("bytes") or message.get("text")
            if data:
                self.bytes_sent += len(data)
        elif kind == "websocket.accept":
            self.status = 101
        elif kind == "http.response.pathsend":
            self.response_complete = True
            self.phase = "background"
        await self._send(message)

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
        return RequestInfo(
            id=self.id,
            method=self.method,
            path=self.path,
            started_at=self.started_at,
            phase=self.phase,
            route=route_template(self.scope),
            client=self.client,
            duration=max(0.0, now - self.start),
            status=self.status,
            bytes_sent=self.bytes_sent,
            disconnected=self.client_gone(),
            disconnected_at=self.disconnected_at,
            task_id=self.task_id,
            thread_ids=tuple(sorted(self.threads)) if self.threads else (),
            background_ids=self.job_ids,
            error=self.error,
            scheme=self.scheme,
        )


class FinishedRequest:
    """What is kept of a finished request: plain values only.

    The live record keeps the server's `receive`/`send` (and through them the connection, the
    scope and the app's per-request objects) for whoever may still call them, so the history
    holds this copy instead. Converted to a `RequestInfo` on first collect.
    """

    __slots__ = ("values", "info")

    def __init__(self, record: RequestRecord, duration: float) -> None:
        self.values = (
            record.id,
            record.method,
            record.path,
            record.started_at,
            record.route,
            record.raw_client,
            duration,
            record.status,
            record.bytes_sent,
            record.disconnected,
            record.disconnected_at,
            record.task_id,
            record.job_ids,
            record.error,
            record.scheme,
        )
        self.info: RequestInfo | None = None

    def to_info(self) -> RequestInfo:
        info = self.info
        if info is None:
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
            ) = self.values
            info = self.info = RequestInfo(
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
        return info


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


class RouteWindows:
    """Durations of the last `window` finished requests per (method, route), bounded in keys."""

    def __init__(self, window: int) -> None:
        self._window = max(1, window)
        self._windows: OrderedDict[tuple[str, str], deque[tuple[float, bool]]] = OrderedDict()

    def add(self, method: str, route: str | None, duration: float, failed: bool) -> None:
        key = (method, route or _NO_ROUTE)
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= _MAX_ROUTES:
                self._windows.popitem(last=False)
            window = self._windows[key] = deque(maxlen=self._window)
        else:
            self._windows.move_to_end(key)
        window.append((duration, failed))

    def stats(self) -> tuple[RouteStats, ...]:
        result = []
        for (method, route), window in _retrying_items(self._windows):
            samples = _retrying_tuple(window)
            if not samples:
                continue
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
        return tuple(result)


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


def _retrying_items(mapping: Mapping[Any, Any]) -> tuple[tuple[Any, Any], ...]:
    return _retrying_tuple(mapping.items())


class RequestTracker:
    """The live request state the middleware writes into while a probe has it activated."""

    def __init__(self, max_history: int, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._ids = itertools.count(1)
        self.in_flight: dict[int, RequestRecord] = {}
        self.by_task: dict[int, RequestRecord] = {}
        self.finished: deque[FinishedRequest] = deque(maxlen=max(1, max_history))
        self.routes = RouteWindows(max_history)
        self.finish_listeners: list[Callable[[RequestRecord], None]] = []
        self.context: AgentContext | None = None
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
        record = RequestRecord(next(self._ids), scope, receive, send, self.clock())
        self.in_flight[record.id] = record
        if record.task_id is not None:
            self.by_task[record.task_id] = record
        return record

    def finish(self, record: RequestRecord) -> None:
        end = record.end = _perf()
        record.route = route_template(record.scope)
        record.disconnected = record.client_gone()
        record.phase = "done"
        self.in_flight.pop(record.id, None)
        if record.task_id is not None and self.by_task.get(record.task_id) is record:
            del self.by_task[record.task_id]
        # A task created during the request keeps the record (through its context) for as long
        # as it lives: let go of what is not needed any more.
        record.task = None
        record.scope = None
        record.cycle = None
        record.threads = None
        duration = end - record.start
        self.finished.append(FinishedRequest(record, duration))
        failed = record.error is not None or (record.status is not None and record.status >= 500)
        self.routes.add(record.method, record.route, duration, failed)
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
        recent = [finished.to_info() for finished in _retrying_tuple(self.finished)]
        return {
            "requests": tuple(in_flight),
            "recent_requests": tuple(recent),
            "routes": self.routes.stats(),
        }


_active_tracker: RequestTracker | None = None
"""Filled by `RequestsProbe.install`; the middleware passes requests through while it is None."""


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
            or current_request.get() is not None
        ):
            await self.app(scope, receive, send)
            return
        try:
            record = tracker.begin(scope, receive, send)
        except Exception as error:  # never let bookkeeping break the request
            tracker.report(f"request middleware: {error!r}")
            await self.app(scope, receive, send)
            return
        token = current_request.set(record)
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
            record = current_request.get()
            if record is not None:
                record.note_error(exc)
            return original(handlers, exc)

        self.wrapper = lookup

    @classmethod
    def install(cls) -> _EndpointErrorHook | None:
        import sys

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
