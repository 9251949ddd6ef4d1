"""`task-leak`: tasks of finished requests piling up at one line, and what is not a leak."""

from __future__ import annotations

import dataclasses

from inspector.diagnose.rules.base import Settings
from inspector.diagnose.rules.leaks import MIN_PILE, task_leaks
from tests.factories import app, request, snapshot, std, task, wait

WATCHING = (
    app(199, "watch_price", "await asyncio.sleep(5)"),
    std("asyncio/tasks.py", 649, "sleep"),
)


def watchers(count: int, *, oldest: float = 60.0, request_base: int = 100) -> tuple:
    """`count` watcher tasks created a second apart, each by its own request."""
    return tuple(
        task(
            1000 + n,
            coro="demo_app.watch_price",
            stack=WATCHING,
            waiting_on=wait("sleep", "asyncio.sleep(5)"),
            age=oldest - n,
            request_id=request_base + n,
        )
        for n in range(count)
    )


def test_a_pile_of_tasks_left_by_finished_requests_is_a_leak_with_its_pace() -> None:
    [finding] = task_leaks(snapshot(tasks=watchers(30)), Settings())
    assert finding.kind == "task-leak" and finding.count == 30
    assert finding.location == WATCHING[0]
    assert finding.title == "30 tasks running watch_price() pile up, about 1 more a second"
    assert "started by 30 requests that have all finished" in finding.detail


def test_fewer_than_a_pile_is_a_pool() -> None:
    assert list(task_leaks(snapshot(tasks=watchers(MIN_PILE - 1)), Settings())) == []


def test_tasks_of_requests_still_in_flight_may_end_with_them() -> None:
    tasks = watchers(30)
    live = tuple(request(100 + n, path="/ws") for n in range(30))
    assert list(task_leaks(snapshot(tasks=tasks, requests=live), Settings())) == []


def test_young_tasks_and_tasks_no_request_started_are_not_a_leak() -> None:
    young = watchers(30, oldest=3.0)
    assert list(task_leaks(snapshot(tasks=young), Settings())) == []
    startup = tuple(dataclasses.replace(t, request_id=None) for t in watchers(30))
    assert list(task_leaks(snapshot(tasks=startup), Settings())) == []


def test_finished_tasks_are_not_counted() -> None:
    done = tuple(dataclasses.replace(t, state="done") for t in watchers(30))
    assert list(task_leaks(snapshot(tasks=done), Settings())) == []


def test_the_line_that_created_the_pile_is_the_location_and_groups_it() -> None:
    created = app(208, "watch", "watcher = asyncio.create_task(watch_price(shop, item_id, user))")
    elsewhere = (app(203, "watch_price", "await queue.get()"), std("asyncio/queues.py", 158, "get"))
    tasks = tuple(
        dataclasses.replace(t, created_at=created, stack=WATCHING if n % 2 else elsewhere)
        for n, t in enumerate(watchers(30))
    )
    [finding] = task_leaks(snapshot(tasks=tasks), Settings())
    assert finding.count == 30
    assert finding.location == created
    assert finding.related[0] in (WATCHING[0], elsewhere[0])
    assert "Each was created at" in finding.detail


def test_a_burst_gets_no_pace() -> None:
    burst = tuple(dataclasses.replace(t, age=30.0 - n / 100) for n, t in enumerate(watchers(30)))
    [finding] = task_leaks(snapshot(tasks=burst), Settings())
    assert finding.title == "30 tasks running watch_price() pile up"
