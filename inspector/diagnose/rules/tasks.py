"""`deadlock` and `stuck-task`: tasks waiting on something that nothing is going to complete.

Waiting is what asyncio tasks do all day, so these rules look only for waits with a reason to
believe they never end: a cycle of tasks waiting on each other; an Event nobody sets; a Lock or
Semaphore whose holders have ended or are stuck themselves; producers blocked on a full queue
that nobody takes from. A consumer idling on `Queue.get()` or a loop in `asyncio.sleep()` is
never a finding.

One wait is a finding whatever it waits on: the app's lifespan startup still running after
`stuck_after`. Until it completes uvicorn serves no request (run by itself, it has not even
bound its HTTP port), so the server looks dead while every other check finds nothing wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import (
    innermost_application_frame,
    is_application_frame,
    module_of,
)
from inspector.diagnose.rules.base import (
    Settings,
    distinct_frames,
    examples,
    plural,
    quoted_code,
    request_label,
    seconds,
    task_label,
    where,
)
from inspector.diagnose.wait_graph import LIVE_STATES, build_wait_graph, find_cycles
from inspector.model import Frame, Snapshot, TaskInfo, WaitInfo

# --- deadlock --------------------------------------------------------------------------------

DEADLOCK_HINT = (
    "Take the locks in the same order everywhere (always `lock_a` before `lock_b`), or hold one "
    "at a time. asyncio locks are not reentrant: a task must not acquire a lock it already "
    "holds. A timeout (`async with asyncio.timeout(...)`) around the acquisition turns this "
    "silent hang into an error."
)
AWAIT_CYCLE_HINT = (
    "A task awaits a task that waits for it. Release what the child needs before awaiting it, "
    "or restructure so the child does not need the parent's lock."
)


def deadlocks(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """One finding per group of tasks that wait on each other in a cycle."""
    graph = build_wait_graph(snapshot)
    grouped: dict[tuple[object, ...], list[Finding]] = {}
    for cycle in find_cycles(graph):
        finding = _deadlock(snapshot, [graph.tasks[task_id] for task_id in cycle])
        lines = (finding.location, *finding.related)
        key = tuple((f.file, f.line) if f is not None else None for f in lines)
        grouped.setdefault(key, []).append(finding)
    for findings in grouped.values():
        first = findings[0]
        if len(findings) == 1:
            yield first
            continue
        task_ids = tuple(sorted({t for f in findings for t in f.task_ids}))
        yield Finding(
            kind=first.kind,
            severity=first.severity,
            title=f"{len(findings)} deadlocks at the same lines: {first.title.split(': ', 1)[-1]}",
            detail=first.detail,
            hint=first.hint,
            location=first.location,
            related=first.related,
            task_ids=task_ids,
            request=first.request,
            count=len(findings),
        )


def _deadlock(snapshot: Snapshot, tasks: list[TaskInfo]) -> Finding:
    ids = [task.id for task in tasks]
    labels = {task.id: _who(snapshot, task) for task in tasks}
    locations = [innermost_application_frame(task.stack) for task in tasks]
    requests = [r for r in (_request_of(snapshot, task) for task in tasks) if r is not None]
    steps = []
    for position, task in enumerate(tasks):
        wait = task.waiting_on
        blocker = ids[(position + 1) % len(ids)]
        at = locations[position]
        what = _primitive(wait, at)
        place = f" at {where(at, snapshot)}{quoted_code(at)}" if at is not None else ""
        holder = "itself" if blocker == task.id else labels[blocker]
        verb = (
            "awaits"
            if wait is not None and wait.kind in ("task", "gather", "taskgroup")
            else "waits"
        )
        taken = task.holding_at[0] if task.holding_at else None
        had = (
            f", having taken its own at {where(taken, snapshot)}{quoted_code(taken)}"
            if taken
            else ""
        )
        steps.append(f"{labels[task.id]} {verb}{place} for {what} held by {holder}{had}")
    if len(tasks) == 1:
        lock = _primitive(tasks[0].waiting_on, locations[0])
        title = f"Deadlock: {labels[ids[0]]} waits for {lock}, which it holds itself"
    else:
        named = f" ({examples(requests)})" if requests else ""
        title = f"Deadlock: {len(tasks)} tasks wait for each other{named}"
    detail = (
        "; ".join(steps)
        + ". None of them can go on, and every other task that needs what they hold will hang too."
    )
    awaits_only = all(
        t.waiting_on is not None and t.waiting_on.kind not in ("lock", "semaphore") for t in tasks
    )
    present = [frame for frame in locations if frame is not None]
    return Finding(
        kind="deadlock",
        severity="critical",
        title=title,
        detail=detail,
        hint=AWAIT_CYCLE_HINT if awaits_only else DEADLOCK_HINT,
        location=present[0] if present else None,
        related=distinct_frames(
            [*present[1:], *(f for task in tasks for f in task.holding_at)],
            present[0] if present else None,
        ),
        task_ids=tuple(ids),
        request=requests[0] if requests else None,
    )


_NAME = r"[A-Za-z_][\w.]*(?:\[[^\]]{0,40}\])?"
_ACQUIRED_NAME = re.compile(rf"async\s+with\s+({_NAME})|({_NAME})\.acquire\s*\(")


def _primitive(wait: WaitInfo | None, at: Frame | None = None) -> str:
    """ "lock_b" when the waiting line names it (`async with lock_b:`), else "a Lock"."""
    if wait is None:
        return "something"
    if wait.kind in ("lock", "semaphore") and at is not None and at.code:
        match = _ACQUIRED_NAME.search(at.code)
        if match:
            return f"`{match.group(1) or match.group(2)}`"
    names = {
        "lock": "a Lock",
        "semaphore": "a Semaphore",
        "task": "a task",
        "gather": "tasks",
        "taskgroup": "a TaskGroup",
    }
    return names.get(wait.kind, wait.kind)


def _request_of(snapshot: Snapshot, task: TaskInfo) -> str | None:
    for request in snapshot.requests:
        if request.task_id == task.id:
            return request_label(request, by_route=False)
    created_in = snapshot.request(task.request_id) if task.request_id is not None else None
    return request_label(created_in, by_route=False) if created_in is not None else None


def _who(snapshot: Snapshot, task: TaskInfo) -> str:
    """A request task is known by its request ("GET /a (Task-9)"), any other by its name."""
    request = _request_of(snapshot, task)
    return f"{request} ({task.name})" if request else task_label(task)


# --- a lifespan startup that does not finish ------------------------------------------------

STARTUP_HINT = (
    "Give each startup step a timeout (`async with asyncio.timeout(10): await db.connect()`), so "
    "a dependency that does not answer fails the startup with an error uvicorn reports instead "
    "of a server that never comes up. Connect lazily, or retry in a background task, what the "
    "server can start without."
)
_UVICORN_LIFESPAN: Final = "/uvicorn/lifespan/on.py"


def _uvicorn_lifespan(frame: Frame, method: str) -> bool:
    """A frame of uvicorn's `LifespanOn.<method>` (named "method" alone before Python 3.11)."""
    path = frame.file.replace("\\", "/")
    return path.endswith(_UVICORN_LIFESPAN) and frame.function in (f"LifespanOn.{method}", method)


def starting_up(snapshot: Snapshot) -> list[TaskInfo]:
    """The app's lifespan tasks while uvicorn still waits for their startup to complete.

    uvicorn runs the lifespan in a task of its own (`LifespanOn.main`, the outermost frame of
    its await chain, which a stack too deep to report whole keeps) while its server task waits
    in `LifespanOn.startup`; once startup completes that wait ends, and the lifespan task
    waits for the shutdown message instead.
    """
    live = [task for task in snapshot.tasks if task.state in LIVE_STATES]
    if not any(_uvicorn_lifespan(f, "startup") for task in live for f in task.stack):
        return []
    return [task for task in live if task.stack and _uvicorn_lifespan(task.stack[0], "main")]


def startup_not_finished(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """A lifespan startup still running after `stuck_after`: the server serves nothing yet."""
    for task in starting_up(snapshot):
        if task.age is not None and task.age > settings.stuck_after:
            yield _startup_finding(snapshot, task)


def _startup_finding(snapshot: Snapshot, task: TaskInfo) -> Finding:
    age = seconds(task.age or 0.0)
    location = innermost_application_frame(task.stack)
    wait = task.waiting_on
    place = f" at {where(location, snapshot)}{quoted_code(location)}" if location else ""
    if task.state == "running":
        doing = f"is running{place}, holding the event loop"
    elif wait is not None:
        doing = f"waits{place} on {wait.description or wait.kind}"
    else:
        doing = f"is about to run{place}"
    awaited = [
        snapshot.task(task_id) for task_id in (wait.awaited_task_ids if wait is not None else ())
    ]
    related = distinct_frames(
        (innermost_application_frame(t.stack) for t in awaited if t is not None), location
    )
    inside = (
        f" The tasks it awaits wait at {', '.join(where(f, snapshot) for f in related)}."
        if related
        else ""
    )
    timeout = task.deadline_in is not None and task.deadline_in > 0
    until = (
        f" A timeout ends this wait in {seconds(task.deadline_in or 0.0)}."
        if timeout
        else " Nothing limits how long it waits."
    )
    at = f" in {location.function}" if location is not None else ""
    verb = "runs" if task.state == "running" else "waits"
    return Finding(
        kind="stuck-task",
        severity="warning" if timeout else "critical",
        title=f"Server startup has not finished after {age}: the lifespan {verb}{at}, "
        "no request is served",
        detail=f"The app's lifespan startup (task {task.name}) has been running for {age} and "
        f"{doing}.{inside}{until} uvicorn serves requests only once startup completes: until "
        "then the server answers nothing (run by itself, it has not even bound its HTTP port).",
        hint=STARTUP_HINT,
        location=location,
        related=related,
        task_ids=(task.id,),
    )


# --- stuck tasks -----------------------------------------------------------------------------

LEAKED = re.compile(r"never released|leaked", re.I)
"""How the agent describes a Semaphore whose permits were taken by tasks that have ended."""
SHUTDOWN_WORDS = re.compile(
    r"stop|shut(?:ting)?_?down|exit|quit|terminat|clos|teardown|lifespan|signal|halt|drain|"
    r"abort|kill",
    re.I,
)
"""An Event named like a shutdown signal is meant to be waited on for the life of the server."""
RECURRING_WORDS = re.compile(
    r"wake|notif|changed|arriv|avail|dirty|tick|trigger|kick|poke|updated|"
    r"new_(item|data|work|message|event|job)s?\b|has_(items|work|data|jobs|messages)",
    re.I,
)
"""An Event named like a wake-up call is set again and again (and cleared by its waiter): an idle
consumer waiting for the next one, like one on `Queue.get()`."""

HINTS = {
    "event": (
        "Make sure every path that should wake this task calls `event.set()`, error paths "
        "included (`try/finally`), or wait with a timeout: `async with asyncio.timeout(...)`."
    ),
    "ended-holder": (
        "The task that acquired it ended without releasing it. Use `async with lock:` (or "
        "`async with semaphore:`) instead of `acquire()`/`release()`, so an exception releases it."
    ),
    "stuck-holder": (
        "Its holder is stuck (see the other findings); fix that one and this one resolves. Avoid "
        "awaiting things that can hang while holding a lock, or give them a timeout."
    ),
    "queue-put": (
        "Nothing takes items from the queue: its consumer task has died or is stuck. Restart "
        "the consumer on failure (catch exceptions per item inside its loop), keep a reference "
        "to it and watch it with a done-callback."
    ),
}


@dataclass(frozen=True)
class _Stuck:
    task: TaskInfo
    reason: str
    because: str
    """The sentence that says why nothing will complete the wait."""


def stuck_tasks(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """Tasks outside requests that wait, longer than `stuck_after`, on a wait nothing ends; and
    a lifespan startup that has not finished in that time, whatever it waits on."""
    startup = list(startup_not_finished(snapshot, settings))
    yield from startup
    said = {task_id for finding in startup for task_id in finding.task_ids}
    live = {task.id: task for task in snapshot.tasks if task.state in LIVE_STATES}
    deadlocked = {t for cycle in find_cycles(build_wait_graph(snapshot)) for t in cycle}
    serving = {r.task_id for r in snapshot.requests if r.task_id is not None}
    candidates = [
        task
        for task in live.values()
        if task.id not in serving
        and task.id not in said
        and task.id not in deadlocked
        and task.waiting_on is not None
        and task.age is not None
        and task.age > settings.stuck_after
        and not (task.deadline_in is not None and task.deadline_in > 0)  # a timeout ends it
    ]
    # Oldest first, so the examples a finding names are the same on every run.
    candidates.sort(key=lambda task: (-(task.age or 0.0), task.name, task.id))
    stuck: dict[int, _Stuck] = {}
    for task in candidates:
        found = _why_stuck(snapshot, task, live)
        if found is not None:
            stuck[task.id] = found
    _add_stuck_holders(snapshot, candidates, stuck, deadlocked, live)

    groups: dict[tuple[object, ...], list[_Stuck]] = {}
    for item in stuck.values():
        location = innermost_application_frame(item.task.stack)
        key = (item.reason, (location.file, location.line) if location else item.task.coro)
        groups.setdefault(key, []).append(item)
    for items in groups.values():
        yield _stuck_finding(snapshot, items)


def never_ending(snapshot: Snapshot, task: TaskInfo) -> tuple[str, str] | None:
    """(why, hint) when `task` waits on something nothing will complete, however long it has
    waited so far; for requests, whose age is the request's."""
    if task.waiting_on is None:
        return None
    live = {t.id: t for t in snapshot.tasks if t.state in LIVE_STATES}
    found = _why_stuck(snapshot, task, live)
    return (found.because, HINTS[found.reason]) if found is not None else None


def _why_stuck(snapshot: Snapshot, task: TaskInfo, live: dict[int, TaskInfo]) -> _Stuck | None:
    wait = task.waiting_on
    assert wait is not None
    if wait.kind == "event":
        if wait.is_set or not awaited_in_application(task) or _shutdown_like(task):
            return None
        waiters = _others_on(live, task, wait, ("event",))
        also = f" {plural(len(waiters), 'other task')} wait on it too." if waiters else ""
        return _Stuck(
            task,
            "event",
            f"The Event has not been set, and no running task is about to set it.{also}",
        )
    if wait.kind == "semaphore" and not wait.holder_task_ids and LEAKED.search(wait.description):
        return _Stuck(
            task,
            "ended-holder",
            f"No running task holds the Semaphore ({wait.description}): the tasks that took its "
            "permits ended without releasing them, so nobody will ever release them.",
        )
    if wait.kind in ("lock", "semaphore") and wait.holder_task_ids:
        if all(holder not in live for holder in wait.holder_task_ids):
            holders = ", ".join(_ended(snapshot, h) for h in wait.holder_task_ids)
            noun = "Lock" if wait.kind == "lock" else "Semaphore"
            return _Stuck(
                task,
                "ended-holder",
                f"The {noun} is held by {holders}, which has ended without releasing it: nobody "
                "will ever release it (it leaked on an error path).",
            )
        return None
    if wait.kind == "queue-put" and wait.object_id is not None:
        consumers = _others_on(live, task, wait, ("queue-get", "queue-join"))
        if consumers:
            return None
        dead = _dead_tasks(snapshot)
        suspect = f" A task died recently: {dead}; was it the consumer?" if dead else ""
        return _Stuck(
            task,
            "queue-put",
            f"The queue is full and no task is waiting to take items from it: its consumer is "
            f"gone or stuck elsewhere.{suspect}",
        )
    return None


def _add_stuck_holders(
    snapshot: Snapshot,
    candidates: list[TaskInfo],
    stuck: dict[int, _Stuck],
    deadlocked: set[int],
    live: dict[int, TaskInfo],
) -> None:
    """A wait on a Lock held by a stuck or deadlocked task is stuck too (to a fixed point)."""
    changed = True
    while changed:
        changed = False
        for task in candidates:
            wait = task.waiting_on
            if task.id in stuck or wait is None or wait.kind not in ("lock", "semaphore"):
                continue
            holders = [h for h in wait.holder_task_ids if h in live]
            if holders and all(h in stuck or h in deadlocked for h in holders):
                names = ", ".join(task_label(live[h]) for h in holders)
                state = "deadlocked" if any(h in deadlocked for h in holders) else "stuck"
                stuck[task.id] = _Stuck(
                    task,
                    "stuck-holder",
                    f"It is held by {names}, which is {state} itself, so it will not be released.",
                )
                changed = True


def awaited_in_application(task: TaskInfo) -> bool:
    """True when application code itself awaits the wait (not uvicorn or a library inside it).

    uvicorn's request cycle waits on an Event for the whole life of a streaming response; that
    wait is under site-packages and must not be mistaken for an Event the app forgot to set. An
    `anyio.Event` the app awaits is its own, though anyio's frame sits in between.
    """
    for frame in reversed(task.stack):
        if is_application_frame(frame):
            return True
        module = module_of(frame)
        if module is None:
            return False
        if module.startswith("anyio") and frame.function.endswith("Event.wait"):
            continue  # anyio's Event is asyncio's underneath: the app awaits it all the same
        if not module.startswith("asyncio"):
            return False
    return False


def _shutdown_like(task: TaskInfo) -> bool:
    """A shutdown signal, or a wake-up call an idle consumer waits for: not a forgotten Event."""
    frame = innermost_application_frame(task.stack)
    if frame is None:
        return False
    words = f"{frame.function} {frame.code or ''} {task.name}"
    return bool(SHUTDOWN_WORDS.search(words) or RECURRING_WORDS.search(frame.code or ""))


def _others_on(
    live: dict[int, TaskInfo], task: TaskInfo, wait: WaitInfo, kinds: tuple[str, ...]
) -> list[TaskInfo]:
    if wait.object_id is None:
        return []
    return [
        other
        for other in live.values()
        if other.id != task.id
        and other.waiting_on is not None
        and other.waiting_on.kind in kinds
        and other.waiting_on.object_id == wait.object_id
    ]


def _ended(snapshot: Snapshot, task_id: int) -> str:
    task = snapshot.task(task_id)
    if task is None:
        return f"task #{task_id} (no longer running)"
    outcome = f", {task.state}: {task.exception}" if task.exception else f", {task.state}"
    return f"{task_label(task)}{outcome}"


def _dead_tasks(snapshot: Snapshot) -> str:
    names = [
        f"{task_label(task)} ({task.exception or task.state})"
        for task in snapshot.tasks
        if task.state in ("failed", "done", "cancelled") and task.request_id is None
    ]
    names += [
        f"task {event.task_name or '?'} ({event.error.type}: {event.error.message})"
        for event in snapshot.exceptions
        if event.kind == "task-exception-unretrieved" and event.request_id is None
    ]
    return "; ".join(names[:3])


def _stuck_finding(snapshot: Snapshot, items: list[_Stuck]) -> Finding:
    first = items[0]
    task = first.task
    wait = task.waiting_on
    assert wait is not None
    count = len(items)
    location = innermost_application_frame(task.stack)
    longest = max(item.task.age or 0.0 for item in items)
    what = wait.description or wait.kind
    subject = task_label(task) if count == 1 else plural(count, "task")
    verb = "waits" if count == 1 else "wait"
    titles = {
        "event": f"{subject} {verb} forever on an Event nobody sets",
        "ended-holder": f"{subject} {verb} on a lock that an ended task never released",
        "stuck-holder": f"{subject} {verb} on a lock held by a stuck task",
        "queue-put": f"{subject} {verb} to put into a full queue nobody consumes",
    }
    place = f" at {where(location, snapshot)}{quoted_code(location)}" if location else ""
    opening = (
        f"{task_label(task)} (seen for {seconds(longest)}) waits{place} on {what}."
        if count == 1
        else f"{plural(count, 'task')} (seen for up to {seconds(longest)}) wait{place} on {what}, "
        f"e.g. {', '.join(task_label(i.task) for i in items[:3])}."
    )
    related = distinct_frames(
        (innermost_application_frame(i.task.stack) for i in items[1:]), location
    )
    return Finding(
        kind="stuck-task",
        severity="warning",
        title=titles[first.reason],
        detail=f"{opening} {first.because}",
        hint=HINTS[first.reason],
        location=location,
        related=related,
        task_ids=tuple(sorted(i.task.id for i in items)),
        request=None,
        count=count,
    )
