"""Builders for snapshots that look like what the agent reports, for the rule tests.

Paths follow a real deployment: the app in /srv/shop, the standard library under
/usr/lib/python3.11, packages under a virtualenv's site-packages.
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
APP_FILE = "/srv/shop/app.py"
STDLIB = "/usr/lib/python3.11"
SITE = "/srv/shop/.venv/lib/python3.11/site-packages"


def app(
    line: int, function: str = "handler", code: str | None = None, file: str = APP_FILE
) -> Frame:
    return Frame(file, line, function, code)


def std(path: str, line: int, function: str, code: str | None = None) -> Frame:
    return Frame(f"{STDLIB}/{path}", line, function, code)


def lib(path: str, line: int, function: str, code: str | None = None) -> Frame:
    return Frame(f"{SITE}/{path}", line, function, code)


LOOP_RUNNER: tuple[Frame, ...] = (
    Frame("/srv/shop/.venv/bin/uvicorn", 8, "<module>", "sys.exit(main())"),
    lib("uvicorn/main.py", 580, "run", "server.run()"),
    lib("uvicorn/server.py", 67, "run", "return asyncio.run(self.serve(sockets=sockets))"),
    std("asyncio/runners.py", 190, "run", "return runner.run(main)"),
    std("asyncio/runners.py", 118, "run", "return self._loop.run_until_complete(task)"),
    std("asyncio/base_events.py", 640, "run_until_complete", "self.run_forever()"),
    std("asyncio/base_events.py", 607, "run_forever", "self._run_once()"),
    std("asyncio/base_events.py", 1922, "_run_once", "handle._run()"),
    std("asyncio/events.py", 80, "_run", "self._context.run(self._callback, *self._args)"),
)
"""What the loop thread's stack starts with, before the work of the task that runs."""

REQUEST_FRAMES: tuple[Frame, ...] = (
    lib("uvicorn/protocols/http/httptools_impl.py", 409, "run_asgi", "result = await app("),
    lib("starlette/routing.py", 76, "app", "response = await f(request)"),
    lib(
        "fastapi/routing.py", 214, "run_endpoint_function", "return await dependant.call(**values)"
    ),
)
"""Framework frames between uvicorn and an `async def` endpoint."""


def loop_stack(*frames: Frame) -> tuple[Frame, ...]:
    """A loop-thread stack: the runner, the request's framework frames, then `frames`."""
    return LOOP_RUNNER + REQUEST_FRAMES + frames


def task_stack(*frames: Frame) -> tuple[Frame, ...]:
    """A suspended request task's await chain: framework frames, then `frames`."""
    return REQUEST_FRAMES + frames


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


ANYIO_WORKER_FRAMES: tuple[Frame, ...] = (
    std("threading.py", 1002, "_bootstrap", "self._bootstrap_inner()"),
    std("threading.py", 1045, "_bootstrap_inner", "self.run()"),
    lib("anyio/_backends/_asyncio.py", 1005, "run", "result = context.run(func, *args)"),
)
"""The frames every anyio worker thread starts with."""


def healthy_snapshot() -> Snapshot:
    """A busy but healthy server: short requests, idle consumers, periodic sleepers."""
    queue_get = wait("queue-get", "Queue.get() (empty)", object_id=0xA1)
    return snapshot(
        tasks=(
            task(
                1,
                name="Task-1",
                coro="uvicorn.server.Server.serve",
                age=3600,
                stack=(
                    lib("uvicorn/server.py", 240, "main_loop", "await asyncio.sleep(0.1)"),
                    std("asyncio/tasks.py", 649, "sleep", "return await future"),
                ),
                waiting_on=wait("sleep", "asyncio.sleep(0.1)", remaining=0.05),
            ),
            task(
                2,
                name="consumer",
                coro="app.consume",
                age=3600,
                stack=(
                    app(40, "consume", "item = await queue.get()"),
                    std("asyncio/queues.py", 158, "get", "await getter"),
                ),
                waiting_on=queue_get,
            ),
            task(
                3,
                name="refresher",
                coro="app.refresh_forever",
                age=3600,
                stack=(app(50, "refresh_forever", "await asyncio.sleep(30)"),),
                waiting_on=wait("sleep", "asyncio.sleep(30)", remaining=12.0),
            ),
            task(
                4,
                coro="uvicorn.protocols.http.httptools_impl.RequestResponseCycle.run_asgi",
                age=0.02,
                stack=task_stack(app(12, "index", "await db.fetch()")),
                waiting_on=wait("future", "Future pending"),
                request_id=7,
            ),
            task(
                5,
                name="shutdown-watch",
                coro="app.wait_for_shutdown",
                age=3600,
                stack=(
                    app(60, "wait_for_shutdown", "await stop_event.wait()"),
                    std("asyncio/locks.py", 213, "wait", "await fut"),
                ),
                waiting_on=wait("event", "Event.wait() (unset)", object_id=0xE5, is_set=False),
            ),
        ),
        requests=(request(7, "GET", "/items", route="/items", age=0.02, task_id=4),),
        threadpool=threadpool(40, 2, 0),
        threads=(
            thread(11, *ANYIO_WORKER_FRAMES, app(80, "sync_ep", "return compute()"), busy=True),
        ),
    )


def findings(snap: Snapshot, kind: str | None = None, *, stuck_after: float = 5.0) -> list[Any]:
    """`diagnose()` on `snap`, only `kind` if given; a rule that crashed fails the test."""
    from inspector.diagnose import diagnose

    result = diagnose(snap, stuck_after=stuck_after)
    crashed = [f for f in result if f.kind == "diagnosis-error"]
    assert not crashed, crashed
    return [f for f in result if kind is None or f.kind == kind]
