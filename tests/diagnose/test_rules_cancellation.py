"""`cancellation-swallowed`: only a task still going well after its cancellation."""

from __future__ import annotations

import dataclasses

from inspector.diagnose.rules.base import Settings
from inspector.diagnose.rules.cancellation import swallowed_cancellations
from tests.factories import app, request, snapshot, std, task, wait

STACK = (
    app(21, "sync_supplier_catalog", "await asyncio.sleep(2)"),
    std("asyncio/tasks.py", 1, "sleep"),
)


def cancelled(seconds: float | None, **fields: object) -> object:
    return dataclasses.replace(
        task(7, coro="shop.sync_supplier_catalog", stack=STACK, waiting_on=wait("sleep")),
        cancelled_for=seconds,
        **fields,
    )


def test_a_task_running_long_after_its_cancellation_is_named_where_it_is() -> None:
    shot = snapshot(tasks=(cancelled(12.0, request_id=3),), requests=(request(3, "POST", "/sync"),))
    [finding] = swallowed_cancellations(shot, Settings())
    assert finding.kind == "cancellation-swallowed" and finding.location == STACK[0]
    assert (
        finding.title == "Task Task-7 (sync_supplier_catalog()) kept running after it was cancelled"
    )
    assert "cancelled 12 s ago" in finding.detail and "started by POST /sync" in finding.detail
    assert "`Exception`" in finding.hint


def test_a_cancellation_in_progress_and_no_cancellation_are_not_findings() -> None:
    for seconds in (None, 0.5):
        assert (
            list(swallowed_cancellations(snapshot(tasks=(cancelled(seconds),)), Settings())) == []
        )


def test_a_task_that_is_done_is_not_a_finding() -> None:
    shot = snapshot(tasks=(cancelled(30.0, state="done"),))
    assert list(swallowed_cancellations(shot, Settings())) == []


def test_workers_restarted_over_and_over_are_one_finding() -> None:
    """Each restart of a stubborn worker leaves one more running: one bug, said once."""
    tasks = (
        cancelled(40.0),
        dataclasses.replace(cancelled(20.0), id=8, name="Task-8"),
    )
    [finding] = swallowed_cancellations(snapshot(tasks=tasks), Settings())
    assert finding.count == 2 and finding.task_ids == (7, 8)
    assert finding.title.endswith("kept running after it was cancelled (2 tasks)")
    assert "cancelled 40 s ago" in finding.detail and "1 more task" in finding.detail


def test_the_handlers_that_took_the_cancellation_are_named_beside_it() -> None:
    handler = app(22, "sync_supplier_catalog", "except:  # noqa: E722")
    shot = snapshot(tasks=(cancelled(12.0, cancel_catchers=(handler,)),))
    [finding] = swallowed_cancellations(shot, Settings())
    assert finding.location == STACK[0]
    assert finding.related == (handler,)
    assert (
        "Its code catches it at" in finding.detail and "`except:  # noqa: E722`" in finding.detail
    )
