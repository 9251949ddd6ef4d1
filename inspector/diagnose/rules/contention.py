"""`lock-contention`: one Lock or Semaphore held across slow awaits while many tasks queue for it.

No cycle and nothing stuck: the holder makes progress, so the waiters will get their turn, one
at a time. What it costs is latency: every waiter waits for every holder before it. The line to
fix is the one the holder awaits while it holds the lock (an HTTP call, a sleep, a query):
moving that await out of the locked section, or narrowing what the lock protects, is the fix.
"""

from __future__ import annotations

from collections.abc import Iterable

from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import innermost_application_frame
from inspector.diagnose.rules.base import (
    Settings,
    examples,
    plural,
    quoted_code,
    request_label_for,
    task_label,
    where,
)
from inspector.diagnose.rules.tasks import awaited_in_application
from inspector.diagnose.wait_graph import LIVE_STATES, build_wait_graph, find_cycles
from inspector.model import Frame, Snapshot, TaskInfo

MIN_WAITERS = 3
"""Fewer waiters than this is a lock doing its job."""
SLOW_QUEUE = 1.0
"""Seconds the longest waiter must have been in flight (its request, else its task), capped by
`stuck_after`: many requests taking a lock for a moment each queue briefly and drain at once; a
queue whose waiters are old is one where each waits for every slow holder before it."""
PROGRESSING = ("sleep", "stream", "future", "thread", "task", "gather", "taskgroup", "unknown")
"""What a holder may await and still be making progress (not another lock, an Event, a queue:
those are stuck-task and deadlock findings)."""
LIBRARY_WAITS = ("event", "condition", "queue-get")
"""Waits that are a library's call in progress when no application line awaits them."""
HINT = (
    "Keep the locked section to the shared state it protects: do the slow await (the HTTP "
    "call, the query, the sleep) before or after `async with lock:`, or give each key its own "
    "lock. If the work must be serialised, a queue with one worker says so and lets callers "
    "time out: `async with asyncio.timeout(...)`."
)


def lock_contention(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """One finding per contended primitive whose holder awaits something slow."""
    live = {task.id: task for task in snapshot.tasks if task.state in LIVE_STATES}
    deadlocked = {t for cycle in find_cycles(build_wait_graph(snapshot)) for t in cycle}
    queues: dict[int, list[TaskInfo]] = {}
    for task in live.values():
        wait = task.waiting_on
        if wait is not None and wait.kind in ("lock", "semaphore") and wait.object_id is not None:
            queues.setdefault(wait.object_id, []).append(task)
    for waiters in queues.values():
        if len(waiters) < MIN_WAITERS or any(t.id in deadlocked for t in waiters):
            continue
        if max(_in_flight(snapshot, t) for t in waiters) < min(settings.stuck_after, SLOW_QUEUE):
            continue
        wait = waiters[0].waiting_on
        assert wait is not None
        holders = [live[h] for h in wait.holder_task_ids if h in live]
        holder = next((h for h in holders if _progressing(h)), None)
        if holder is None:
            continue
        yield _finding(snapshot, wait.description or wait.kind, holder, waiters)


def _progressing(holder: TaskInfo) -> bool:
    """The holder is in a slow call rather than parked on another primitive of the app's. An
    Event, Condition or queue awaited inside a library (an HTTP client's connection pool or
    response body) is that library's call in progress."""
    wait = holder.waiting_on
    if wait is None:
        return False
    if wait.kind in PROGRESSING:
        return True
    return wait.kind in LIBRARY_WAITS and not awaited_in_application(holder)


def _in_flight(snapshot: Snapshot, task: TaskInfo) -> float:
    """How long a waiter has been at it: its request's age when it serves one, else its own."""
    for request in snapshot.requests:
        if request.task_id == task.id:
            if request.duration is not None:
                return request.duration
            return snapshot.taken_at - request.started_at
    return task.age or 0.0


def locked_section_frame(holder: TaskInfo, waiters: list[TaskInfo]) -> Frame | None:
    """The holder's line inside the locked section: its frame in the function where the
    waiters queue (`async with lock:` there, the holder's await a few lines below), even when
    the slow call is in a helper further down; else its innermost application frame."""
    queued_in = {
        (frame.file, frame.function)
        for frame in (innermost_application_frame(t.stack) for t in waiters)
        if frame is not None
    }
    for frame in holder.stack:
        if (frame.file, frame.function) in queued_in:
            return frame
    return innermost_application_frame(holder.stack)


def _finding(snapshot: Snapshot, what: str, holder: TaskInfo, waiters: list[TaskInfo]) -> Finding:
    location = locked_section_frame(holder, waiters)
    held_while = holder.waiting_on.description if holder.waiting_on is not None else "something"
    requests = [
        label
        for label in (request_label_for(snapshot, t.request_id) for t in waiters)
        if label is not None
    ]
    for_whom = f", serving {examples(requests)}" if requests else ""
    holder_request = request_label_for(snapshot, holder.request_id)
    holder_text = task_label(holder) + (f", serving {holder_request}," if holder_request else "")
    primitive = what.split(" ")[0]
    slow_call = innermost_application_frame(holder.stack)
    waiting_at = tuple(
        dict.fromkeys(
            frame
            for frame in (slow_call, *(innermost_application_frame(t.stack) for t in waiters))
            if frame is not None and frame != location
        )
    )
    return Finding(
        kind="lock-contention",
        severity="warning",
        title=f"{plural(len(waiters), 'task')} queue for one {primitive} held across an await",
        detail=(
            f"{plural(len(waiters), 'task')} wait for one {primitive}{for_whom}. It is held by "
            f"{holder_text} which meanwhile awaits {held_while} at "
            f"{where(location, snapshot)}{quoted_code(location)}: each waiter waits for every "
            "holder before it, one at a time."
        ),
        hint=HINT,
        location=location,
        related=(*waiting_at[:4], *(f for f in holder.holding_at if f not in waiting_at)),
        task_ids=tuple(sorted([holder.id, *(t.id for t in waiters)])),
        request=holder_request,
        count=len(waiters),
    )
