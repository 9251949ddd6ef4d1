"""The snapshot model: what the agent reports and every client reads.

Pure data: the contract between the agent and every client. Frozen dataclasses, their literal
types and what each field means; the JSON round trip that validates every field on the way in
lives beside it, in `inspector.codec`. Both the agent and the client import this module, so it
imports only the standard library.

Times: `*_at` fields are wall-clock seconds since the epoch (`time.time()`) in the target
process (decoding refuses one outside 1970-3000); durations and ages are seconds. Task and
request ids are opaque integers that are stable for the life of the object in the target
process.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Final, Literal

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
    "task-destroyed-pending",
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
class StackCut:
    """Where frames were left out of a stack too deep to report whole, and how many.

    The agent keeps the outermost frames (what the task is: a request cycle, the lifespan, a
    worker's entry point) and the innermost ones (the line that waits, and what it waits on).
    """

    outer: int
    """How many of the reported frames come before the cut: the outermost ones kept."""
    left_out: int
    """How many frames were left out at that point."""


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
    real stack (task.get_stack() is wrong for a running task). A task awaiting a worker thread
    (`waiting_on.thread_id`) continues with that thread's frames from the application's
    function on: its innermost frame is the line the thread runs. The inspector's own frames
    are never included."""
    waiting_on: WaitInfo | None = None
    age: float | None = None
    """Seconds since the agent first saw the task (or since creation where known)."""
    created_at: Frame | None = None
    request_id: int | None = None
    """The request this task serves, or the request it was created while serving."""
    parent_task_id: int | None = None
    exception: str | None = None
    """repr() of the exception of a finished task (read without retrieving it)."""
    deadline_in: float | None = None
    """Seconds until a timeout around the current wait fires (`asyncio.timeout`, `wait_for`,
    anyio's `fail_after`): such a task is waiting, not stuck. At most this many on uvloop, where
    only `wait_for`'s own timeout can be read. None when there is none or it cannot be read;
    negative once it is due."""
    cancelled_for: float | None = None
    """Seconds since the agent first saw a cancellation requested of this task, which is still
    not done (Python >= 3.11, `Task.cancelling()`): a task that outlives its cancellation by
    long caught `CancelledError` and went on. None: no cancellation pending."""
    stack_cut: StackCut | None = None
    """Set when the await chain (or traceback) was deeper than the agent reports: `stack` holds
    its `stack_cut.outer` outermost frames, then the innermost ones, and `stack_cut.left_out`
    frames in between were left out. `waiting_on` is read from the real innermost frame all the
    same. None: `stack` is the whole chain."""


@dataclass(frozen=True)
class StackSample:
    """One place the loop thread was during a stall: first seen `offset` seconds after it began.

    The agent samples a stalled loop thread every 10 ms; samples at the same stack add to one
    entry, so a stall's samples are its profile: where its time went (`count` samples of about
    10 ms each)."""

    offset: float
    frames: tuple[Frame, ...]
    count: int = 1
    """How many of the stall's samples found the thread at this stack."""


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
    detailed: bool = True
    """Recorded in full. Above the agent's detail rate most requests are only listed while in
    flight: their status, bytes sent, threads and background work are not known."""


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
    paced_seconds: float = 0.0
    """Time answers were held back because clients asked for more than the agent's CPU share."""
    clients_dropped: int = 0
    """Clients disconnected for going past a bound (a line, a sub-negotiation) or not reading."""
    clients_refused: int = 0
    """Clients turned away because the agent served as many as it may at once."""
    actions_refused: int = 0
    """Commands that act on the server (cancel, signal), refused because it is read-only."""


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
    requests_detailed_every: int = 1
    """One request in this many is recorded in full right now (1: every one; see
    `RequestInfo.detailed`). The history and the route statistics are made of those."""
    requests_undetailed: int = 0
    """Requests served without a full record since the agent started."""
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

    @property
    def by_agent(self) -> bool:
        """Taken by the inspector agent (live or saved): only the agent reports stalls."""
        return self.source == "agent" or "stalls" in self.capabilities

    def request(self, request_id: int) -> RequestInfo | None:
        for request in self.requests:
            if request.id == request_id:
                return request
        return next((r for r in self.recent_requests if r.id == request_id), None)

    @property
    def ongoing_stall(self) -> Stall | None:
        return next((s for s in reversed(self.stalls) if s.ongoing), None)
