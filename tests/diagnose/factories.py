"""The diagnosis suite's stories: stack prefixes a real server shows, a healthy server, and
`findings` to run the rules on a snapshot. The plain builders are in `tests.factories`.
"""

from __future__ import annotations

from typing import Any

from inspector.model import Frame, Snapshot
from tests.factories import app, lib, request, snapshot, std, task, thread, threadpool, wait

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
