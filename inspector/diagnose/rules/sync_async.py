"""`sync-async-deadlock`: the loop thread blocks waiting for work that needs the loop to run.

`asyncio.run_coroutine_threadsafe(coro, loop).result()` is how a worker thread runs a coroutine
on the loop and waits for it. Called on the loop thread itself, it schedules the coroutine on a
loop that it then stops: the loop cannot run it until `result()` returns, and `result()` waits
for it. The stall ends only at its timeout, or never. A stack sampled during the stall shows
it: `concurrent.futures.Future.result` called from an application line that calls
`run_coroutine_threadsafe`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import innermost_application_frame, loop_work_frames, module_of
from inspector.diagnose.rules.base import (
    Settings,
    distinct_frames,
    plural,
    quoted_code,
    request_label_for,
    seconds,
    stalls_of,
    task_label,
    where,
)
from inspector.diagnose.wait_graph import LIVE_STATES
from inspector.model import Frame, Snapshot, Stall, TaskInfo, ThreadInfo

HINT = (
    "`run_coroutine_threadsafe` is for other threads. On the loop, `await` the coroutine "
    "instead; from sync code the loop calls, schedule it with `asyncio.create_task(...)` and "
    "do not wait for it there, or move the sync code to a thread "
    "(`await asyncio.to_thread(...)`), where `run_coroutine_threadsafe(...).result()` is right."
)


WAITS = ("result", "wait")
"""`concurrent.futures` functions a thread blocks in until a future completes."""


def result_caller(stack: Sequence[Frame]) -> Frame | None:
    """The application line waiting in `concurrent.futures.Future.result()` (or in
    `concurrent.futures.wait()`), if one is."""
    for index, frame in enumerate(stack):
        if module_of(frame) == "concurrent.futures._base" and frame.function.endswith(WAITS):
            return innermost_application_frame(stack[:index])
    return None


def waits_on_its_own_loop(stack: Sequence[Frame], *, known: bool = False) -> Frame | None:
    """The application line that blocks the loop thread on a coroutine meant for that loop:
    seen in the line itself (`run_coroutine_threadsafe(...).result()`), or `known` from the
    agent, which saw the future's coroutine waiting in the loop's own queue (a call split over
    two lines, or made in a helper)."""
    caller = result_caller(stack)
    if caller is not None and (known or "run_coroutine_threadsafe" in (caller.code or "")):
        return caller
    return None


def self_deadlock_at(stall: Stall) -> Frame | None:
    for sample in stall.samples:
        found = waits_on_its_own_loop(
            loop_work_frames(sample.frames), known=stall.waits_for_own_loop
        )
        if found is not None:
            return found
    return None


def sync_async_deadlocks(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """One finding per line that made the loop wait for itself, and per worker thread that
    waits on the loop while a task waits on that worker."""
    yield from _loop_waits_for_itself(snapshot)
    yield from worker_cycles(snapshot, settings)


def _workers_waiting_on_the_loop(snapshot: Snapshot) -> tuple[tuple[str, Frame], ...]:
    """Threads other than the loop's waiting in `Future.result()` from application code right
    now (the loop may wait for one of them while it waits for the loop). A thread a task awaits
    is not one the blocked loop thread waits for: the loop is not awaiting anything."""
    awaited = {
        task.waiting_on.thread_id
        for task in snapshot.tasks
        if task.state in LIVE_STATES and task.waiting_on is not None
    }
    found = []
    for thread in snapshot.threads:
        if thread.pool in ("loop", "agent") or thread.id in awaited:
            continue
        line = result_caller(thread.stack)
        if line is not None:
            found.append((thread.name, line))
    return tuple(found)


def _loop_waits_for_itself(snapshot: Snapshot) -> Iterable[Finding]:
    groups: dict[Frame, list[Stall]] = {}
    for stall in stalls_of(snapshot):
        location = self_deadlock_at(stall)
        if location is not None:
            groups.setdefault(location, []).append(stall)
    for location, stalls in groups.items():
        ongoing = any(stall.ongoing for stall in stalls)
        longest = max(stall.duration for stall in stalls)
        context = next((s.request_label for s in stalls if s.request_label), None)
        during = f" in {context}" if context else ""
        state = "is blocked right now" if ongoing else f"was blocked {seconds(longest)}"
        times = f" ({plural(len(stalls), 'time')})" if len(stalls) > 1 else ""
        workers = _workers_waiting_on_the_loop(snapshot) if ongoing else ()
        through = (
            f", through worker thread {workers[0][0]!r}, which waits at "
            f"{where(workers[0][1], snapshot)}{quoted_code(workers[0][1])}"
            if workers
            else ""
        )
        yield Finding(
            kind="sync-async-deadlock",
            severity="critical",
            title=f"The event loop waits for a coroutine only it can run{during}{times}",
            detail=(
                f"The loop thread {state} at {where(location, snapshot)}{quoted_code(location)}: "
                "it waits in `Future.result()` for a coroutine handed to "
                f"`run_coroutine_threadsafe` on this same loop{through}; the loop cannot run it "
                "until the wait ends. Every request and task on this worker waits meanwhile; "
                "without a timeout on `result()` this never ends."
            ),
            hint=HINT,
            location=location,
            related=distinct_frames((line for _, line in workers), location),
            task_ids=tuple(sorted({s.task_id for s in stalls if s.task_id is not None})),
            request=context,
            count=len(stalls),
        )


# --- a worker thread waiting on the loop while a task waits on the worker -----------------------

WORKER_HINT = (
    "The task holds a lock while it awaits the worker thread, and the worker waits for a "
    "coroutine on the loop that needs that lock. Do not hold an asyncio lock across "
    "`await asyncio.to_thread(...)` / `run_in_executor`; fetch what the worker needs before "
    "handing it over (pass it as an argument) instead of calling back into the loop with "
    "`run_coroutine_threadsafe(...).result()`, and give that `result()` a timeout."
)


def worker_cycles(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """A task awaits a worker thread (`to_thread`, `run_in_executor`) while holding a lock;
    the worker waits in `Future.result()` on the loop (`run_coroutine_threadsafe`), and the
    loop's tasks wait for that lock: none of the three can go on."""
    live = [task for task in snapshot.tasks if task.state in LIVE_STATES]
    threads = {thread.id: thread for thread in snapshot.threads}
    for task in live:
        wait = task.waiting_on
        thread = (
            threads.get(wait.thread_id)
            if wait and wait.kind == "thread" and wait.thread_id
            else None
        )
        worker_line = result_caller(thread.stack) if thread is not None else None
        if thread is None or worker_line is None:
            continue
        blocked = [
            other
            for other in live
            if other.waiting_on is not None
            and other.waiting_on.kind in ("lock", "semaphore")
            and task.id in other.waiting_on.holder_task_ids
        ]
        on_the_loop = "run_coroutine_threadsafe" in (worker_line.code or "") or any(
            other.request_id is not None and other.request_id == task.request_id
            for other in blocked
        )
        if not blocked or not on_the_loop or _waited(snapshot, task) < settings.stuck_after:
            continue
        yield _worker_finding(snapshot, task, thread, worker_line, blocked)


def _waited(snapshot: Snapshot, task: TaskInfo) -> float:
    for request in snapshot.requests:
        if request.task_id == task.id:
            return request.duration if request.duration is not None else 0.0
    return task.age or 0.0


def _own_frames(task: TaskInfo, thread: ThreadInfo) -> tuple[Frame, ...]:
    """The task's own await chain: its stack without the worker thread's frames the agent
    adds at its end (the line the thread runs)."""
    in_thread = set(thread.stack)
    stack = task.stack
    end = len(stack)
    while end > 0 and stack[end - 1] in in_thread:
        end -= 1
    return stack[:end]


def _worker_finding(
    snapshot: Snapshot,
    task: TaskInfo,
    thread: ThreadInfo,
    worker_line: Frame,
    blocked: list[TaskInfo],
) -> Finding:
    holder_line = innermost_application_frame(_own_frames(task, thread))
    blocked_lines = [innermost_application_frame(other.stack) for other in blocked]
    related = tuple(
        dict.fromkeys(
            f for f in (holder_line, *blocked_lines) if f is not None and f != worker_line
        )
    )
    request = request_label_for(snapshot, task.request_id)
    during = f" in {request}" if request else ""
    awaits = f" at {where(holder_line, snapshot)}{quoted_code(holder_line)}" if holder_line else ""
    names = ", ".join(task_label(other) for other in blocked[:3])
    return Finding(
        kind="sync-async-deadlock",
        severity="critical",
        title=f"A worker thread waits on the loop while the loop waits on it{during}",
        detail=(
            f"{task_label(task)} awaits worker thread {thread.name!r}{awaits} while holding "
            "a lock; the worker waits at "
            f"{where(worker_line, snapshot)}{quoted_code(worker_line)} for a coroutine on the "
            f"loop, and {names} wait{'s' if len(blocked) == 1 else ''} for the lock that task "
            "holds. None of them can go on; without a timeout on `result()` this never ends."
        ),
        hint=WORKER_HINT,
        location=worker_line,
        related=related,
        task_ids=tuple(sorted({task.id, *(other.id for other in blocked)})),
        request=request,
    )
