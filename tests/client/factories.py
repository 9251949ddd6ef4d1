"""Snapshots for client tests: one that fills every field of the model, and small builders.

The story in `rich_snapshot`: ``POST /transfer`` (task Task-12) holds a Lock that ``GET
/balance`` (Task-15) waits for; ``GET /block`` stalled the loop in ``time.sleep``; a sync
endpoint holds a threadpool token; one background job failed, one was dropped; a fire-and-forget
task died with nobody looking; 3 identical workers wait on a queue.
"""

from __future__ import annotations

from inspector.model import (
    AgentHealth,
    BackgroundJob,
    Borrower,
    ExceptionEvent,
    ExceptionInfo,
    Frame,
    LoopStats,
    ProcessInfo,
    RequestInfo,
    RouteStats,
    Snapshot,
    StackSample,
    Stall,
    TaskInfo,
    ThreadInfo,
    ThreadpoolState,
    WaitInfo,
)
from inspector.protocol import Hello, Result

T0 = 1_700_000_000.0
"""Snapshot time; every other time is relative to it."""
APP = "/srv/shop/app.py"
SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib/python3.11"

LOCK_ID = 0x7F00DEAD0001
QUEUE_ID = 0x7F00DEAD0002


def frame(line: int, function: str, code: str | None = None, file: str = APP) -> Frame:
    return Frame(file=file, line=line, function=function, code=code)


PROCESS = ProcessInfo(
    pid=4242,
    argv=("uvicorn", "shop.app:app", "--port", "8000"),
    python="3.11.7",
    started_at=T0 - 3723.0,
    ppid=4200,
    cwd="/srv/shop",
    uvicorn="0.54.0",
    app="shop.app:app",
    loop="asyncio",
    agent_version="0.1.0",
    worker=0,
)

ASGI_FRAMES = (
    frame(411, "run_asgi", "result = await app(", f"{SITE}/uvicorn/protocols/http/h11_impl.py"),
    frame(161, "app", "response = await f(request)", f"{SITE}/fastapi/routing.py"),
)


def rich_snapshot() -> Snapshot:
    transfer = RequestInfo(
        id=101,
        method="POST",
        path="/transfer",
        started_at=T0 - 12.5,
        phase="handler",
        route="/transfer",
        client="127.0.0.1:50412",
        duration=12.5,
        task_id=12,
    )
    balance = RequestInfo(
        id=102,
        method="GET",
        path="/balance",
        started_at=T0 - 8.0,
        phase="handler",
        route="/balance",
        duration=8.0,
        task_id=15,
        disconnected=True,
        disconnected_at=T0 - 1.5,
    )
    sync = RequestInfo(
        id=103,
        method="GET",
        path="/report",
        started_at=T0 - 4.0,
        phase="handler",
        route="/report",
        duration=4.0,
        task_id=16,
        thread_ids=(7001,),
        background_ids=(501, 502),
    )
    finished = RequestInfo(
        id=99,
        method="GET",
        path="/block",
        started_at=T0 - 30.0,
        phase="done",
        route="/block",
        duration=2.01,
        status=200,
        bytes_sent=17,
    )
    failed = RequestInfo(
        id=100,
        method="GET",
        path="/users/7",
        started_at=T0 - 20.0,
        phase="done",
        route="/users/{id}",
        duration=0.004,
        status=500,
        error="KeyError(7)",
    )
    stall = Stall(
        id=3,
        started_at=T0 - 29.0,
        duration=2.01,
        ongoing=False,
        samples=(
            StackSample(
                offset=0.25,
                frames=ASGI_FRAMES + (frame(63, "block", "time.sleep(2)  # blocks the loop"),),
            ),
            StackSample(
                offset=1.25,
                frames=ASGI_FRAMES + (frame(63, "block", "time.sleep(2)  # blocks the loop"),),
            ),
        ),
        task_id=9,
        task_name="Task-9",
        request_id=99,
        request_label="GET /block",
    )
    tasks = (
        TaskInfo(
            id=12,
            name="Task-12",
            state="pending",
            coro="transfer",
            stack=ASGI_FRAMES
            + (
                frame(40, "transfer", "await asyncio.sleep(30)  # holds the lock"),
                frame(605, "sleep", "return await future", f"{STDLIB}/asyncio/tasks.py"),
            ),
            waiting_on=WaitInfo(
                kind="sleep", description="asyncio.sleep(30): 17.5 s left", remaining=17.5
            ),
            age=12.5,
            request_id=101,
        ),
        TaskInfo(
            id=15,
            name="Task-15",
            state="pending",
            coro="balance",
            stack=ASGI_FRAMES
            + (
                frame(52, "balance", "async with ACCOUNTS_LOCK:"),
                frame(114, "acquire", "await fut", f"{STDLIB}/asyncio/locks.py"),
            ),
            waiting_on=WaitInfo(
                kind="lock",
                description="Lock held by Task-12 (transfer); 1 waiting",
                object_id=LOCK_ID,
                holder_task_ids=(12,),
                waiters=1,
            ),
            age=8.0,
            request_id=102,
        ),
        TaskInfo(
            id=16,
            name="Task-16",
            state="pending",
            coro="report",
            stack=ASGI_FRAMES + (frame(70, "report", "return await run_in_threadpool(build)"),),
            waiting_on=WaitInfo(kind="thread", description="build() in a worker thread",
                                thread_id=7001),
            age=4.0,
            request_id=103,
        ),
        TaskInfo(
            id=20,
            name="poller",
            state="failed",
            coro="poll_forever",
            age=50.0,
            created_at=frame(88, "lifespan", "asyncio.create_task(poll_forever())"),
            exception="ConnectionError('upstream went away')",
        ),
        *(
            TaskInfo(
                id=30 + i,
                name=f"worker-{i}",
                state="pending",
                coro="consume",
                stack=(frame(95, "consume", "job = await JOBS.get()"),
                       frame(158, "get", "await getter", f"{STDLIB}/asyncio/queues.py")),
                waiting_on=WaitInfo(kind="queue-get",
                                    description="Queue.get(): 0 items, 3 getters waiting",
                                    object_id=QUEUE_ID, waiters=3),
                age=60.0,
                parent_task_id=1,
            )
            for i in range(3)
        ),
        TaskInfo(id=1, name="Task-1", state="running", coro="Server.serve", age=3723.0),
    )
    return Snapshot(
        process=PROCESS,
        taken_at=T0,
        loop=LoopStats(
            implementation="asyncio",
            lag=0.0004,
            lag_series=((T0 - 60.0, 0.0003), (T0 - 29.0, 2.01), (T0 - 1.0, 0.0004)),
            stall_threshold=0.1,
            stalled_for=None,
            total_stalls=3,
            total_stalled_seconds=2.5,
        ),
        tasks=tasks,
        current_task_id=1,
        loop_thread_stack=(
            frame(1922, "_run_once", "handle._run()", f"{STDLIB}/asyncio/base_events.py"),
            frame(80, "_run", "self._context.run(self._callback, *self._args)",
                  f"{STDLIB}/asyncio/events.py"),
        ),
        stalls=(stall,),
        requests=(transfer, balance, sync),
        recent_requests=(finished, failed),
        routes=(
            RouteStats(route="/block", method="GET", count=4, errors=0, p50=2.0, p95=2.01,
                       max=2.01),
            RouteStats(route="/users/{id}", method="GET", count=120, errors=3, p50=0.0012,
                       p95=0.004, max=0.02),
        ),
        background=(
            BackgroundJob(
                id=501,
                function="send_receipt",
                state="failed",
                queued_at=T0 - 3.9,
                request_id=103,
                call_site=frame(71, "report", "background.add_task(send_receipt, user)"),
                started_at=T0 - 3.0,
                finished_at=T0 - 2.9,
                error=ExceptionInfo(
                    type="SMTPError",
                    message="relay refused",
                    traceback=(frame(120, "send_receipt", "smtp.send(msg)"),),
                ),
                dispatch="loop",
            ),
            BackgroundJob(
                id=502,
                function="audit",
                state="dropped",
                queued_at=T0 - 3.9,
                request_id=103,
                reason="the response carried its own background task",
            ),
        ),
        threadpool=ThreadpoolState(
            total=40,
            borrowed=1,
            waiting=0,
            borrowers=(Borrower(task_id=16, request_id=103, since=T0 - 3.8),),
            executor_max_workers=12,
            executor_threads=1,
        ),
        threads=(
            ThreadInfo(id=7000, name="MainThread", pool="loop"),
            ThreadInfo(
                id=7001,
                name="AnyIO worker thread",
                pool="anyio",
                stack=(frame(75, "build", "time.sleep(5)  # slow report"),),
                request_id=103,
                busy=True,
            ),
        ),
        exceptions=(
            ExceptionEvent(
                id=1,
                kind="task-exception-unretrieved",
                at=T0 - 45.0,
                error=ExceptionInfo(
                    type="ConnectionError",
                    message="upstream went away",
                    traceback=(frame(91, "poll_forever", "raise ConnectionError(...)"),),
                ),
                location=frame(91, "poll_forever", "raise ConnectionError('upstream went away')"),
                task_name="poller",
                count=2,
            ),
        ),
        health=AgentHealth(
            errors=0, probes=("tasks", "watchdog", "requests"), collect_seconds=0.0042
        ),
    )


def hello() -> Hello:
    return Hello(protocol=1, agent_version="0.1.0", process=PROCESS, stall_threshold=0.1)


def result() -> Result:
    return Result(ok=True, message="cancelled Task-15")


def error() -> Result:
    return Result(ok=False, message="no task with id 99")
