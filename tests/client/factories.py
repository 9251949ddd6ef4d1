"""Snapshots for client tests: one that fills every field of the model, and small builders.

The story in `rich_snapshot`: ``POST /transfer`` (task Task-12) holds a Lock that ``GET
/balance`` (Task-15) waits for; ``GET /block`` stalled the loop in ``time.sleep``; a sync
endpoint holds a threadpool token; one background job failed, one was dropped; a fire-and-forget
task died with nobody looking; 3 identical workers wait on a queue. Taken at `NOW`, like every
snapshot of `tests.factories`.
"""

from __future__ import annotations

from inspector.model import (
    AgentHealth,
    BackgroundJob,
    Borrower,
    ExceptionEvent,
    ExceptionInfo,
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
from tests.factories import NOW, app, frame, std

SITE = "/venv/lib/python3.11/site-packages"

LOCK_ID = 0x7F00DEAD0001
QUEUE_ID = 0x7F00DEAD0002


PROCESS = ProcessInfo(
    pid=4242,
    argv=("uvicorn", "shop.app:app", "--port", "8000"),
    python="3.11.7",
    started_at=NOW - 3723.0,
    ppid=4200,
    cwd="/srv/shop",
    uvicorn="0.54.0",
    app="shop.app:app",
    loop="asyncio",
    agent_version="0.1.0",
    worker=0,
)

ASGI_FRAMES = (
    frame(f"{SITE}/uvicorn/protocols/http/h11_impl.py", 411, "run_asgi", "result = await app("),
    frame(f"{SITE}/fastapi/routing.py", 161, "app", "response = await f(request)"),
)


def rich_snapshot() -> Snapshot:
    transfer = RequestInfo(
        id=101,
        method="POST",
        path="/transfer",
        started_at=NOW - 12.5,
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
        started_at=NOW - 8.0,
        phase="handler",
        route="/balance",
        duration=8.0,
        task_id=15,
        disconnected=True,
        disconnected_at=NOW - 1.5,
    )
    sync = RequestInfo(
        id=103,
        method="GET",
        path="/report",
        started_at=NOW - 4.0,
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
        started_at=NOW - 30.0,
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
        started_at=NOW - 20.0,
        phase="done",
        route="/users/{id}",
        duration=0.004,
        status=500,
        error="KeyError(7)",
    )
    stall = Stall(
        id=3,
        started_at=NOW - 29.0,
        duration=2.01,
        ongoing=False,
        samples=(
            StackSample(
                offset=0.25,
                frames=ASGI_FRAMES + (app(63, "block", "time.sleep(2)  # blocks the loop"),),
            ),
            StackSample(
                offset=1.25,
                frames=ASGI_FRAMES + (app(63, "block", "time.sleep(2)  # blocks the loop"),),
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
                app(40, "transfer", "await asyncio.sleep(30)  # holds the lock"),
                std("asyncio/tasks.py", 605, "sleep", "return await future"),
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
                app(52, "balance", "async with ACCOUNTS_LOCK:"),
                std("asyncio/locks.py", 114, "acquire", "await fut"),
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
            stack=ASGI_FRAMES + (app(70, "report", "return await run_in_threadpool(build)"),),
            waiting_on=WaitInfo(
                kind="thread", description="build() in a worker thread", thread_id=7001
            ),
            age=4.0,
            request_id=103,
        ),
        TaskInfo(
            id=20,
            name="poller",
            state="failed",
            coro="poll_forever",
            age=50.0,
            created_at=app(88, "lifespan", "asyncio.create_task(poll_forever())"),
            exception="ConnectionError('upstream went away')",
        ),
        *(
            TaskInfo(
                id=30 + i,
                name=f"worker-{i}",
                state="pending",
                coro="consume",
                stack=(
                    app(95, "consume", "job = await JOBS.get()"),
                    std("asyncio/queues.py", 158, "get", "await getter"),
                ),
                waiting_on=WaitInfo(
                    kind="queue-get",
                    description="Queue.get(): 0 items, 3 getters waiting",
                    object_id=QUEUE_ID,
                    waiters=3,
                ),
                age=60.0,
                parent_task_id=1,
            )
            for i in range(3)
        ),
        TaskInfo(id=1, name="Task-1", state="running", coro="Server.serve", age=3723.0),
    )
    return Snapshot(
        process=PROCESS,
        taken_at=NOW,
        loop=LoopStats(
            implementation="asyncio",
            lag=0.0004,
            lag_series=((NOW - 60.0, 0.0003), (NOW - 29.0, 2.01), (NOW - 1.0, 0.0004)),
            stall_threshold=0.1,
            stalled_for=None,
            total_stalls=3,
            total_stalled_seconds=2.5,
        ),
        tasks=tasks,
        current_task_id=1,
        loop_thread_stack=(
            std("asyncio/base_events.py", 1922, "_run_once", "handle._run()"),
            std("asyncio/events.py", 80, "_run", "self._context.run(self._callback, *self._args)"),
        ),
        stalls=(stall,),
        requests=(transfer, balance, sync),
        recent_requests=(finished, failed),
        routes=(
            RouteStats(
                route="/block", method="GET", count=4, errors=0, p50=2.0, p95=2.01, max=2.01
            ),
            RouteStats(
                route="/users/{id}",
                method="GET",
                count=120,
                errors=3,
                p50=0.0012,
                p95=0.004,
                max=0.02,
            ),
        ),
        background=(
            BackgroundJob(
                id=501,
                function="send_receipt",
                state="failed",
                queued_at=NOW - 3.9,
                request_id=103,
                call_site=app(71, "report", "background.add_task(send_receipt, user)"),
                started_at=NOW - 3.0,
                finished_at=NOW - 2.9,
                error=ExceptionInfo(
                    type="SMTPError",
                    message="relay refused",
                    traceback=(app(120, "send_receipt", "smtp.send(msg)"),),
                ),
                dispatch="loop",
            ),
            BackgroundJob(
                id=502,
                function="audit",
                state="dropped",
                queued_at=NOW - 3.9,
                request_id=103,
                reason="the response carried its own background task",
            ),
        ),
        threadpool=ThreadpoolState(
            total=40,
            borrowed=1,
            waiting=0,
            borrowers=(Borrower(task_id=16, request_id=103, since=NOW - 3.8),),
            executor_max_workers=12,
            executor_threads=1,
        ),
        threads=(
            ThreadInfo(id=7000, name="MainThread", pool="loop"),
            ThreadInfo(
                id=7001,
                name="AnyIO worker thread",
                pool="anyio",
                stack=(app(75, "build", "time.sleep(5)  # slow report"),),
                request_id=103,
                busy=True,
            ),
        ),
        exceptions=(
            ExceptionEvent(
                id=1,
                kind="task-exception-unretrieved",
                at=NOW - 45.0,
                error=ExceptionInfo(
                    type="ConnectionError",
                    message="upstream went away",
                    traceback=(app(91, "poll_forever", "raise ConnectionError(...)"),),
                ),
                location=app(91, "poll_forever", "raise ConnectionError('upstream went away')"),
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
