"""`pool-exhausted`: every connection of a pool is checked out and tasks queue for one.

The agent describes a wait for a pool's connection as `kind="pool"` with the pool's capacity,
how many connections are lent out and (for httpx and aiohttp) which tasks hold them. The
holders are the answer: requests still running with a connection each mean the pool is too
small for the load or the upstream is slow; connections held by no running task were never
returned (a streamed response never closed, a connection taken without `finally`).
"""

from __future__ import annotations

from collections.abc import Iterable

from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import innermost_application_frame, is_application_frame
from inspector.diagnose.rules.base import (
    Settings,
    examples,
    plural,
    quoted_code,
    request_label_for,
    seconds,
    task_label,
    where,
)
from inspector.diagnose.wait_graph import LIVE_STATES
from inspector.model import Frame, Snapshot, TaskInfo, WaitInfo

MIN_WAIT = 0.5
"""Seconds a task waits for a connection before the pool counts as exhausted (a burst that
clears faster is a pool doing its job); never more than --stuck-after."""
HINTS = {
    "httpx": (
        "Every connection of the httpx client's pool is checked out. Close each streamed "
        "response (`async with client.stream(...)`, or `await response.aclose()` in a "
        "`finally:`): an open response keeps its connection. Raise "
        "`httpx.Limits(max_connections=...)` if the upstream can take more, and set a pool "
        "timeout (`httpx.Timeout(10, pool=2)`) so waiters fail fast instead of hanging."
    ),
    "aiohttp": (
        "Every connection of the aiohttp connector is checked out. Release each response "
        "(`async with session.get(...) as response:`, or `response.release()`): an unreleased "
        "response keeps its connection. Raise `TCPConnector(limit=..., limit_per_host=...)` if "
        "the upstream can take more, and give requests a timeout (`ClientTimeout(total=...)`)."
    ),
    "sqlalchemy": (
        "Every connection of the engine's pool is checked out. End each session and connection "
        "as soon as its queries are done (`async with AsyncSession(engine) as session:`, "
        "`async with engine.connect() as conn:`) and do not hold one across slow work that does "
        "not need the database (an HTTP call, a sleep). Raise `pool_size` / `max_overflow` if "
        "the database can take more, and lower `pool_timeout` so waiters fail fast."
    ),
    "home-made": (
        "Every connection of the pool is checked out. Give connections back in a `finally:` "
        "(better: an `async with pool.connection():` context manager), do not hold one across "
        "slow work that does not need it, size the pool to the load, and give the acquire a "
        "timeout (`async with asyncio.timeout(...)`) so callers fail fast instead of queueing."
    ),
}


def pool_exhausted(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """One finding per pool that has waiters, no connection free, and a wait that lasts."""
    live = {task.id: task for task in snapshot.tasks if task.state in LIVE_STATES}
    queues: dict[int, list[TaskInfo]] = {}
    for task in live.values():
        wait = task.waiting_on
        if wait is not None and wait.kind == "pool" and wait.object_id is not None:
            queues.setdefault(wait.object_id, []).append(task)
    least = min(MIN_WAIT, settings.stuck_after)
    for waiters in queues.values():
        wait = waiters[0].waiting_on
        assert wait is not None
        if wait.capacity is not None and wait.in_use is not None and wait.in_use < wait.capacity:
            continue  # a connection is free: the waiters are about to get one
        longest = max(_waited(snapshot, task) for task in waiters)
        if longest < least:
            continue
        holders = [live[h] for h in wait.holder_task_ids if h in live]
        yield _finding(snapshot, wait, waiters, holders, longest)


def _waited(snapshot: Snapshot, task: TaskInfo) -> float:
    """How long the task has been waiting, at least: its age, or its request's."""
    waited = task.age or 0.0
    if task.request_id is not None:
        for request in snapshot.requests:
            if request.id == task.request_id:
                waited = max(waited, snapshot.taken_at - request.started_at)
    return waited


def _library(wait: WaitInfo) -> str:
    if "httpx" in wait.description:
        return "httpx"
    if "aiohttp" in wait.description:
        return "aiohttp"
    if "SQLAlchemy" in wait.description:
        return "sqlalchemy"
    return "home-made"


def pool_name(wait: WaitInfo) -> str:
    text = wait.description.removeprefix("a connection from ")
    return text.split(":")[0]


def asking_frame(task: TaskInfo, pool: str) -> Frame | None:
    """The application line that asks for a connection: for a pool written in the app, the
    caller of its `acquire`, not the `Queue.get` inside it."""
    for frame in reversed(task.stack):
        if is_application_frame(frame) and not frame.function.startswith(f"{pool}."):
            return frame
    return innermost_application_frame(task.stack)


def _verb(count: int, verb: str) -> str:
    return verb if count != 1 else verb + "s"


def _holder_text(snapshot: Snapshot, holder: TaskInfo) -> str:
    request = request_label_for(snapshot, holder.request_id)
    age = f" ({seconds(holder.age)})" if holder.age else ""
    return (request or task_label(holder)) + age


def _finding(
    snapshot: Snapshot,
    wait: WaitInfo,
    waiters: list[TaskInfo],
    holders: list[TaskInfo],
    longest: float,
) -> Finding:
    library = _library(wait)
    name = pool_name(wait)
    location = next(
        (f for f in (asking_frame(t, name) for t in waiters) if f is not None),
        None,
    )
    requests = [
        label
        for label in (request_label_for(snapshot, t.request_id) for t in waiters)
        if label is not None
    ]
    for_whom = f" ({examples(requests)})" if requests else ""
    usage = ""
    if wait.in_use is not None:
        usage = (
            f"{wait.in_use} of {wait.capacity}" if wait.capacity is not None else str(wait.in_use)
        )
        usage = f" {usage} in use;"
    held = ""
    if holders:
        held = f" Held by {examples([_holder_text(snapshot, h) for h in holders])}."
    leaked = 0
    if library in ("httpx", "aiohttp") and wait.in_use is not None:
        leaked = max(0, wait.in_use - len(holders))
    if leaked:
        held += (
            f" {plural(leaked, 'connection')} held by no running task: taken by requests that "
            "have finished and never given back (leaked)."
        )
    elif library in ("home-made", "sqlalchemy") and not holders:
        held += " The pool does not record who holds its connections."
    holder_lines = tuple(
        dict.fromkeys(
            frame
            for frame in (innermost_application_frame(h.stack) for h in holders)
            if frame is not None and frame != location
        )
    )
    return Finding(
        kind="pool-exhausted",
        severity="warning",
        title=(
            f"Connection pool exhausted: {plural(len(waiters), 'task')} "
            f"{_verb(len(waiters), 'wait')} for {name}"
            + (f" ({wait.in_use} of {wait.capacity} in use)" if wait.capacity else "")
        ),
        detail=(
            f"{plural(len(waiters), 'task')}{for_whom} {_verb(len(waiters), 'wait')} for a "
            f"connection from {name}, the "
            f"longest for {seconds(longest)}:{usage} none is free.{held} They ask for it at "
            f"{where(location, snapshot)}{quoted_code(location)}."
        ),
        hint=HINTS[library],
        location=location,
        related=holder_lines[:4],
        task_ids=tuple(sorted(t.id for t in (*waiters, *holders))),
        request=requests[0] if requests else None,
        count=len(waiters),
    )
