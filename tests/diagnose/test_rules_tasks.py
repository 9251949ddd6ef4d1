"""`deadlock` and `stuck-task`, and the ordinary waits that must not be findings."""

from __future__ import annotations

import dataclasses

import pytest

from tests.diagnose.factories import findings, healthy_snapshot, task_stack
from tests.factories import app, error, exception_event, lib, request, snapshot, std, task, wait

LOCKS = std("asyncio/locks.py", 112, "acquire", "await fut")
EVENT = std("asyncio/locks.py", 213, "wait", "await fut")
QUEUE_PUT = std("asyncio/queues.py", 130, "put", "await putter")
QUEUE_GET = std("asyncio/queues.py", 158, "get", "await getter")


def waiter_on_lock(task_id: int, line: int, holder: int, object_id: int, **fields) -> object:
    return task(
        task_id,
        stack=task_stack(app(line, f"ep{task_id}", f"async with lock_{object_id}:"), LOCKS),
        waiting_on=wait("lock", "Lock.acquire()", object_id=object_id, holder_task_ids=(holder,)),
        **fields,
    )


# --- deadlock --------------------------------------------------------------------------------


def test_two_requests_deadlocked_on_two_locks() -> None:
    t1 = waiter_on_lock(1, 20, holder=2, object_id=0xB, request_id=10)
    t2 = waiter_on_lock(2, 31, holder=1, object_id=0xA, request_id=11)
    snap = snapshot(
        tasks=(t1, t2),
        requests=(
            request(10, "GET", "/transfer/a", task_id=1, age=9),
            request(11, "GET", "/transfer/b", task_id=2, age=9),
        ),
    )
    [finding] = findings(snap, "deadlock")
    assert finding.severity == "critical"
    assert finding.location == app(20, "ep1", "async with lock_11:")
    assert finding.related == (app(31, "ep2", "async with lock_10:"),)
    assert finding.task_ids == (1, 2)
    assert "GET /transfer/a" in finding.title and "GET /transfer/b" in finding.title
    assert finding.request == "GET /transfer/a"
    assert "for `lock_11` held by GET /transfer/b (Task-2)" in finding.detail
    assert "same order" in finding.hint


def test_deadlock_needs_no_threshold() -> None:
    t1 = waiter_on_lock(1, 20, holder=2, object_id=0xB, age=0.1)
    t2 = waiter_on_lock(2, 31, holder=1, object_id=0xA, age=0.1)
    assert len(findings(snapshot(tasks=(t1, t2)), "deadlock")) == 1


def test_a_task_reacquiring_its_own_lock() -> None:
    [finding] = findings(
        snapshot(tasks=(waiter_on_lock(1, 20, holder=1, object_id=0xA),)), "deadlock"
    )
    assert "it holds itself" in finding.title
    assert "not reentrant" in finding.hint


def test_identical_deadlocks_are_grouped() -> None:
    tasks = []
    for base in (1, 3, 5):
        tasks += [
            waiter_on_lock(base, 20, holder=base + 1, object_id=base),
            waiter_on_lock(base + 1, 31, holder=base, object_id=base + 1),
        ]
    [finding] = findings(snapshot(tasks=tuple(tasks)), "deadlock")
    assert finding.count == 3
    assert finding.title.startswith("3 deadlocks")
    assert len(finding.task_ids) == 6


def test_deadlocked_tasks_are_not_also_stuck_tasks() -> None:
    t1 = waiter_on_lock(1, 20, holder=2, object_id=0xB)
    t2 = waiter_on_lock(2, 31, holder=1, object_id=0xA)
    assert findings(snapshot(tasks=(t1, t2)), "stuck-task") == []


# --- stuck tasks -----------------------------------------------------------------------------


def event_waiter(
    task_id: int, code: str = "await ready.wait()", function: str = "warm_cache", **fields
) -> object:
    fields.setdefault("age", 30.0)
    return task(
        task_id,
        name=function,
        stack=(app(44, function, code), EVENT),
        waiting_on=wait("event", "Event.wait() (unset)", object_id=0xE, is_set=False),
        **fields,
    )


def test_a_task_waiting_on_an_event_nobody_sets() -> None:
    [finding] = findings(snapshot(tasks=(event_waiter(1),)), "stuck-task")
    assert finding.location == app(44, "warm_cache", "await ready.wait()")
    assert "Event nobody sets" in finding.title
    assert finding.severity == "warning"
    assert "event.set()" in finding.hint
    assert finding.task_ids == (1,)


@pytest.mark.parametrize(
    ("case", "waiter"),
    [
        ("young task", event_waiter(1, age=2.0)),
        (
            "event already set",
            task(
                1,
                stack=(app(44, "f", "await ev.wait()"), EVENT),
                age=30,
                waiting_on=wait("event", object_id=0xE, is_set=True),
            ),
        ),
        ("shutdown signal", event_waiter(1, code="await shutdown_event.wait()", function="run")),
        ("stop event", event_waiter(1, code="await self._stop.wait()", function="serve")),
        (
            "shutting down",
            event_waiter(1, code="await self.shutting_down.wait()", function="housekeeping"),
        ),
        ("draining", event_waiter(1, code="await self.draining.wait()", function="flush")),
        ("a wake-up call", event_waiter(1, code="await self._wakeup.wait()", function="run")),
        ("new items", event_waiter(1, code="await self.new_items.wait()", function="drain")),
        (
            "uvicorn waiting for a stream's disconnect",
            task(
                1,
                age=300,
                stack=(
                    lib("starlette/responses.py", 240, "listen_for_disconnect"),
                    lib("uvicorn/protocols/http/h11_impl.py", 530, "receive"),
                    EVENT,
                ),
                waiting_on=wait("event", "Event.wait() (unset)", object_id=0xE, is_set=False),
            ),
        ),
        (
            "no stack to judge by",
            task(1, age=30, waiting_on=wait("event", object_id=0xE, is_set=False)),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_event_waits_that_are_not_findings(case: str, waiter: object) -> None:
    assert findings(snapshot(tasks=(waiter,)), "stuck-task") == []


def test_an_event_wait_inside_a_request_is_a_hanging_request_not_a_stuck_task() -> None:
    waiter = event_waiter(1, request_id=5)
    snap = snapshot(tasks=(waiter,), requests=(request(5, "GET", "/wait", task_id=1, age=30),))
    assert findings(snap, "stuck-task") == []
    assert len(findings(snap, "hanging-request")) == 1


def test_idle_consumers_and_periodic_sleepers_are_not_findings() -> None:
    assert findings(healthy_snapshot()) == []


def test_a_lock_held_by_a_task_that_ended() -> None:
    holder = task(9, name="importer", state="failed", exception="ValueError('bad row')")
    waiter = waiter_on_lock(1, 60, holder=9, object_id=0xA)
    [finding] = findings(snapshot(tasks=(holder, waiter)), "stuck-task")
    assert finding.location == app(60, "ep1", "async with lock_10:")
    assert "never released" in finding.title
    assert "importer" in finding.detail and "ValueError('bad row')" in finding.detail
    assert "async with lock" in finding.hint


def test_a_semaphore_whose_holders_are_gone() -> None:
    waiter = task(
        1,
        stack=(app(70, "call_partner", "async with partner_slots:"), LOCKS),
        waiting_on=wait(
            "semaphore", "Semaphore.acquire() (value 0)", object_id=0x5, holder_task_ids=(91, 92)
        ),
    )
    [finding] = findings(snapshot(tasks=(waiter,)), "stuck-task")
    assert finding.location == app(70, "call_partner", "async with partner_slots:")
    assert "no longer running" in finding.detail


def test_a_lock_held_by_a_live_busy_task_is_not_stuck() -> None:
    holder = task(
        9,
        waiting_on=wait("future", "httpx response"),
        stack=(app(80, "sync_all", "await client.get(u)"),),
    )
    waiter = waiter_on_lock(1, 60, holder=9, object_id=0xA)
    assert findings(snapshot(tasks=(holder, waiter)), "stuck-task") == []


def test_a_lock_held_by_a_stuck_task_is_stuck_too() -> None:
    holder = event_waiter(9)
    waiter = waiter_on_lock(1, 60, holder=9, object_id=0xA)
    result = findings(snapshot(tasks=(holder, waiter)), "stuck-task")
    by_task = {f.task_ids: f for f in result}
    assert "held by a stuck task" in by_task[(1,)].title
    assert "Event nobody sets" in by_task[(9,)].title


def test_a_lock_held_by_a_deadlocked_task_is_stuck_too() -> None:
    t1 = waiter_on_lock(1, 20, holder=2, object_id=0xB)
    t2 = waiter_on_lock(2, 31, holder=1, object_id=0xA)
    t3 = waiter_on_lock(3, 90, holder=1, object_id=0xC)
    [finding] = findings(snapshot(tasks=(t1, t2, t3)), "stuck-task")
    assert finding.task_ids == (3,)
    assert "deadlocked itself" in finding.detail


def producer(task_id: int, queue: int = 0x9) -> object:
    return task(
        task_id,
        name=f"producer-{task_id}",
        stack=(app(101, "produce", "await jobs.put(item)"), QUEUE_PUT),
        waiting_on=wait("queue-put", "Queue.put() (full, 100/100)", object_id=queue),
    )


def test_producers_on_a_full_queue_whose_consumer_died() -> None:
    died = exception_event(
        1, "task-exception-unretrieved", error("KeyError", "'id'"), task_name="consumer"
    )
    snap = snapshot(tasks=(producer(1), producer(2)), exceptions=(died,))
    [finding] = findings(snap, "stuck-task")
    assert finding.count == 2
    assert finding.location == app(101, "produce", "await jobs.put(item)")
    assert "full queue nobody consumes" in finding.title
    assert "task consumer (KeyError: 'id')" in finding.detail


def test_producers_on_a_full_queue_with_a_live_consumer_are_fine() -> None:
    consumer = task(
        5,
        stack=(app(120, "consume", "item = await jobs.get()"), QUEUE_GET),
        waiting_on=wait("queue-get", object_id=0x9),
    )
    other_queue_consumer = task(6, waiting_on=wait("queue-get", object_id=0x77))
    assert findings(snapshot(tasks=(producer(1), consumer)), "stuck-task") == []
    assert len(findings(snapshot(tasks=(producer(1), other_queue_consumer)), "stuck-task")) == 1


def test_a_semaphore_leaked_by_finished_tasks_as_the_agent_describes_it() -> None:
    description = (
        "Semaphore value 0; 3 waiting; 2 permit(s) taken by finished tasks and never released "
        "(leaked)"
    )
    waiters = tuple(
        task(
            i,
            stack=(app(70, "call_partner", "async with partner_slots:"), LOCKS),
            waiting_on=wait("semaphore", description, object_id=0x5),
        )
        for i in range(1, 4)
    )
    [finding] = findings(snapshot(tasks=waiters), "stuck-task")
    assert finding.count == 3
    assert "never released" in finding.title


def test_a_busy_semaphore_is_not_stuck() -> None:
    waiter = task(
        1,
        stack=(app(70, "call_partner", "async with partner_slots:"), LOCKS),
        waiting_on=wait(
            "semaphore",
            "Semaphore value 0; 1 waiting; held by Task-3 (fetch)",
            object_id=0x5,
            holder_task_ids=(3,),
        ),
    )
    holder = task(3, waiting_on=wait("future", "httpx"))
    assert findings(snapshot(tasks=(waiter, holder)), "stuck-task") == []


def test_an_anyio_event_nobody_sets_is_the_apps_own_wait() -> None:
    line = app(44, "warm_cache", "await self.loaded.wait()")
    anyio_wait = lib("anyio/_backends/_asyncio.py", 1690, "Event.wait", "await self._event.wait()")
    waiter = task(
        1,
        name="warm_cache",
        stack=(line, anyio_wait, EVENT),
        waiting_on=wait("event", "Event.wait() (unset)", object_id=0xE, is_set=False),
        age=30.0,
    )
    [finding] = findings(snapshot(tasks=(waiter,)), "stuck-task")
    assert finding.location == line
    stream = lib("anyio/streams/memory.py", 120, "MemoryObjectReceiveStream.receive")
    inside = dataclasses.replace(waiter, stack=(line, stream, anyio_wait, EVENT))
    assert findings(snapshot(tasks=(inside,)), "stuck-task") == []


def test_a_deadlock_names_where_each_task_took_the_lock_it_holds() -> None:
    took_a = app(30, "transfer", "async with self._locks[source]:")
    took_b = app(30, "transfer", "async with self._locks[source]:", file="/srv/shop/other.py")
    a_waits = app(42, "_credit", "async with self._locks[account]:")
    lock_a = wait("lock", "Lock held by Task-2", object_id=0xA, holder_task_ids=(2,))
    lock_b = wait("lock", "Lock held by Task-1", object_id=0xB, holder_task_ids=(1,))
    one = dataclasses.replace(
        task(1, stack=task_stack(a_waits), waiting_on=lock_a), holding_at=(took_a,)
    )
    two = dataclasses.replace(
        task(2, stack=task_stack(a_waits), waiting_on=lock_b), holding_at=(took_b,)
    )
    [finding] = findings(snapshot(tasks=(one, two)), "deadlock")
    assert finding.location == a_waits
    assert set(finding.related) == {took_a, took_b}
    assert "having taken its own at" in finding.detail
