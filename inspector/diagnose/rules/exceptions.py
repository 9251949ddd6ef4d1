"""Exceptions nobody looked at: unretrieved task exceptions, never-awaited coroutines,
swallowed exceptions and errors that were only logged."""

from __future__ import annotations

import re
from collections.abc import Iterable

from inspector.diagnose.findings import Finding, Severity
from inspector.diagnose.locate import innermost_application_frame
from inspector.diagnose.rules.base import (
    Settings,
    distinct_frames,
    examples,
    plural,
    quoted_code,
    seconds,
    where,
)
from inspector.model import ExceptionEvent, Frame, Snapshot

UNRETRIEVED_HINT = (
    "Keep a reference to every task you create and await it, or add a done-callback that logs "
    "`task.exception()`; a TaskGroup does both. Inside a long-lived loop, catch exceptions per "
    "item so one bad item does not kill the worker."
)
GATHERED_HINT = (
    "Pass `return_exceptions=True` and check every result, or use an `asyncio.TaskGroup`, whose "
    "ExceptionGroup carries every child's failure; at the least, catch and log exceptions inside "
    "each child."
)
NEVER_AWAITED_HINT = (
    "Add `await` before the call, or schedule it with `asyncio.create_task(...)` and keep a "
    "reference. For BackgroundTasks pass the function, not its call: "
    "`add_task(send_email, user)`."
)
SWALLOWED_HINT = (
    "Log it (`logger.exception(...)`) or re-raise it; catch only the exceptions you expect, "
    "and handle them."
)
DESTROYED_PENDING_HINT = (
    "The loop keeps only a weak reference to a task: keep a strong one until it is done "
    "(`task = asyncio.create_task(...)`; `background.add(task)`; "
    "`task.add_done_callback(background.discard)`), or start it in a TaskGroup. A task whose "
    "only reference is a future nobody else holds is collected mid-wait: keep the future too."
)
LOGGED_HINT = "It was logged, so it is in the server's log; this is the line it came from."
BROAD_EXCEPT = re.compile(
    r"^\s*except\s*(\(?\s*(Exception|BaseException)\b[^:]*)?:"
    r"|^\s*(async\s+)?with\b.*\bsuppress\(([^)]*[\s,(])?(Exception|BaseException)\s*[,)]"
)
"""A catch-all: a bare `except:`, `except Exception`, or `with suppress(Exception)`."""


def _grouped(snapshot: Snapshot, kind: str) -> list[list[ExceptionEvent]]:
    groups: dict[tuple[object, ...], list[ExceptionEvent]] = {}
    for event in snapshot.exceptions:
        if event.kind != kind:
            continue
        location = _location(event)
        key = (
            event.error.type,
            (location.file, location.line) if location else event.error.message,
        )
        groups.setdefault(key, []).append(event)
    return list(groups.values())


def _location(event: ExceptionEvent) -> Frame | None:
    return event.location or innermost_application_frame(event.error.traceback)


def _raise_site(event: ExceptionEvent, besides: Frame | None) -> tuple[Frame, ...]:
    raised = innermost_application_frame(event.error.traceback)
    return (raised,) if raised is not None and raised != besides else ()


def _count(events: list[ExceptionEvent]) -> int:
    return sum(max(event.count, 1) for event in events)


def _requests(events: list[ExceptionEvent]) -> list[str]:
    return [event.request_label for event in events if event.request_label]


def unretrieved_task_exceptions(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """Tasks that failed with nobody awaiting them; a long-lived worker dying is said so."""
    yield from _dead_tasks_without_events(snapshot)
    for events in _grouped(snapshot, "task-exception-unretrieved"):
        first = events[0]
        location = _location(first)
        err = f"{first.error.type}: {first.error.message}"
        count = _count(events)
        requests = _requests(events)
        name = first.task_name or "a task"
        hint = UNRETRIEVED_HINT
        if first.gathered:
            context = f" in {examples(requests)}" if requests else ""
            title = f"gather hid an exception{context}: {err}"
            story = (
                f"A child of asyncio.gather{context} raised {err} after gather had already "
                "raised another child's exception to its caller. gather marks this one "
                "retrieved, so asyncio never logs it: nobody saw it."
            )
            hint = GATHERED_HINT
        elif requests:
            title = f"Task {name} created in {requests[0]} failed unseen: {err}"
            story = (
                f"A fire-and-forget task created while serving {examples(requests)} raised {err}; "
                'nobody awaited it, so the error surfaces at best as "Task exception was never '
                'retrieved" when the task is garbage-collected.'
            )
        else:
            alive = _alive_for(snapshot, first.task_name)
            title = f"Task {name} died: {err}"
            story = (
                f"Task {name}, not started by any request (a long-lived worker such as a queue "
                f"consumer or a poller?){alive}, raised {err} and ended. Whatever it did has "
                "stopped, and the server keeps running without it; nobody awaited it, so nothing "
                "was reported."
            )
        if count > 1:
            title += f" ({count} times)"
        place = (
            f" It was raised at {where(location, snapshot)}{quoted_code(location)}."
            if location
            else ""
        )
        created = first.created_at
        made = (
            f" The task was created at {where(created, snapshot)}{quoted_code(created)}."
            if created is not None and created != location
            else ""
        )
        yield Finding(
            kind="task-exception-unretrieved",
            severity="warning",
            title=title,
            detail=story + place + made,
            hint=hint,
            location=location,
            related=distinct_frames((created,), location),
            request=requests[0] if requests else None,
            count=count,
        )


def _dead_tasks_without_events(snapshot: Snapshot) -> Iterable[Finding]:
    """Failed tasks the agent still lists, not created by a request and told by no event:
    typically a long-lived worker that something keeps a reference to, so Python never logs."""
    told = {e.task_name for e in snapshot.exceptions if e.kind == "task-exception-unretrieved"}
    for task in snapshot.tasks:
        if task.state != "failed" or task.request_id is not None or task.name in told:
            continue
        location = innermost_application_frame(task.stack) or task.created_at
        err = task.exception or "an exception"
        related = distinct_frames((task.created_at,), location)
        place = f" It was created at {where(task.created_at, snapshot)}." if task.created_at else ""
        yield Finding(
            kind="task-exception-unretrieved",
            severity="warning",
            title=f"Task {task.name} died: {err}",
            detail=(
                f"Task {task.name} ({task.coro}), not started by any request, ended with {err}"
                f"{_alive_for(snapshot, task.name)}. Whatever it did has stopped, and the server "
                f"keeps running without it; nothing awaited it, so nothing was reported.{place}"
            ),
            hint=UNRETRIEVED_HINT,
            location=location,
            related=related,
            task_ids=(task.id,),
        )


def _alive_for(snapshot: Snapshot, task_name: str | None) -> str:
    task = next((t for t in snapshot.tasks if task_name and t.name == task_name), None)
    if task is None or task.age is None:
        return ""
    return f" after running for at least {seconds(task.age)}"


def never_awaited(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """Coroutines created and dropped without being awaited: their work never happened."""
    flagged_lines = {
        (job.call_site.file, job.call_site.line)
        for job in snapshot.background
        if job.flagged and job.call_site is not None
    }
    for events in _grouped(snapshot, "coroutine-never-awaited"):
        first = events[0]
        location = _location(first)
        if location is not None and (location.file, location.line) in flagged_lines:
            continue  # the add_task(coroutine) finding already explains this warning
        count = _count(events)
        requests = _requests(events)
        context = f" in {examples(requests)}" if requests else ""
        message = first.error.message or "a coroutine was never awaited"
        place = (
            f" It was created at {where(location, snapshot)}{quoted_code(location)}."
            if location
            else ""
        )
        yield Finding(
            kind="coroutine-never-awaited",
            severity="warning",
            title=f"{message[:1].upper()}{message[1:]}{context}"
            + (f" ({count} times)" if count > 1 else ""),
            detail=(
                f"{plural(count, 'coroutine')} was created{context} and dropped without being "
                f"awaited, so its body never ran.{place}"
            ).replace("coroutines was", "coroutines were"),
            hint=NEVER_AWAITED_HINT,
            location=location,
            request=requests[0] if requests else None,
            count=count,
        )


def destroyed_pending_tasks(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """Pending tasks the garbage collector took: the rest of their work never runs, silently
    (asyncio only logs "Task was destroyed but it is pending!")."""
    for events in _grouped(snapshot, "task-destroyed-pending"):
        first = events[0]
        location = _location(first)
        count = _count(events)
        requests = _requests(events)
        context = f", created in {examples(requests)}" if requests else ""
        # Its await chain when the agent could still read it, else its coroutine's first line
        # (the collector usually closes the coroutine before asyncio reports the task).
        at = "was waiting at" if first.error.traceback else "ran the coroutine at"
        waiting = (
            f" It {at} {where(location, snapshot)}{quoted_code(location)}: nothing else "
            "referenced the task or what it awaited."
            if location
            else ""
        )
        created = first.created_at
        if created is not None and created != location:
            waiting += f" It was created at {where(created, snapshot)}{quoted_code(created)}."
        what = first.error.message.removesuffix(" was destroyed while pending")
        tasks, were, they = (
            ("a task", "was", "it") if count == 1 else (plural(count, "task"), "were", "they")
        )
        yield Finding(
            kind="task-destroyed-pending",
            severity="warning",
            title=f"A pending task was garbage-collected: {what}{context}"
            + (f" ({count} times)" if count > 1 else ""),
            detail=(
                f"{tasks.capitalize()} running {what} {were} destroyed before {they} finished"
                f"{context}, so the rest of the work never ran and no error was raised."
                f"{waiting}"
            ),
            hint=DESTROYED_PENDING_HINT,
            location=location,
            related=distinct_frames((first.created_at,), location),
            request=requests[0] if requests else None,
            count=count,
        )


def swallowed_exceptions(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """Exceptions caught and dropped by application code (opt-in tracing, Python >= 3.12)."""
    for events in _grouped(snapshot, "exception-swallowed"):
        first = events[0]
        location = first.location
        err = f"{first.error.type}: {first.error.message}"
        count = _count(events)
        broad = location is not None and bool(BROAD_EXCEPT.search(location.code or ""))
        severity: Severity = "warning" if broad else "info"
        at = f" at {where(location, snapshot)}{quoted_code(location)}" if location else ""
        yield Finding(
            kind="exception-swallowed",
            severity=severity,
            title=f"{first.error.type} caught and dropped{at.split(' (`')[0]}"
            + (f" ({count} times)" if count > 1 else ""),
            detail=(
                f"{err} was raised and swallowed{at} {plural(count, 'time')}"
                + (", by a catch-all that hides every error." if broad else ".")
            ),
            hint=SWALLOWED_HINT,
            location=location,
            related=_raise_site(first, location),
            request=next(iter(_requests(events)), None),
            count=count,
        )


def logged_errors(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """Errors logged with a traceback: visible in the log, but worth the line they came from."""
    for events in _grouped(snapshot, "logged-error"):
        first = events[0]
        location = _location(first)
        err = f"{first.error.type}: {first.error.message}"
        count = _count(events)
        requests = _requests(events)
        failed = any(_request_failed(snapshot, event) for event in events)
        context = f" in {examples(requests)}" if requests else ""
        at = f" at {where(location, snapshot)}" if location else ""
        logged = first.logged_at
        logged_line = (
            f" It was logged at {where(logged, snapshot)}{quoted_code(logged)}."
            if logged is not None and logged != location
            else ""
        )
        yield Finding(
            kind="logged-error",
            severity="warning" if failed else "info",
            title=f"Error logged{context}: {err}" + (f" ({count} times)" if count > 1 else ""),
            detail=(
                f"{err} was logged {plural(count, 'time')}{context}; it was "
                f"raised{at or ' outside application code'}.{logged_line}"
                + (" The request failed with it." if failed else "")
            ),
            hint=LOGGED_HINT,
            location=location,
            related=distinct_frames((logged,), location),
            request=requests[0] if requests else None,
            count=count,
        )


def _request_failed(snapshot: Snapshot, event: ExceptionEvent) -> bool:
    """The request died of an error nobody handled: the answer was a bare 500, or none at all.
    An HTTPException (a 404, or a 502 the endpoint chose after logging) is an error handled."""
    if event.request_id is None:
        return False
    request = snapshot.request(event.request_id)
    if request is None:
        return False
    return request.status == 500 or (request.status is None and request.error is not None)
