"""`lock-contention` names the holder's line inside the locked section, the slow call beside it."""

from __future__ import annotations

import dataclasses

from inspector.diagnose.rules.base import Settings
from inspector.diagnose.rules.contention import lock_contention, locked_section_frame
from tests.factories import app, lib, request, snapshot, std, task, wait

LOCK = 7


def queue_for_the_lock(holder_stack: tuple, waiters: int = 4) -> list:
    held = wait("lock", "Lock held by Task-1; 4 waiting", object_id=LOCK, holder_task_ids=(1,))
    holder = task(1, stack=holder_stack, waiting_on=wait("sleep", "asyncio.sleep(3)"))
    queued = [
        task(10 + n, stack=(app(19, "convert", "async with lock:"),), waiting_on=held)
        for n in range(waiters)
    ]
    return [holder, *queued]


def test_the_await_inside_the_locked_section_is_named_not_the_helper_it_calls() -> None:
    holder_stack = (app(20, "convert", "rates = await fetch_rates()"), app(14, "fetch_rates"))
    tasks = queue_for_the_lock(holder_stack)
    assert locked_section_frame(tasks[0], tasks[1:]) == holder_stack[0]
    [finding] = lock_contention(snapshot(tasks=tuple(tasks)), Settings())
    assert finding.location == holder_stack[0]
    assert holder_stack[1] in finding.related  # the slow call, beside it
    assert len(finding.related) == len(set(finding.related)) == 2  # the queue's line, once


def test_a_slow_call_written_inside_the_section_is_named_itself() -> None:
    holder_stack = (app(20, "convert", "await asyncio.sleep(3)"),)
    holder, *waiters = queue_for_the_lock(holder_stack)
    holder = dataclasses.replace(holder, request_id=5)
    shot = snapshot(tasks=(holder, *waiters), requests=(request(5, path="/convert"),))
    [finding] = lock_contention(shot, Settings())
    assert finding.location == holder_stack[0]
    assert "serving GET /convert" in finding.detail
    assert "((" not in finding.detail and ") (" not in finding.detail


def test_two_waiters_are_a_lock_doing_its_job() -> None:
    tasks = queue_for_the_lock((app(20, "convert"),), waiters=2)
    assert list(lock_contention(snapshot(tasks=tuple(tasks)), Settings())) == []


def test_a_queue_that_drains_at_once_is_a_lock_doing_its_job() -> None:
    """Many requests taking the lock for a moment each: every waiter arrived just now."""
    holder, *waiters = queue_for_the_lock((app(20, "convert"),), waiters=12)
    requests = []
    for number, waiter in enumerate(waiters):
        requests.append(request(number, path="/convert", age=0.2, task_id=waiter.id))
    shot = snapshot(tasks=(holder, *waiters), requests=tuple(requests))
    assert list(lock_contention(shot, Settings())) == []
    aged = (*requests[:-1], dataclasses.replace(requests[-1], duration=1.5))
    [finding] = lock_contention(snapshot(tasks=(holder, *waiters), requests=aged), Settings())
    assert finding.count == 12


def test_waiters_outside_requests_are_aged_by_their_task() -> None:
    holder, *waiters = queue_for_the_lock((app(20, "convert"),))
    young = [dataclasses.replace(waiter, age=0.3) for waiter in waiters]
    assert list(lock_contention(snapshot(tasks=(holder, *young)), Settings())) == []


def test_a_holder_inside_a_librarys_call_is_making_progress() -> None:
    """An HTTP client waits on an Event of its own deep inside the call: a slow call."""
    holder_stack = (
        app(20, "convert", "rates = await client.get(RATES_URL)"),
        lib("httpcore/_async/connection_pool.py", 216, "AsyncConnectionPool.handle_async_request"),
        lib("anyio/_backends/_asyncio.py", 1690, "Event.wait"),
        std("asyncio/locks.py", 213, "Event.wait"),
    )
    holder, *waiters = queue_for_the_lock(holder_stack)
    holder = dataclasses.replace(holder, waiting_on=wait("event", "Event not set"))
    [finding] = lock_contention(snapshot(tasks=(holder, *waiters)), Settings())
    assert finding.location == holder_stack[0]
    parked = dataclasses.replace(holder, stack=(app(20, "convert", "await ready.wait()"),))
    assert list(lock_contention(snapshot(tasks=(parked, *waiters)), Settings())) == []


def test_where_the_holder_took_the_lock_is_named_beside_its_slow_await() -> None:
    took = app(18, "convert", "async with self._token_lock:")
    holder, *waiters = queue_for_the_lock((app(20, "convert", "await asyncio.sleep(3)"),))
    holder = dataclasses.replace(holder, holding_at=(took,))
    [finding] = lock_contention(snapshot(tasks=(holder, *waiters)), Settings())
    assert took in finding.related
