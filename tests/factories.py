"""Builders for snapshots that look like what the agent reports, shared by the test suites.

Paths follow a real deployment: the app in /srv/shop, the standard library under
/usr/lib/python3.11, packages under a virtualenv's site-packages. Every time is relative to
`NOW`, the moment the snapshot is taken. Each suite keeps its own stories (whole snapshots, stack
prefixes) next to its tests and builds them from these.
"""

from __future__ import annotations

from typing import Any

from inspector.model import (
    BackgroundJob,
    Borrower,
    ExceptionEvent,
    ExceptionInfo,
    Frame,
    LoopStats,
    ProcessInfo,
    RequestInfo,
    Snapshot,
    StackSample,
    Stall,
    TaskInfo,
    ThreadInfo,
    ThreadpoolState,
    WaitInfo,
)

NOW = 1_700_000_000.0
CWD = "/srv/shop"
APP_FILE = f"{CWD}/app.py"
STDLIB = "/usr/lib/python3.11"
SITE = "/srv/shop/.venv/lib/python3.11/site-packages"


def frame(file: str, line: int, function: str, code: str | None = None) -> Frame:
    return Frame(file=file, line=line, function=function, code=code)


# Frames in the application, the standard library and an installed package.


def app(
    line: int, function: str = "handler", code: str | None = None, file: str = APP_FILE
) -> Frame:
    return frame(file, line, function, code)


def std(path: str, line: int, function: str, code: str | None = None) -> Frame:
    return frame(f"{STDLIB}/{path}", line, function, code)


def lib(path: str, line: int, function: str, code: str | None = None) -> Frame:
    return frame(f"{SITE}/{path}", line, function, code)


def wait(kind: Any, description: str = "", **fields: Any) -> WaitInfo:
    return WaitInfo(kind=kind, description=description or kind, **fields)


def task(
    task_id: int,
    *,
    name: str | None = None,
    coro: str = "app.worker",
    stack: tuple[Frame, ...] = (),
    waiting_on: WaitInfo | None = None,
    age: float | None = 60.0,
    state: Any = "pending",
    request_id: int | None = None,
    exception: str | None = None,
) -> TaskInfo:
    return TaskInfo(
        id=task_id,
        name=name or f"Task-{task_id}",
        state=state,
        coro=coro,
        stack=stack,
        waiting_on=waiting_on,
        age=age,
        request_id=request_id,
        exception=exception,
    )


def request(
    request_id: int,
    method: str = "GET",
    path: str = "/",
    *,
    age: float = 0.05,
    route: str | None = None,
    phase: Any = "handler",
    task_id: int | None = None,
    disconnected: bool = False,
    thread_ids: tuple[int, ...] = (),
    status: int | None = None,
    error: str | None = None,
    scheme: str = "http",
) -> RequestInfo:
    return RequestInfo(
        id=request_id,
        method=method,
        path=path,
        started_at=NOW - age,
        phase=phase,
        route=route,
        duration=age,
        task_id=task_id,
        disconnected=disconnected,
        thread_ids=thread_ids,
        status=status,
        error=error,
        scheme=scheme,
    )


def stall(
    stall_id: int,
    duration: float,
    *stacks: tuple[Frame, ...],
    ongoing: bool = False,
    request_label: str | None = None,
    background_label: str | None = None,
    task_id: int | None = None,
    task_name: str | None = None,
) -> Stall:
    samples = tuple(StackSample(0.05 * (i + 1), frames) for i, frames in enumerate(stacks))
    return Stall(
        id=stall_id,
        started_at=NOW - 30 + stall_id,
        duration=duration,
        ongoing=ongoing,
        samples=samples,
        task_id=task_id,
        task_name=task_name,
        request_label=request_label,
        background_label=background_label,
    )


def error(type_: str, message: str, *traceback: Frame) -> ExceptionInfo:
    return ExceptionInfo(type=type_, message=message, traceback=traceback)


def job(
    job_id: int,
    function: str,
    state: Any,
    *,
    request_id: int | None = None,
    call_site: Frame | None = None,
    error_info: ExceptionInfo | None = None,
    reason: str | None = None,
    flagged: str | None = None,
    queued_at: float | None = None,
) -> BackgroundJob:
    return BackgroundJob(
        id=job_id,
        function=function,
        state=state,
        queued_at=queued_at if queued_at is not None else NOW - 10 + job_id,
        request_id=request_id,
        call_site=call_site,
        error=error_info,
        reason=reason,
        flagged=flagged,
    )


def exception_event(
    event_id: int,
    kind: Any,
    info: ExceptionInfo,
    *,
    location: Frame | None = None,
    request_id: int | None = None,
    request_label: str | None = None,
    task_name: str | None = None,
    count: int = 1,
    created_at: Frame | None = None,
    gathered: bool = False,
    logged_at: Frame | None = None,
) -> ExceptionEvent:
    return ExceptionEvent(
        id=event_id,
        kind=kind,
        at=NOW - 5,
        error=info,
        location=location,
        request_id=request_id,
        request_label=request_label,
        task_name=task_name,
        count=count,
        created_at=created_at,
        gathered=gathered,
        logged_at=logged_at,
    )


def thread(
    thread_id: int,
    *stack: Frame,
    name: str = "AnyIO worker thread",
    pool: Any = "anyio",
    request_id: int | None = None,
    busy: bool = True,
) -> ThreadInfo:
    return ThreadInfo(
        id=thread_id, name=name, pool=pool, stack=stack, request_id=request_id, busy=busy
    )


def threadpool(
    total: int, borrowed: int, waiting: int, borrowers: tuple[Borrower, ...] = (), **fields: Any
) -> ThreadpoolState:
    return ThreadpoolState(
        total=total, borrowed=borrowed, waiting=waiting, borrowers=borrowers, **fields
    )


def snapshot(**fields: Any) -> Snapshot:
    fields.setdefault("loop", LoopStats(implementation="asyncio", lag=0.001))
    return Snapshot(
        process=ProcessInfo(pid=4242, cwd=CWD, app="app:app"),
        taken_at=NOW,
        **fields,
    )
