"""`hanging-request`: requests in flight for longer than anyone should wait."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inspector.diagnose.findings import Finding, Severity
from inspector.diagnose.locate import classify_stack, innermost_application_frame
from inspector.diagnose.rules.base import (
    Settings,
    distinct_frames,
    doing,
    examples,
    plural,
    quoted_code,
    request_label,
    seconds,
    stalls_of,
    where,
)
from inspector.diagnose.rules.pools import asking_frame, pool_name
from inspector.diagnose.rules.tasks import never_ending
from inspector.diagnose.wait_graph import LIVE_STATES, build_wait_graph, find_cycles
from inspector.model import Frame, RequestInfo, Snapshot, TaskInfo

LONG_LIVED_SCHEMES = ("ws", "wss", "websocket")
GROUP_KINDS = ("task", "gather", "taskgroup")
"""Waits on other tasks: the request is stuck where the task it awaits is."""
MAX_GROUP_DEPTH = 8
"""Nested groups followed down from a request's task (a cycle cannot loop the walk)."""
STREAMING_RESPONSES = ("StreamingResponse.", "EventSourceResponse.")
"""Response classes whose body is produced for as long as the client listens (SSE, streams)."""

DISCONNECTED_HINT = (
    "The client has gone, so nobody will read this response: in long handlers check "
    "`await request.is_disconnected()` now and then, or run the work as a task you cancel when "
    "the client leaves. A "
    'BaseHTTPMiddleware (`@app.middleware("http")`) hides disconnects from the endpoint: '
    "prefer pure ASGI middleware."
)
THREAD_HINT = (
    "The sync endpoint holds a threadpool thread while it is blocked in {what}. Put a timeout "
    "on that call (requests/httpx `timeout=`, a database statement timeout), or make the "
    "endpoint `async def` with an async client."
)
AWAITED_THREAD_HINT = (
    "The handler awaits a worker thread that is blocked in {what}. Put a timeout on that call "
    "(requests/httpx `timeout=`, a socket timeout, a database statement timeout): a timeout "
    "around the await (`asyncio.wait_for`) frees the request but not the thread."
)
LIMITER_HINT = (
    "The request waits for a free threadpool thread: every thread is busy with other sync "
    "endpoints (see the threadpool finding)."
)
RECEIVING_HINT = (
    "The request body has not arrived: a slow or stalled client, or a middleware already read "
    "the body (`await request.body()` in a BaseHTTPMiddleware) so the endpoint waits forever."
)
WAIT_HINTS = {
    "lock": (
        "Another task holds the lock (see the wait above). Keep locked sections short, do not "
        "await slow I/O while holding a lock, and put a timeout around the acquisition "
        "(`async with asyncio.timeout(...)`)."
    ),
    "event": (
        "Nothing has set the Event it awaits. Make sure the code that should set it runs, on "
        "error paths too, and wait with a timeout (`async with asyncio.timeout(...)`)."
    ),
    "queue-get": (
        "It waits for an item that nobody puts into the queue. Check the producer, and wait "
        "with a timeout (`async with asyncio.timeout(...)`)."
    ),
}
WAIT_HINTS["pool"] = (
    "It waits for a connection from a pool with none free (see the pool-exhausted finding: who "
    "holds them). Return connections as soon as they are done, and give the acquire a timeout "
    "so the request fails fast instead of hanging."
)
WAIT_HINTS["stream"] = (
    "It waits for data from the network: an upstream that does not answer, or a client that "
    "sends slowly. Give the call a timeout (`httpx.Timeout(...)`, aiohttp's `ClientTimeout`, "
    "or `async with asyncio.timeout(...)`) so a stuck upstream becomes an error, not a hang."
)
WAIT_HINTS["semaphore"] = WAIT_HINTS["lock"]
WAIT_HINTS["condition"] = WAIT_HINTS["event"]
WAIT_HINT = (
    "Find out why what it awaits does not complete (an upstream service, a task it waits for); "
    "wrap the await in `async with asyncio.timeout(...)` so a stuck dependency turns into an "
    "error instead of a hang."
)
BACKGROUND_HINT = (
    "The response was sent; its background tasks are still running. That is fine for slow "
    "jobs, but the connection stays busy meanwhile (with BaseHTTPMiddleware, later requests on "
    "it wait): move long jobs to a task queue or an `asyncio.create_task` you keep track of."
)
GENERIC_HINT = (
    "Look at the line above: it is where the handler is now. Add a timeout around whatever it "
    "waits for so a hang becomes an error."
)


@dataclass(frozen=True)
class _Hanging:
    request: RequestInfo
    age: float
    location: Frame | None
    waiting: str
    """What it waits for, in words."""
    hint: str
    in_deadlock: bool
    because: str | None = None
    """Why what it waits for will never come, when that is known."""
    related: tuple[Frame, ...] = ()
    """The lines that await the group the request is stuck in (gather, TaskGroup)."""


def hanging_requests(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """Requests in flight longer than `stuck_after`, grouped by route, place and state."""
    deadlocked = {task for cycle in find_cycles(build_wait_graph(snapshot)) for task in cycle}
    holding_the_loop = {s.task_id for s in stalls_of(snapshot) if s.ongoing and s.task_id}
    groups: dict[tuple[object, ...], list[_Hanging]] = {}
    bounded: dict[tuple[object, ...], list[_Hanging]] = {}
    for request in snapshot.requests:
        age = (
            request.duration
            if request.duration is not None
            else snapshot.taken_at - request.started_at
        )
        if request.phase == "done" or age <= settings.stuck_after:
            continue
        if request.scheme in LONG_LIVED_SCHEMES and not request.disconnected:
            continue  # a WebSocket is meant to stay open
        if request.phase == "streaming" and not request.disconnected:
            continue  # a stream (SSE, a download) is meant to take long
        if _stream_awaiting_its_first_chunk(snapshot, request):
            continue  # an SSE stream between events: its headers are out, the body follows
        if request.task_id is not None and request.task_id in holding_the_loop:
            continue  # it is blocking the loop right now: the loop-blocked finding names it
        if _under_a_timeout(snapshot, request):
            # A long-poll: the timeout it waits under ends it. Worth knowing, not a fault.
            item = _examine(snapshot, request, age, deadlocked)
            bounded.setdefault((request_label(request), item.location), []).append(item)
            continue
        item = _examine(snapshot, request, age, deadlocked)
        if item.in_deadlock:
            continue  # the deadlock finding names this request and says why it hangs
        location = item.location
        key = (
            request.phase == "background",
            request_label(request),
            (location.file, location.line) if location else None,
            request.disconnected,
        )
        groups.setdefault(key, []).append(item)
    for items in groups.values():
        yield _finding(items, snapshot)
    for items in bounded.values():
        yield _bounded_finding(items, snapshot)


def _stream_awaiting_its_first_chunk(snapshot: Snapshot, request: RequestInfo) -> bool:
    """A streaming response (SSE) whose headers are sent and whose producer has not yielded
    its first chunk: the phase says "sending" until then, yet it is a stream like any other."""
    if request.phase != "sending" or request.disconnected or request.task_id is None:
        return False
    task = snapshot.task(request.task_id)
    return task is not None and any(
        frame.function.startswith(STREAMING_RESPONSES) for frame in task.stack
    )


def waiting_leaf(snapshot: Snapshot, task: TaskInfo) -> tuple[TaskInfo, tuple[Frame, ...]]:
    """The task a request's task is really stuck in, and the lines that await it on the way.

    A handler awaiting `gather(...)`, a TaskGroup or another task waits where its unfinished
    child waits: that child's line is the one to fix, the group's line is context. The child
    followed is the first that waits on something nothing will complete, else the first that
    still waits."""
    live = {t.id: t for t in snapshot.tasks if t.state in LIVE_STATES}
    current = task
    awaiting: list[Frame] = []
    seen = {task.id}
    for _ in range(MAX_GROUP_DEPTH):
        wait = current.waiting_on
        if wait is None or wait.kind not in GROUP_KINDS:
            break
        children = [
            live[child]
            for child in wait.awaited_task_ids
            if child in live and child not in seen and live[child].waiting_on is not None
        ]
        if not children:
            break
        child = next((c for c in children if never_ending(snapshot, c) is not None), children[0])
        line = innermost_application_frame(current.stack)
        if line is not None:
            awaiting.append(line)
        seen.add(child.id)
        current = child
    return current, tuple(awaiting)


def _waiting_line(task: TaskInfo) -> Frame | None:
    """The line the request waits at: for a pool written in the app, the line that asks it for
    a connection (not the `Queue.get` inside the pool's own `acquire`)."""
    wait = task.waiting_on
    if wait is not None and wait.kind == "pool":
        return asking_frame(task, pool_name(wait))
    return innermost_application_frame(task.stack)


def _under_a_timeout(snapshot: Snapshot, request: RequestInfo) -> bool:
    """The request's task waits under a timeout that has not fired yet."""
    task = snapshot.task(request.task_id) if request.task_id is not None else None
    return task is not None and task.deadline_in is not None and task.deadline_in > 0


def _examine(
    snapshot: Snapshot, request: RequestInfo, age: float, deadlocked: set[int]
) -> _Hanging:
    task = snapshot.task(request.task_id) if request.task_id is not None else None
    threads = [
        thread
        for thread in snapshot.threads
        if thread.request_id == request.id or thread.id in request.thread_ids
    ]
    in_deadlock = task is not None and task.id in deadlocked
    for thread in threads:
        frame = innermost_application_frame(thread.stack)
        if frame is not None:
            blocking = classify_stack(thread.stack)
            waiting = f"{doing(blocking.kind, blocking.what)} in worker thread {thread.name!r}"
            return _Hanging(
                request, age, frame, waiting, THREAD_HINT.format(what=blocking.what), in_deadlock
            )
    awaiting: tuple[Frame, ...] = ()
    if task is not None:
        leaf, awaiting = waiting_leaf(snapshot, task)
        in_deadlock = in_deadlock or leaf.id in deadlocked
        task = leaf
        worker = _awaited_worker(snapshot, task, request, age, in_deadlock, awaiting)
        if worker is not None:
            return worker
    location = _waiting_line(task) if task is not None else None
    location = location or (awaiting[-1] if awaiting else None)
    related = distinct_frames(reversed(awaiting), location)
    waiting, hint = _task_wait(task, request)
    if awaiting and task is not None:
        waiting = f"{waiting}, in task {task.name} that it awaits"
    forever = never_ending(snapshot, task) if task is not None else None
    if forever is not None:
        because, hint = forever
        return _Hanging(request, age, location, waiting, hint, in_deadlock, because, related)
    return _Hanging(request, age, location, waiting, hint, in_deadlock, related=related)


def _awaited_worker(
    snapshot: Snapshot,
    task: TaskInfo,
    request: RequestInfo,
    age: float,
    in_deadlock: bool,
    awaiting: tuple[Frame, ...],
) -> _Hanging | None:
    """A handler awaiting a worker thread (`to_thread`, `run_in_executor`) waits where that
    thread is blocked: the thread's line is the one to fix, the await is context."""
    wait = task.waiting_on
    if wait is None or wait.kind != "thread" or wait.thread_id is None:
        return None
    thread = next((t for t in snapshot.threads if t.id == wait.thread_id), None)
    frame = innermost_application_frame(thread.stack) if thread is not None else None
    if thread is None or frame is None:
        return None
    blocking = classify_stack(thread.stack)
    waiting = f"{doing(blocking.kind, blocking.what)} in worker thread {thread.name!r}"
    awaits = innermost_application_frame(task.stack)
    related = distinct_frames((awaits, *reversed(awaiting)), frame)
    hint = AWAITED_THREAD_HINT.format(what=blocking.what)
    return _Hanging(request, age, frame, waiting, hint, in_deadlock, related=related)


def _task_wait(task: TaskInfo | None, request: RequestInfo) -> tuple[str, str]:
    if request.phase == "receiving":
        return "the request body from the client", RECEIVING_HINT
    if request.phase == "background":
        return "its background tasks to finish", BACKGROUND_HINT
    if task is None:
        return "something the agent could not see (no task is known for it)", GENERIC_HINT
    wait = task.waiting_on
    if wait is None:
        return (
            "nothing: it is running" if task.state == "running" else "an unknown event"
        ), GENERIC_HINT
    if wait.kind == "limiter":
        return wait.description or "a threadpool thread", LIMITER_HINT
    return wait.description or wait.kind, WAIT_HINTS.get(wait.kind, WAIT_HINT)


def _bounded_finding(items: Sequence[_Hanging], snapshot: Snapshot) -> Finding:
    """Requests waiting long under a timeout that has not fired: info that says the deadline."""
    first = items[0]
    label = request_label(first.request)
    longest = max(item.age for item in items)
    deadlines = [
        task.deadline_in
        for task in (snapshot.task(i.request.task_id or -1) for i in items)
        if task is not None and task.deadline_in is not None
    ]
    latest = max(deadlines, default=0.0)
    who = label if len(items) == 1 else f"{len(items)} requests to {label}"
    verb = "has" if len(items) == 1 else "have"
    at = f" at {where(first.location, snapshot)}" if first.location is not None else ""
    return Finding(
        kind="hanging-request",
        severity="info",
        title=f"{who} waiting under a timeout ({seconds(longest)} so far, "
        f"ends within {seconds(latest)})",
        detail=f"{who} {verb} waited {seconds(longest)}{at} for {first.waiting}, under a timeout "
        f"that has not fired: it ends within {seconds(latest)} at the latest.",
        hint="Nothing to fix if this is a long-poll or a bounded wait for an upstream; if "
        "answers should come sooner, look at what it waits for.",
        location=first.location,
        related=first.related,
        task_ids=tuple(sorted({i.request.task_id for i in items if i.request.task_id})),
        request=label,
        count=len(items),
    )


def _finding(items: Sequence[_Hanging], snapshot: Snapshot) -> Finding:
    first = items[0]
    request = first.request
    label = request_label(request)
    count = len(items)
    longest = max(item.age for item in items)
    background = request.phase == "background"

    if background:
        title = f"{label}: background work still running {seconds(longest)} after it began"
        if count > 1:
            title = (
                f"{count} requests to {label} still running background work "
                f"(longest {seconds(longest)})"
            )
    elif count == 1:
        title = f"{label} has been running for {seconds(longest)}"
    else:
        title = f"{count} requests to {label} hanging (longest {seconds(longest)})"
    if request.disconnected and not background:
        title += "; its client has gone" if count == 1 else "; their clients have gone"

    sentences = []
    if count == 1:
        known = snapshot.task(request.task_id) if request.task_id is not None else None
        task = f" (task {known.name})" if known is not None else ""
        sentences.append(
            f"{request.method} {request.path}{task} has been in flight for {seconds(longest)}, "
            f"phase {request.phase}."
        )
    else:
        paths = examples(f"{item.request.method} {item.request.path}" for item in items)
        sentences.append(
            f"{plural(count, 'request')} in flight for up to {seconds(longest)}: {paths}."
        )
    if first.location is not None:
        sentences.append(
            f"It is at {where(first.location, snapshot)}{quoted_code(first.location)}."
        )
    if first.related:
        sentences.append(
            f"Its handler awaits that task at {where(first.related[0], snapshot)}"
            f"{quoted_code(first.related[0])}."
        )
    sentences.append(f"It waits for: {first.waiting}.")
    if first.because:
        sentences.append(first.because)
    if request.disconnected:
        if request.disconnected_at is not None:
            gone = max(0.0, snapshot.taken_at - request.disconnected_at)
            sentences.append(f"The client left {seconds(gone)} ago; the handler keeps working.")
        else:
            sentences.append(
                f"The client left, yet the handler keeps working ({seconds(longest)} since the "
                "request began)."
            )

    hint = first.hint
    if request.disconnected and not background:
        hint += " " + DISCONNECTED_HINT
    severity: Severity = "info" if background else "warning"
    task_ids = tuple(sorted({i.request.task_id for i in items if i.request.task_id is not None}))
    return Finding(
        kind="hanging-request",
        severity=severity,
        title=title,
        detail=" ".join(sentences),
        hint=hint,
        location=first.location,
        related=first.related,
        task_ids=task_ids,
        request=label,
        count=count,
    )
