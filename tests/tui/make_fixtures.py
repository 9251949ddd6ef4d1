"""Builds the recorded snapshots the TUI tests replay (`tests/tui/data/*.json`).

Run `python -m tests.tui.make_fixtures` after a change to the model. Each snapshot is built from
the model's dataclasses, so a field rename breaks here first. Times are fixed (`TAKEN_AT`), so
ages and the rendered screens are deterministic with a frozen clock.
"""

from __future__ import annotations

import gzip
import random
import sys
from pathlib import Path

from inspector import protocol
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
from tests.factories import CWD, app, frame, lib, std

DATA = Path(__file__).parent / "data"
TAKEN_AT = 1_750_000_000.0
"""2025-06-15 15:06:40 UTC: every `*_at` in the fixtures is relative to it."""
PID = 48213

PROCESS = ProcessInfo(
    pid=PID,
    argv=("/srv/shop/.venv/bin/python", "-m", "inspector", "run", "app:app", "--port", "8000"),
    python="3.11.9",
    started_at=TAKEN_AT - 7825,
    ppid=1,
    cwd=CWD,
    uvicorn="0.54.0",
    app="app:app",
    loop="uvloop",
    agent_version="0.1.0",
)


SERVER_CHAIN = (
    lib("uvicorn/protocols/http/httptools_impl.py", 409, "run_asgi", "result = await app("),
    lib(
        "uvicorn/middleware/proxy_headers.py",
        60,
        "__call__",
        "return await self.app(scope, receive, send)",
    ),
    lib(
        "fastapi/applications.py", 1134, "__call__", "await super().__call__(scope, receive, send)"
    ),
    lib("starlette/routing.py", 76, "app", "response = await f(request)"),
    lib("fastapi/routing.py", 302, "app", "raw_response = await run_endpoint_function("),
)


def request_stack(*app_frames: Frame) -> tuple[Frame, ...]:
    return SERVER_CHAIN + app_frames


def uvicorn_tasks(start_id: int) -> list[TaskInfo]:
    return [
        TaskInfo(
            id=start_id,
            name="Task-1",
            state="pending",
            coro="Server.serve",
            stack=(
                lib("uvicorn/server.py", 70, "serve", "await self._serve(sockets)"),
                lib("uvicorn/server.py", 91, "_serve", "await self.main_loop()"),
                lib("uvicorn/server.py", 236, "main_loop", "await asyncio.sleep(0.1)"),
            ),
            waiting_on=WaitInfo(kind="sleep", description="asyncio.sleep(0.1)", remaining=0.04),
            age=7820.0,
        ),
        TaskInfo(
            id=start_id + 1,
            name="Task-2",
            state="pending",
            coro="LifespanOn.main",
            stack=(
                lib(
                    "uvicorn/lifespan/on.py",
                    86,
                    "main",
                    "await app(scope, self.receive, self.send)",
                ),
                lib(
                    "uvicorn/lifespan/on.py",
                    137,
                    "receive",
                    "return await self.receive_queue.get()",
                ),
            ),
            waiting_on=WaitInfo(
                kind="queue-get", description="Queue.get() (empty)", object_id=9001
            ),
            age=7821.0,
        ),
        TaskInfo(
            id=start_id + 2,
            name="cache-refresher",
            state="pending",
            coro="refresh_prices_forever",
            stack=(app(31, "refresh_prices_forever", "await asyncio.sleep(30)"),),
            waiting_on=WaitInfo(kind="sleep", description="asyncio.sleep(30)", remaining=12.5),
            age=7815.0,
            created_at=app(
                40,
                "lifespan",
                'asyncio.create_task(refresh_prices_forever(), name="cache-refresher")',
            ),
        ),
    ]


def healthy() -> Snapshot:
    tasks = uvicorn_tasks(1)
    tasks.append(
        TaskInfo(
            id=20,
            name="Task-312",
            state="pending",
            coro="RequestResponseCycle.run_asgi",
            stack=request_stack(
                app(72, "list_orders", "rows = await db.fetch_all(query)"),
                lib(
                    "databases/core.py",
                    180,
                    "fetch_all",
                    "return await connection.fetch_all(query)",
                ),
            ),
            waiting_on=WaitInfo(kind="stream", description="socket read (postgres)"),
            age=0.03,
            request_id=301,
        )
    )
    for index in range(4):
        tasks.append(
            TaskInfo(
                id=30 + index,
                name=f"Task-{280 + index}",
                state="pending",
                coro="H11Protocol.run",
                stack=(
                    lib("uvicorn/protocols/http/httptools_impl.py", 160, "data_received", None),
                ),
                waiting_on=WaitInfo(kind="stream", description="keep-alive connection (idle)"),
                age=4.0 + index,
            )
        )
    requests = (
        RequestInfo(
            id=301,
            method="GET",
            path="/orders",
            started_at=TAKEN_AT - 0.03,
            phase="handler",
            route="/orders",
            client="127.0.0.1:51234",
            duration=0.03,
            task_id=20,
        ),
    )
    recent = tuple(
        RequestInfo(
            id=250 + i,
            method=m,
            path=p,
            started_at=TAKEN_AT - 60 + i,
            phase="done",
            route=p,
            client="127.0.0.1:51200",
            duration=d,
            status=s,
            bytes_sent=512,
        )
        for i, (m, p, d, s) in enumerate(
            [
                ("GET", "/orders", 0.021, 200),
                ("POST", "/orders", 0.044, 201),
                ("GET", "/health", 0.001, 200),
                ("GET", "/orders", 0.019, 200),
                ("GET", "/products/{id}", 0.008, 200),
                ("GET", "/products/{id}", 0.006, 404),
            ]
        )
    )
    lag_series = tuple((TAKEN_AT - 60 + i, 0.0004 + (i % 7) * 0.0002) for i in range(60))
    return Snapshot(
        process=PROCESS,
        taken_at=TAKEN_AT,
        loop=LoopStats(implementation="uvloop", lag=0.0011, lag_series=lag_series),
        tasks=tuple(tasks),
        requests=requests,
        recent_requests=recent,
        routes=(
            RouteStats(
                route="/orders", method="GET", count=1204, errors=0, p50=0.019, p95=0.052, max=0.31
            ),
            RouteStats(
                route="/orders", method="POST", count=211, errors=1, p50=0.041, p95=0.090, max=0.22
            ),
            RouteStats(
                route="/products/{id}",
                method="GET",
                count=3310,
                errors=12,
                p50=0.006,
                p95=0.015,
                max=0.09,
            ),
            RouteStats(
                route="/health", method="GET", count=781, errors=0, p50=0.001, p95=0.002, max=0.004
            ),
        ),
        background=(
            BackgroundJob(
                id=1,
                function="send_receipt",
                state="done",
                queued_at=TAKEN_AT - 58,
                request_id=251,
                call_site=app(
                    88, "create_order", "background_tasks.add_task(send_receipt, order.id)"
                ),
                started_at=TAKEN_AT - 57.99,
                finished_at=TAKEN_AT - 57.7,
                dispatch="loop",
            ),
        ),
        threadpool=ThreadpoolState(
            total=40,
            borrowed=2,
            waiting=0,
            borrowers=(
                Borrower(task_id=30, since=TAKEN_AT - 0.2),
                Borrower(task_id=31, since=TAKEN_AT - 0.1),
            ),
            executor_max_workers=6,
            executor_threads=1,
        ),
        threads=(
            ThreadInfo(
                id=140001,
                name="MainThread",
                pool="loop",
                stack=(lib("uvicorn/server.py", 70, "serve"),),
            ),
            ThreadInfo(
                id=140010,
                name="AnyIO worker thread",
                pool="anyio",
                busy=False,
                stack=(std("threading.py", 327, "wait", "waiter.acquire()"),),
            ),
            ThreadInfo(id=140020, name="inspector-watchdog", pool="agent"),
        ),
        health=AgentHealth(
            probes=("tasks", "watchdog", "requests", "background", "threadpool", "exceptions")
        ),
    )


# --- the blocked loop ---------------------------------------------------------------------

EXPORT_FRAME = app(57, "export", "time.sleep(3)  # render the PDF")
INVENTORY_LOCK = 0x7F3A1C2B4D10
PAYMENT_LOCK = 0x7F3A1C2B4E90
REPORT_EVENT = 0x7F3A1C2B5F00


def blocked() -> Snapshot:
    rng = random.Random(7)
    tasks = uvicorn_tasks(1)
    # 1. The request that blocks the loop right now.
    tasks.append(
        TaskInfo(
            id=1042,
            name="Task-1042",
            state="running",
            coro="RequestResponseCycle.run_asgi",
            stack=request_stack(EXPORT_FRAME),
            age=2.31,
            request_id=7,
        )
    )
    # 2. Two orders deadlocked on two locks taken in opposite order.
    tasks.append(
        TaskInfo(
            id=1057,
            name="Task-1057",
            state="pending",
            coro="RequestResponseCycle.run_asgi",
            stack=request_stack(
                frame(f"{CWD}/orders.py", 41, "reserve_and_charge", "async with payment_lock:"),
                std("asyncio/locks.py", 114, "acquire", "await fut"),
            ),
            waiting_on=WaitInfo(
                kind="lock",
                description="Lock payment_lock (held by Task-1058)",
                object_id=PAYMENT_LOCK,
                holder_task_ids=(1058,),
                waiters=1,
            ),
            age=41.2,
            request_id=11,
        )
    )
    tasks.append(
        TaskInfo(
            id=1058,
            name="Task-1058",
            state="pending",
            coro="RequestResponseCycle.run_asgi",
            stack=request_stack(
                frame(f"{CWD}/orders.py", 63, "refund_and_release", "async with inventory_lock:"),
                std("asyncio/locks.py", 114, "acquire", "await fut"),
            ),
            waiting_on=WaitInfo(
                kind="lock",
                description="Lock inventory_lock (held by Task-1057)",
                object_id=INVENTORY_LOCK,
                holder_task_ids=(1057,),
                waiters=1,
            ),
            age=40.9,
            request_id=12,
        )
    )
    # 3. A report waiting for an Event nobody will set.
    tasks.append(
        TaskInfo(
            id=1061,
            name="Task-1061",
            state="pending",
            coro="RequestResponseCycle.run_asgi",
            stack=request_stack(
                frame(f"{CWD}/reports.py", 22, "weekly_report", "await report_ready.wait()"),
                std("asyncio/locks.py", 213, "wait", "await fut"),
            ),
            waiting_on=WaitInfo(
                kind="event",
                description="Event report_ready (not set)",
                object_id=REPORT_EVENT,
                is_set=False,
                waiters=1,
            ),
            age=312.4,
            request_id=13,
        )
    )
    # 4. The threadpool: 40 requests in sync endpoints, 10 waiting for a token.
    borrowers = []
    threads = [
        ThreadInfo(
            id=139900,
            name="MainThread",
            pool="loop",
            stack=request_stack(EXPORT_FRAME),
            busy=True,
            request_id=7,
        ),
    ]
    requests = [
        RequestInfo(
            id=7,
            method="GET",
            path="/export",
            started_at=TAKEN_AT - 2.31,
            phase="handler",
            route="/export",
            client="10.0.3.17:40112",
            duration=2.31,
            task_id=1042,
        ),
        RequestInfo(
            id=11,
            method="POST",
            path="/orders/981/charge",
            started_at=TAKEN_AT - 41.2,
            phase="handler",
            route="/orders/{id}/charge",
            client="10.0.3.9:51522",
            duration=41.2,
            task_id=1057,
        ),
        RequestInfo(
            id=12,
            method="POST",
            path="/orders/977/refund",
            started_at=TAKEN_AT - 40.9,
            phase="handler",
            route="/orders/{id}/refund",
            client="10.0.3.9:51530",
            duration=40.9,
            task_id=1058,
        ),
        RequestInfo(
            id=13,
            method="GET",
            path="/reports/weekly",
            started_at=TAKEN_AT - 312.4,
            phase="handler",
            route="/reports/weekly",
            client="10.0.3.21:33410",
            duration=312.4,
            task_id=1061,
        ),
    ]
    for index in range(50):
        task_id = 2000 + index
        request_id = 100 + index
        thread_id = 140100 + index
        borrowing = index < 40
        age = 30.0 - index * 0.5
        legacy_frame = frame(
            f"{CWD}/legacy.py", 23, "inventory_sync", "resp = requests.get(ERP_URL, timeout=None)"
        )
        if borrowing:
            wait = WaitInfo(
                kind="thread",
                description="to_thread: inventory_sync (AnyIO worker)",
                thread_id=thread_id,
            )
            borrowers.append(Borrower(task_id=task_id, request_id=request_id, since=TAKEN_AT - age))
            threads.append(
                ThreadInfo(
                    id=thread_id,
                    name="AnyIO worker thread",
                    pool="anyio",
                    busy=True,
                    request_id=request_id,
                    stack=(
                        std("threading.py", 1045, "_bootstrap_inner", "self.run()"),
                        lib(
                            "anyio/_backends/_asyncio.py",
                            967,
                            "run",
                            "result = context.run(func, *args)",
                        ),
                        legacy_frame,
                        lib(
                            "requests/api.py",
                            73,
                            "get",
                            'return request("get", url, params=params, **kwargs)',
                        ),
                        std("socket.py", 720, "readinto", "return self._sock.recv_into(b)"),
                    ),
                )
            )
        else:
            wait = WaitInfo(
                kind="limiter",
                description="CapacityLimiter (40/40 borrowed, 10 waiting)",
                waiters=10,
            )
        tasks.append(
            TaskInfo(
                id=task_id,
                name=f"Task-{1100 + index}",
                state="pending",
                coro="RequestResponseCycle.run_asgi",
                stack=request_stack(
                    lib(
                        "starlette/concurrency.py",
                        39,
                        "run_in_threadpool",
                        "return await anyio.to_thread.run_sync(func)",
                    ),
                    lib(
                        "anyio/to_thread.py",
                        56,
                        "run_sync",
                        "return await get_async_backend().run_sync_in_worker_thread(",
                    ),
                ),
                waiting_on=wait,
                age=age,
                request_id=request_id,
            )
        )
        requests.append(
            RequestInfo(
                id=request_id,
                method="GET",
                path="/legacy/inventory",
                started_at=TAKEN_AT - age,
                phase="handler",
                route="/legacy/inventory",
                client=f"10.0.4.{index + 10}:4{index:04d}",
                duration=age,
                task_id=task_id,
                thread_ids=(thread_id,) if borrowing else (),
            )
        )
    # 5. An orphaned task whose exception nobody retrieved, and a finished one still referenced.
    tasks.append(
        TaskInfo(
            id=1090,
            name="Task-1090",
            state="failed",
            coro="sync_stock_levels",
            age=95.0,
            exception="ValueError('stock level for SKU-4411 is negative: -3')",
            created_at=app(101, "update_stock", "asyncio.create_task(sync_stock_levels(sku))"),
        )
    )
    threads.append(ThreadInfo(id=139950, name="inspector-watchdog", pool="agent"))
    threads.append(ThreadInfo(id=139951, name="aiomonitor", pool="agent"))
    requests.sort(key=lambda r: r.started_at)

    recent = []
    pinned = {  # the requests the background jobs and exceptions below refer to
        3: ("POST", "/checkout", "/checkout", 500, 0.12),
        7: ("POST", "/orders/977/cancel", "/orders/{id}/cancel", 200, 0.03),
        8: ("POST", "/orders/960/ship", "/orders/{id}/ship", 200, 0.04),
        10: ("PUT", "/products/81", "/products/{id}", 200, 0.02),
        16: ("GET", "/products", "/products", 200, 0.01),
        20: ("POST", "/checkout", "/checkout", 500, 0.11),
    }
    for index in range(24):
        method, path, route, status, duration = rng.choice(
            [
                ("GET", "/orders", "/orders", 200, 0.02),
                ("GET", "/products/81", "/products/{id}", 200, 0.007),
                ("POST", "/checkout", "/checkout", 500, 0.12),
                ("GET", "/legacy/inventory", "/legacy/inventory", 200, 4.1),
                ("POST", "/orders", "/orders", 201, 0.05),
            ]
        )
        method, path, route, status, duration = pinned.get(
            index, (method, path, route, status, duration)
        )
        recent.append(
            RequestInfo(
                id=500 + index,
                method=method,
                path=path,
                route=route,
                started_at=TAKEN_AT - 120 + index * 4,
                phase="done",
                client="10.0.3.17:40000",
                duration=duration * rng.uniform(0.8, 1.5),
                status=status,
                bytes_sent=1024,
                error="KeyError('cart_id')" if status == 500 else None,
            )
        )

    export_samples = tuple(
        StackSample(offset=round(0.1 + i * 0.25, 2), frames=request_stack(EXPORT_FRAME))
        for i in range(9)
    )
    report_frames = request_stack(
        frame(f"{CWD}/reports.py", 88, "build_summary", "payload = json.dumps(rows, default=str)"),
        std("json/__init__.py", 238, "dumps", "**kw).encode(obj)"),
        std("json/encoder.py", 200, "encode", "chunks = self.iterencode(o, _one_shot=True)"),
    )
    login_frames = request_stack(
        frame(
            f"{CWD}/auth.py",
            17,
            "check_password",
            "return hashlib.pbkdf2_hmac('sha256', pw, salt, 600_000)",
        ),
    )
    stalls = (
        Stall(
            id=1,
            started_at=TAKEN_AT - 1510,
            duration=0.35,
            ongoing=False,
            samples=(StackSample(0.1, report_frames), StackSample(0.3, report_frames)),
            task_id=880,
            task_name="Task-880",
            request_id=40,
            request_label="GET /reports/summary",
        ),
        Stall(
            id=2,
            started_at=TAKEN_AT - 905,
            duration=1.8,
            ongoing=False,
            samples=tuple(
                StackSample(round(0.1 + i * 0.25, 2), request_stack(EXPORT_FRAME)) for i in range(7)
            ),
            task_id=960,
            task_name="Task-960",
            request_id=61,
            request_label="GET /export",
        ),
        Stall(
            id=3,
            started_at=TAKEN_AT - 300,
            duration=0.21,
            ongoing=False,
            samples=(StackSample(0.1, login_frames),),
            task_id=990,
            task_name="Task-990",
            request_id=70,
            request_label="POST /login",
        ),
        Stall(
            id=4,
            started_at=TAKEN_AT - 2.31,
            duration=2.31,
            ongoing=True,
            samples=export_samples,
            task_id=1042,
            task_name="Task-1042",
            request_id=7,
            request_label="GET /export",
        ),
    )
    lag_series = tuple(
        (
            TAKEN_AT - 60 + i,
            0.35 if i == 14 else 1.8 if i == 38 else 2.31 if i == 59 else 0.0008 + (i % 5) * 0.0003,
        )
        for i in range(60)
    )
    smtp_error = ExceptionInfo(
        type="smtplib.SMTPConnectError",
        message="(421, b'mail.example.com: too many connections')",
        traceback=(
            lib("starlette/background.py", 41, "__call__", "await task()"),
            lib(
                "starlette/background.py",
                28,
                "__call__",
                "await run_in_threadpool(self.func, *self.args, **self.kwargs)",
            ),
            frame(
                f"{CWD}/notify.py", 14, "send_confirmation", "with smtplib.SMTP(MAIL_HOST) as smtp:"
            ),
            std("smtplib.py", 255, "__init__", "raise SMTPConnectError(code, msg)"),
        ),
    )
    checkout_site = app(133, "checkout", "background_tasks.add_task(send_confirmation, order)")
    background = (
        BackgroundJob(
            id=31,
            function="send_confirmation",
            state="failed",
            queued_at=TAKEN_AT - 64,
            request_id=503,
            call_site=checkout_site,
            started_at=TAKEN_AT - 63.9,
            finished_at=TAKEN_AT - 63.1,
            error=smtp_error,
            dispatch="threadpool",
        ),
        BackgroundJob(
            id=32,
            function="write_audit_log",
            state="skipped",
            queued_at=TAKEN_AT - 64,
            request_id=503,
            call_site=app(134, "checkout", "background_tasks.add_task(write_audit_log, order)"),
            reason="an earlier task of the same response (send_confirmation) raised",
        ),
        BackgroundJob(
            id=33,
            function="notify_warehouse",
            state="dropped",
            queued_at=TAKEN_AT - 40,
            request_id=508,
            call_site=app(151, "ship", "background_tasks.add_task(notify_warehouse, order_id)"),
            reason="the endpoint returned a Response with its own background=…; "
            "the injected BackgroundTasks never ran",
        ),
        BackgroundJob(
            id=34,
            function="update_search_index",
            state="done",
            queued_at=TAKEN_AT - 30,
            request_id=510,
            call_site=app(
                170, "update_product", "background_tasks.add_task(update_search_index, pid)"
            ),
            started_at=TAKEN_AT - 29.9,
            finished_at=TAKEN_AT - 29.5,
            dispatch="loop",
        ),
        BackgroundJob(
            id=35,
            function="warm_cache",
            state="done",
            queued_at=TAKEN_AT - 12,
            request_id=516,
            call_site=app(175, "products", "background_tasks.add_task(warm_cache)"),
            started_at=TAKEN_AT - 11.9,
            finished_at=TAKEN_AT - 11.88,
            dispatch="loop",
        ),
    )
    exceptions = (
        ExceptionEvent(
            id=1,
            kind="background-failed",
            at=TAKEN_AT - 63.1,
            error=smtp_error,
            location=frame(
                f"{CWD}/notify.py", 14, "send_confirmation", "with smtplib.SMTP(MAIL_HOST) as smtp:"
            ),
            request_id=503,
            request_label="POST /checkout",
        ),
        ExceptionEvent(
            id=2,
            kind="task-exception-unretrieved",
            at=TAKEN_AT - 94.0,
            error=ExceptionInfo(
                type="ValueError",
                message="stock level for SKU-4411 is negative: -3",
                traceback=(
                    frame(f"{CWD}/stock.py", 12, "sync_stock_levels", "level = compute_level(sku)"),
                    frame(
                        f"{CWD}/stock.py",
                        30,
                        "compute_level",
                        'raise ValueError(f"stock level for {sku} is negative: {level}")',
                    ),
                ),
            ),
            location=frame(
                f"{CWD}/stock.py",
                30,
                "compute_level",
                'raise ValueError(f"stock level for {sku} is negative: {level}")',
            ),
            task_name="Task-1090",
            count=3,
        ),
        ExceptionEvent(
            id=3,
            kind="coroutine-never-awaited",
            at=TAKEN_AT - 50.0,
            error=ExceptionInfo(
                type="RuntimeWarning", message="coroutine 'notify_user' was never awaited"
            ),
            location=app(120, "cancel_order", "notify_user(order.user_id, 'cancelled')"),
            request_id=507,
            request_label="POST /orders/{id}/cancel",
        ),
        ExceptionEvent(
            id=4,
            kind="logged-error",
            at=TAKEN_AT - 20.0,
            error=ExceptionInfo(
                type="KeyError",
                message="'cart_id'",
                traceback=(app(128, "checkout", 'cart = carts[session["cart_id"]]'),),
            ),
            location=app(128, "checkout", 'cart = carts[session["cart_id"]]'),
            request_id=520,
            request_label="POST /checkout",
            count=2,
        ),
    )
    return Snapshot(
        process=PROCESS,
        taken_at=TAKEN_AT,
        loop=LoopStats(
            implementation="uvloop",
            lag=2.31,
            lag_series=lag_series,
            stall_threshold=0.1,
            stalled_for=2.31,
            total_stalls=4,
            total_stalled_seconds=4.67,
        ),
        tasks=tuple(tasks),
        current_task_id=1042,
        loop_thread_stack=request_stack(EXPORT_FRAME),
        stalls=stalls,
        requests=tuple(requests),
        recent_requests=tuple(recent),
        routes=(
            RouteStats(
                route="/legacy/inventory",
                method="GET",
                count=412,
                errors=3,
                p50=3.9,
                p95=11.2,
                max=29.8,
            ),
            RouteStats(route="/export", method="GET", count=9, errors=0, p50=1.9, p95=2.9, max=3.1),
            RouteStats(
                route="/checkout", method="POST", count=88, errors=14, p50=0.09, p95=0.31, max=1.2
            ),
            RouteStats(
                route="/orders", method="GET", count=1980, errors=0, p50=0.021, p95=0.19, max=2.4
            ),
            RouteStats(
                route="/products/{id}",
                method="GET",
                count=5120,
                errors=31,
                p50=0.007,
                p95=0.02,
                max=1.9,
            ),
        ),
        background=background,
        threadpool=ThreadpoolState(
            total=40,
            borrowed=40,
            waiting=10,
            borrowers=tuple(borrowers),
            executor_max_workers=6,
            executor_threads=0,
        ),
        threads=tuple(threads),
        exceptions=exceptions,
        health=AgentHealth(
            probes=("tasks", "watchdog", "requests", "background", "threadpool", "exceptions"),
            collect_seconds=0.004,
        ),
    )


def many_tasks(count: int = 10_000, seed: int = 3) -> Snapshot:
    """A busy server: `count` tasks, mostly connections and fan-out workers."""
    rng = random.Random(seed)
    tasks = uvicorn_tasks(1)
    kinds = [
        (
            "fetch_price",
            "pricing.py",
            44,
            "price = await client.get_price(sku)",
            WaitInfo(kind="stream", description="socket read (pricing API)"),
        ),
        (
            "consume_events",
            "events.py",
            18,
            "event = await queue.get()",
            WaitInfo(kind="queue-get", description="Queue.get() (empty)", object_id=77),
        ),
        (
            "heartbeat",
            "ws.py",
            51,
            "await asyncio.sleep(15)",
            WaitInfo(kind="sleep", description="asyncio.sleep(15)", remaining=7.0),
        ),
        (
            "RequestResponseCycle.run_asgi",
            "app.py",
            72,
            "rows = await db.fetch_all(query)",
            WaitInfo(kind="stream", description="socket read (postgres)"),
        ),
        (
            "fan_out",
            "pricing.py",
            60,
            "await asyncio.gather(*jobs)",
            WaitInfo(kind="gather", description="gather of 50 tasks"),
        ),
    ]
    for index in range(count - len(tasks)):
        coro, file, line, code, wait = kinds[index % len(kinds)]
        tasks.append(
            TaskInfo(
                id=10_000 + index,
                name=f"Task-{10_000 + index}",
                state="pending",
                coro=coro,
                stack=(frame(f"{CWD}/{file}", line, coro.split(".")[-1], code),),
                waiting_on=wait,
                age=round(rng.uniform(0, 600), 1),
            )
        )
    return Snapshot(
        process=PROCESS,
        taken_at=TAKEN_AT,
        loop=LoopStats(
            implementation="uvloop",
            lag=0.004,
            lag_series=tuple((TAKEN_AT - 60 + i, 0.004) for i in range(60)),
        ),
        tasks=tuple(tasks),
        health=AgentHealth(probes=("tasks", "watchdog")),
    )


FIXTURES = {"healthy": healthy, "blocked": blocked, "many_tasks": many_tasks}


def main() -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    for name, build in FIXTURES.items():
        text = protocol.encode_snapshot_file(build())
        if name == "many_tasks":  # 6.5 MB of JSON; gzip keeps the repository small
            path = DATA / f"{name}.json.gz"
            path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
        else:
            path = DATA / f"{name}.json"
            path.write_text(text, encoding="utf-8")
        print(f"{path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def blocked_findings() -> list:
    """Findings for the blocked snapshot, fixed here so the screenshots do not follow every
    change of wording in the rules (the real rules run in the end-to-end test)."""
    from inspector.diagnose.findings import Finding

    return [
        Finding(
            kind="loop-blocked",
            severity="critical",
            title="Event loop blocked 2.3 s (still blocked) by time.sleep in GET /export",
            detail="The loop thread has been at app.py:57 in export for 2.3 s; every other request "
            "and task on this worker waits. It happened before: 1.8 s, 15 minutes ago.",
            hint="Use `await asyncio.sleep(...)` in async code, or make the endpoint a plain "
            "`def` so "
            "it runs in the threadpool.",
            location=EXPORT_FRAME,
            task_ids=(1042,),
            request="GET /export",
            count=2,
        ),
        Finding(
            kind="deadlock",
            severity="critical",
            title="Deadlock: Task-1057 and Task-1058 each wait for a lock the other holds",
            detail="Task-1057 (POST /orders/981/charge) holds inventory_lock and waits for "
            "payment_lock; "
            "Task-1058 (POST /orders/977/refund) holds payment_lock and waits for inventory_lock.",
            hint="Take the two locks in the same order everywhere.",
            location=frame(
                f"{CWD}/orders.py", 41, "reserve_and_charge", "async with payment_lock:"
            ),
            related=(
                frame(f"{CWD}/orders.py", 63, "refund_and_release", "async with inventory_lock:"),
            ),
            task_ids=(1057, 1058),
            request="POST /orders/{id}/charge",
        ),
        Finding(
            kind="threadpool-saturated",
            severity="warning",
            title="Threadpool full: 40/40 tokens borrowed, 10 requests waiting",
            detail="40 requests to GET /legacy/inventory hold every thread, most of them in "
            "requests.get "
            "without a timeout at legacy.py:23.",
            hint="Give the HTTP call a timeout, or make the endpoint async with an async client.",
            location=frame(
                f"{CWD}/legacy.py",
                23,
                "inventory_sync",
                "resp = requests.get(ERP_URL, timeout=None)",
            ),
            task_ids=(2000, 2001),
            request="GET /legacy/inventory",
            count=40,
        ),
        Finding(
            kind="stuck-task",
            severity="warning",
            title="Task-1061 has waited 5m12s for Event report_ready, which nothing sets",
            detail="GET /reports/weekly waits at reports.py:22 on an Event that is not set.",
            hint="Check what should call report_ready.set(), or add a timeout.",
            location=frame(f"{CWD}/reports.py", 22, "weekly_report", "await report_ready.wait()"),
            task_ids=(1061,),
            request="GET /reports/weekly",
        ),
        Finding(
            kind="background-failed",
            severity="warning",
            title="Background job send_confirmation failed after POST /checkout: SMTPConnectError",
            detail="It raised at notify.py:14; write_audit_log, queued after it, was skipped.",
            hint="Catch and log errors inside background jobs, or move them to a task queue.",
            location=frame(
                f"{CWD}/notify.py", 14, "send_confirmation", "with smtplib.SMTP(MAIL_HOST) as smtp:"
            ),
            request="POST /checkout",
        ),
        Finding(
            kind="coroutine-never-awaited",
            severity="warning",
            title="Coroutine notify_user was never awaited in POST /orders/{id}/cancel",
            detail="app.py:120 calls an async function without await: it never ran.",
            hint="Add `await`, or schedule it with asyncio.create_task and keep a reference.",
            location=app(120, "cancel_order", "notify_user(order.user_id, 'cancelled')"),
        ),
    ]
