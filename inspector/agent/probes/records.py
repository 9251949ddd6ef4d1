"""What the probes keep per request and per background job while the server runs.

Every probe that ties something to a request (threads, jobs, tasks, exceptions) works with these
records, so they live here, apart from the probes that fill them. A `RequestRecord` is mutable
and written on the loop thread only; the agent thread copies it into a frozen `RequestInfo` at
snapshot time. A finished request is kept as a tuple of plain values, named as a
`FinishedRequest` when read: the record itself holds the server's `receive`/`send` and with
them the connection, which the history must not keep alive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from types import MethodType
from typing import Any, Final, NamedTuple, Protocol

from inspector.agent.probes.disconnects import LEFT_AT
from inspector.model import (
    BackgroundJob,
    BackgroundState,
    ExceptionInfo,
    Frame,
    RequestInfo,
    RequestPhase,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]

FINISHED_JOB_STATES: Final = frozenset({"done", "failed", "dropped", "skipped", "cancelled"})


def describe_exception(exc: BaseException) -> str:
    """`repr()` of an exception, bounded, never raising."""
    try:
        text = repr(exc)
    except Exception:
        text = f"{type(exc).__qualname__}(<unrepresentable>)"
    return text if len(text) <= 500 else text[:497] + "..."


def client_text(client: Any) -> str | None:
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
        "phase",
        "status",
        "bytes_sent",
        "disconnected",
        "disconnected_at",
        "response_complete",
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
        self.phase: RequestPhase = "handler"
        self.status: int | None = None
        self.bytes_sent = 0
        self.disconnected = False
        self.disconnected_at: float | None = None
        self.response_complete = False
        """Set once the last response message is handed to the server."""
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

    def mark_disconnected(self, at: float | None = None) -> None:
        """The client left: at `at` (wall clock) when the server noted it, else now."""
        if not self.disconnected:
            self.disconnected = True
            self.disconnected_at = at if isinstance(at, float) else time.time()

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
            self.mark_disconnected(getattr(cycle, LEFT_AT, None))
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
            client=client_text(scope.get("client") if scope is not None else None),
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


def unknown_send(message: Message) -> Awaitable[None]:
    """The `send` of a record made late: the app holds the server's own, so this is never used."""
    raise RuntimeError("this request's send is not wrapped")


LightEntry = tuple[int, float, Scope, Receive]
"""A request listed without a record: (id, perf_counter start, scope, receive)."""


def method_of(scope: Scope) -> str:
    """What `RequestRecord` stores as the method: the HTTP method, or "WS"."""
    return (scope.get("method") or "GET") if scope.get("type") == "http" else "WS"


class FinishedRequest(NamedTuple):
    """A request moved to the history (`RequestTracker.finish`): plain values only."""

    id: int
    method: str
    path: str
    started_at: float
    route: str | None
    client: Any
    """The scope's `client` as the server gave it; turned into text when first reported."""
    duration: float
    status: int | None
    bytes_sent: int
    disconnected: bool
    disconnected_at: float | None
    task_id: int | None
    background_ids: tuple[int, ...]
    error: str | None
    scheme: str
    detailed: bool


class JobRecord:
    """One queued background task. Written on the loop thread; copied by the agent thread."""

    __slots__ = (
        "id",
        "function",
        "state",
        "queued_at",
        "request_id",
        "request_label",
        "call_site",
        "started_at",
        "finished_at",
        "error",
        "reason",
        "flagged",
        "dispatch",
        "task_id",
        "container_started",
        "info",
    )

    def __init__(
        self,
        job_id: int,
        function: str,
        queued_at: float,
        request: RequestRecord | None,
        call_site: Frame | None,
        dispatch: str | None,
    ) -> None:
        self.id = job_id
        self.function = function
        self.state: BackgroundState = "queued"
        self.queued_at = queued_at
        # Only the request's id and label: a job outlives its request in the history and must
        # not keep the request's connection objects alive.
        self.request_id = request.id if request is not None else None
        self.request_label = request.label if request is not None else None
        self.call_site = call_site
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.error: ExceptionInfo | None = None
        self.reason: str | None = None
        self.flagged: str | None = None
        self.dispatch = dispatch
        self.task_id: int | None = None
        self.container_started = False
        self.info: BackgroundJob | None = None

    def to_model(self) -> BackgroundJob:
        if self.info is not None:
            return self.info
        job = BackgroundJob(
            id=self.id,
            function=self.function,
            state=self.state,
            queued_at=self.queued_at,
            request_id=self.request_id,
            call_site=self.call_site,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            reason=self.reason,
            flagged=self.flagged,
            dispatch=self.dispatch,  # type: ignore[arg-type]
            task_id=self.task_id,
        )
        if self.state in FINISHED_JOB_STATES:
            self.info = job
        return job

    def settle(self, state: BackgroundState, at: float, reason: str | None = None) -> None:
        self.state = state
        self.finished_at = at
        if reason is not None:
            self.reason = reason
        self.info = None

    @property
    def where(self) -> str:
        return f" (queued at {self.call_site.location})" if self.call_site is not None else ""


class TaskTable(Protocol):
    """Which request (and job) a task was created under: `tasklinks.RequestTaskTable`."""

    def lookup(
        self, task: asyncio.Future[Any]
    ) -> tuple[RequestRecord, JobRecord | None] | None: ...
