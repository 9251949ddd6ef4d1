"""`threadpool-saturated`: every worker thread is busy and requests queue for one.

FastAPI runs `def` endpoints and dependencies in anyio's threadpool, 40 threads by default.
When they are all busy, sync endpoints wait in line while CPU sits idle; async endpoints are
unaffected, which makes the slowdown look random. The loop's default executor (`to_thread`,
`run_in_executor(None, ...)`) and executors of the app's own fill up the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from inspector.diagnose.findings import Finding, Severity
from inspector.diagnose.locate import (
    classify_stack,
    innermost_application_frame,
    module_of,
    most_common_frame,
)
from inspector.diagnose.rules.base import (
    Settings,
    distinct_frames,
    doing,
    examples,
    plural,
    quoted_code,
    request_label_for,
    where,
)
from inspector.model import (
    ExecutorState,
    Frame,
    LimiterState,
    Snapshot,
    ThreadInfo,
    ThreadpoolState,
)

MIN_HOLD = 0.5
"""Seconds the longest-held token (or the longest-running job of an executor) must have been
held for a full threadpool to be a finding."""
ANYIO_HINT = (
    "Each sync (`def`) endpoint or dependency holds one thread for as long as it runs. Make the "
    "slow endpoint `async def` with async I/O, make what it waits for faster or give it a "
    "timeout, or raise the limit at startup (in the lifespan): "
    "`anyio.to_thread.current_default_thread_limiter().total_tokens = 100`."
)
DB_POOL_HINT = (
    " The threads wait for a database connection: the connection pool is smaller than the "
    "threadpool, so requests holding threads wait for connections that requests waiting for "
    "threads would give back. Make the pool at least as large as the threadpool, or use async "
    "endpoints with an async driver."
)
EXECUTOR_HINT = (
    "`asyncio.to_thread` and `run_in_executor(None, ...)` share the loop's default executor, "
    "separate from FastAPI's threadpool. Give long jobs their own executor, or set a larger "
    "default with `loop.set_default_executor(ThreadPoolExecutor(max_workers=...))`."
)
LIMITER_HINT = (
    "Each call holds one of the limiter's tokens (and a worker thread) for as long as it runs. "
    "Make the call faster or give what it waits for a timeout, raise the limiter's "
    "`total_tokens` to what must run at once, or use async I/O instead of a thread."
)
OWN_EXECUTOR_HINT = (
    "Each job holds one of the executor's threads for as long as it runs. Make the job faster "
    "or give what it waits for a timeout, size the executor (`max_workers`) for the jobs it "
    "must run at once, or use async I/O instead of a thread."
)


def threadpool_saturated(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """The anyio limiter at its limit with waiters; any thread pool executor likewise (the loop's
    default one, or one the app passes to run_in_executor)."""
    pool = snapshot.threadpool
    if pool is None:
        return
    if (
        pool.total > 0
        and pool.borrowed >= pool.total
        and pool.waiting > 0
        and not _a_passing_burst(snapshot, pool)
    ):
        busy = _busy(snapshot, "anyio")
        labels = [
            label
            for label in (request_label_for(snapshot, b.request_id) for b in pool.borrowers)
            if label
        ] or [label for t in busy if (label := request_label_for(snapshot, t.request_id))]
        severity: Severity = "critical" if pool.waiting >= pool.total else "warning"
        yield _finding(
            snapshot,
            busy,
            title=f"Threadpool full: {pool.borrowed}/{pool.total} threads busy, "
            f"{plural(pool.waiting, 'request')} waiting",
            opening=(
                f"{pool.borrowed}/{pool.total} threads busy, {plural(pool.waiting, 'request')} "
                "waiting" + (f", e.g. {examples(labels)}" if labels else "") + "."
            ),
            hint=ANYIO_HINT,
            severity=severity,
            labels=labels,
        )
    yield from _own_limiters(snapshot, pool)
    for executor in _executors(pool):
        started = max(len(executor.thread_ids), executor.busy)
        if not (executor.max_workers and started >= executor.max_workers and executor.queued > 0):
            continue
        if executor.longest_job is not None and executor.longest_job < MIN_HOLD:
            continue  # quick jobs queueing for a moment, or jobs the agent has only just seen
        busy = _executor_threads(snapshot, executor)
        size, queued = executor.max_workers, plural(executor.queued, "job")
        if executor.default:
            title = f"Default executor full: {size}/{size} threads busy, {queued} queued"
            opening = (
                f"The loop's default executor (asyncio.to_thread, run_in_executor) has all "
                f"{size} threads busy and {queued} queued."
            )
            hint = EXECUTOR_HINT
        else:
            title = f"Executor {executor.name} full: {size}/{size} threads busy, {queued} queued"
            opening = (
                f"The thread pool executor {executor.name} (max_workers={size}) has all its "
                f"threads busy and {queued} queued: whoever awaits them through "
                "run_in_executor waits in line."
            )
            hint = OWN_EXECUTOR_HINT
        awaiting = _awaiting(snapshot, executor)
        lines = examples(where(frame, snapshot) for frame, _ in awaiting)
        yield _finding(
            snapshot,
            busy,
            title=title,
            opening=opening,
            hint=hint,
            severity="warning",
            labels=[label for _, label in awaiting if label],
            also=tuple(frame for frame, _ in awaiting),
            closing=f"Tasks wait for its jobs at {lines}." if awaiting else "",
        )


_TO_THREAD: Final = re.compile(r"\bto_thread\(|\brun_in_executor\(\s*None\b")
_RUN_IN_EXECUTOR: Final = re.compile(r"\brun_in_executor\(\s*(?!None\b)")


def _awaiting(snapshot: Snapshot, executor: ExecutorState) -> list[tuple[Frame, str | None]]:
    """The application lines where tasks wait for a job of this kind of executor (to_thread or
    run_in_executor(None, ...) for the default one, run_in_executor(pool, ...) for another),
    with the request each task serves."""
    pattern = _TO_THREAD if executor.default else _RUN_IN_EXECUTOR
    found = []
    for task in snapshot.tasks:
        if task.state != "pending":
            continue
        frame = innermost_application_frame(task.stack)
        if frame is not None and frame.code and pattern.search(frame.code):
            found.append((frame, request_label_for(snapshot, task.request_id)))
    return found


def _own_limiters(snapshot: Snapshot, pool: ThreadpoolState) -> Iterable[Finding]:
    """anyio limiters of the app's own (`run_sync(..., limiter=...)`) at their limit."""
    for limiter in pool.limiters:
        full = limiter.total > 0 and limiter.borrowed >= limiter.total and limiter.waiting > 0
        if not full or _a_passing_burst(snapshot, limiter):
            continue
        served = {b.request_id for b in limiter.borrowers if b.request_id is not None}
        anyio = [t for t in snapshot.threads if t.pool == "anyio" and t.busy]
        threads = [t for t in anyio if t.request_id in served] or anyio
        labels = [
            label
            for label in (request_label_for(snapshot, b.request_id) for b in limiter.borrowers)
            if label
        ]
        tokens, waiting = f"{limiter.borrowed}/{limiter.total}", plural(limiter.waiting, "call")
        yield _finding(
            snapshot,
            threads,
            title=f"CapacityLimiter full: {tokens} tokens taken, {waiting} waiting",
            opening=(
                f"An anyio CapacityLimiter of the app's own (total_tokens={limiter.total}) has "
                f"all its tokens taken and {waiting} to anyio.to_thread.run_sync waiting"
                + (f", e.g. for {examples(labels)}" if labels else "")
                + "."
            ),
            hint=LIMITER_HINT,
            severity="warning",
            labels=labels,
        )


def _a_passing_burst(snapshot: Snapshot, pool: ThreadpoolState | LimiterState) -> bool:
    """Every token taken only moments ago: a burst of quick calls queueing for a moment, not a
    pool held by slow ones (when the agent knows how long each token has been held)."""
    holds = [snapshot.taken_at - b.since for b in pool.borrowers if b.since is not None]
    return bool(holds) and max(holds) < MIN_HOLD


def _executors(pool: ThreadpoolState) -> tuple[ExecutorState, ...]:
    """Every executor the agent read; from an older agent, the default one alone."""
    if pool.executors or pool.executor_max_workers is None:
        return pool.executors
    return (
        ExecutorState(
            name="default",
            max_workers=pool.executor_max_workers,
            busy=pool.executor_threads,
            queued=pool.executor_queued,
            default=True,
        ),
    )


def _executor_threads(snapshot: Snapshot, executor: ExecutorState) -> list[ThreadInfo]:
    if not snapshot.threadpool or not snapshot.threadpool.executors:
        return _busy(snapshot, "executor")  # an older agent: the pool's threads by kind
    ids = set(executor.thread_ids)
    threads = [t for t in snapshot.threads if t.id in ids]
    return [t for t in threads if t.busy] or threads


def _busy(snapshot: Snapshot, pool: str) -> list[ThreadInfo]:
    threads = [t for t in snapshot.threads if t.pool == pool]
    busy = [t for t in threads if t.busy]
    return busy or threads


def _finding(
    snapshot: Snapshot,
    busy: Sequence[ThreadInfo],
    *,
    title: str,
    opening: str,
    hint: str,
    severity: Severity,
    labels: list[str],
    also: tuple[Frame, ...] = (),
    closing: str = "",
) -> Finding:
    """`also`: more lines to name beside the busy threads' (where tasks wait for them), told
    in `closing`."""
    frames = [innermost_application_frame(t.stack) for t in busy]
    location = most_common_frame(frames)
    related = distinct_frames((*frames, *also), location)
    sentences = [opening]
    if location is not None:
        at_location = [t for t, f in zip(busy, frames, strict=True) if f == location]
        blocking = classify_stack(at_location[0].stack)
        if len(busy) == 1:
            share = "The busy thread is"
        elif len(at_location) == len(busy):
            share = f"All {len(busy)} busy threads are"
        else:
            share = f"{len(at_location)} of the {len(busy)} busy threads are"
        sentences.append(
            f"{share} at {where(location, snapshot)}{quoted_code(location)}, "
            f"{doing(blocking.kind, blocking.what)}."
        )
    if closing:
        sentences.append(closing)
    if any(_in_db_pool(t) for t in busy):
        hint += DB_POOL_HINT
    task_ids = tuple(
        sorted({b.task_id for b in (snapshot.threadpool.borrowers if snapshot.threadpool else ())})
    )
    return Finding(
        kind="threadpool-saturated",
        severity=severity,
        title=title,
        detail=" ".join(sentences),
        hint=hint,
        location=location,
        related=related,
        task_ids=task_ids if "Threadpool" in title else (),
        request=max(set(labels), key=labels.count) if labels else None,
        count=1,
    )


def _in_db_pool(thread: ThreadInfo) -> bool:
    """A thread waiting to check a connection out of SQLAlchemy's (or a driver's) pool."""
    for frame in thread.stack:
        module = module_of(frame) or ""
        if module.startswith("sqlalchemy.pool") or (
            module.startswith("sqlalchemy") and "checkout" in frame.function
        ):
            return True
    return False
