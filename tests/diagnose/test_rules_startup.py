"""A lifespan startup that has not finished: the server serves nothing, whatever it waits on."""

from __future__ import annotations

import dataclasses

import pytest

from inspector.diagnose import confirmation_delay
from inspector.model import Frame, Snapshot, TaskInfo
from tests.diagnose.factories import findings
from tests.factories import app, lib, snapshot, std, task, wait

EVENT = std("asyncio/locks.py", 213, "Event.wait", "await fut")
READ = std("asyncio/streams.py", 726, "StreamReader.readexactly", "await self._wait_for_data(...)")
CONNECT = app(31, "connect_to_database", "await reader.readexactly(4)")


def server_task(*, starting: bool = True, py310: bool = False) -> TaskInfo:
    """uvicorn's server task: waiting for the lifespan's startup, or serving."""
    name = "startup" if py310 else "LifespanOn.startup"
    waiting = (
        (
            lib("uvicorn/server.py", 116, "Server.startup", "await self.lifespan.startup()"),
            lib("uvicorn/lifespan/on.py", 56, name, "await self.startup_event.wait()"),
            EVENT,
        )
        if starting
        else (lib("uvicorn/server.py", 248, "Server.main_loop", "await asyncio.sleep(0.1)"),)
    )
    return task(
        1,
        coro="Server.serve",
        stack=(
            lib("uvicorn/server.py", 90, "Server.serve", "await self._serve(sockets)"),
            *waiting,
        ),
        waiting_on=wait("event", "Event not set; 1 waiting (in LifespanOn.startup)"),
        age=30,
    )


def lifespan_task(
    *inner: Frame, age: float = 30, py310: bool = False, **fields: object
) -> TaskInfo:
    main = "main" if py310 else "LifespanOn.main"
    stack = (
        lib("uvicorn/lifespan/on.py", 86, main, "await app(scope, self.receive, self.send)"),
        lib(
            "starlette/routing.py", 661, "Router.lifespan", "async with self.lifespan_context(app)"
        ),
        app(37, "lifespan", "app.state.database = await connect_to_database(...)"),
        *inner,
    )
    defaults: dict[str, object] = {
        "coro": "LifespanOn.main",
        "stack": stack,
        "waiting_on": wait("stream", "StreamReader.readexactly() waiting for data"),
        "age": age,
    }
    return task(2, **{**defaults, **fields})  # type: ignore[arg-type]


def starting(*tasks: TaskInfo) -> Snapshot:
    return snapshot(tasks=(server_task(), *tasks))


def test_a_startup_stuck_past_the_threshold_is_critical_and_names_the_line() -> None:
    [finding] = findings(starting(lifespan_task(CONNECT, READ)), "stuck-task")
    assert finding.severity == "critical"
    assert finding.location == CONNECT
    assert finding.task_ids == (2,)
    assert "startup has not finished after 30 s" in finding.title
    assert "in connect_to_database" in finding.title
    assert "no request is served" in finding.title
    assert "StreamReader.readexactly() waiting for data" in finding.detail
    assert "has not even bound its HTTP port" in finding.detail
    assert "asyncio.timeout" in finding.hint


def test_a_young_startup_is_no_finding_yet_but_doctor_waits_to_confirm_it() -> None:
    snap = starting(lifespan_task(CONNECT, READ, age=2))
    assert findings(snap, "stuck-task") == []
    assert confirmation_delay(snap, stuck_after=5) == pytest.approx(3.2)


def test_a_finished_startup_is_no_finding_however_long_ago_it_began() -> None:
    receive = (
        lib("uvicorn/lifespan/on.py", 137, "LifespanOn.receive", "await self.receive_queue.get()"),
        std("asyncio/queues.py", 158, "Queue.get", "await getter"),
    )
    serving = snapshot(
        tasks=(
            server_task(starting=False),
            lifespan_task(*receive, waiting_on=wait("queue-get", "Queue.get(): 0 items")),
        )
    )
    assert findings(serving) == []


def test_an_event_awaited_in_startup_is_said_once_as_the_startup() -> None:
    ready = app(15, "wait_for_broker", "await broker_ready.wait()")
    stuck = lifespan_task(ready, EVENT, waiting_on=wait("event", "Event not set", is_set=False))
    [finding] = findings(starting(stuck), "stuck-task")
    assert "startup has not finished" in finding.title
    assert finding.location == ready


def test_a_startup_under_a_timeout_is_a_warning_that_says_when_it_ends() -> None:
    timed = dataclasses.replace(lifespan_task(CONNECT, READ), deadline_in=12.0)
    [finding] = findings(starting(timed), "stuck-task")
    assert finding.severity == "warning"
    assert "A timeout ends this wait in 12 s" in finding.detail


def test_a_startup_gathering_tasks_names_the_lines_they_wait_at() -> None:
    gather = app(40, "lifespan", "await asyncio.gather(connect_db(), connect_cache())")
    cache = app(52, "connect_cache", "await redis.ping()")
    child = task(3, stack=(cache, READ), waiting_on=wait("stream", "read"), age=30)
    parent = lifespan_task(
        gather, waiting_on=wait("gather", "gather of 2 (1 done)", awaited_task_ids=(3,))
    )
    [finding] = findings(starting(parent, child), "stuck-task")
    assert finding.location == gather
    assert finding.related == (cache,)
    assert "connect_cache" in finding.detail


def test_python_310_frame_names_are_recognised() -> None:
    snap = snapshot(tasks=(server_task(py310=True), lifespan_task(CONNECT, READ, py310=True)))
    [finding] = findings(snap, "stuck-task")
    assert "startup has not finished" in finding.title


def test_a_lifespan_startup_blocking_the_loop_says_it_is_running() -> None:
    running = lifespan_task(
        app(22, "warm_cache", "data = requests.get(URL).json()"), state="running", waiting_on=None
    )
    [finding] = findings(starting(running), "stuck-task")
    assert "the lifespan runs in warm_cache" in finding.title
    assert "holding the event loop" in finding.detail
