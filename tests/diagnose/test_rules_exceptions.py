"""Exceptions nobody looked at."""

from __future__ import annotations

import pytest

from tests.diagnose.factories import findings
from tests.factories import app, error, exception_event, request, snapshot, std, task

RAISE = app(55, "refresh", "raise RuntimeError('upstream 503')")
TASKS = std("asyncio/tasks.py", 267, "__step", "result = coro.send(None)")


def test_an_unretrieved_exception_of_a_fire_and_forget_task() -> None:
    event = exception_event(
        1,
        "task-exception-unretrieved",
        error("RuntimeError", "upstream 503", TASKS, RAISE),
        request_id=3,
        request_label="POST /orders",
        task_name="Task-77",
    )
    [finding] = findings(snapshot(exceptions=(event,)), "task-exception-unretrieved")
    assert finding.location == RAISE
    assert finding.request == "POST /orders"
    assert "fire-and-forget" in finding.detail
    assert finding.severity == "warning"


def test_a_long_lived_worker_that_died_is_said_so() -> None:
    consume = app(120, "consume", "order = parse(raw)")
    event = exception_event(
        1,
        "task-exception-unretrieved",
        error("KeyError", "'id'", TASKS, consume),
        task_name="consumer",
    )
    dead = task(9, name="consumer", state="failed", age=3600.0, exception="KeyError('id')")
    [finding] = findings(snapshot(exceptions=(event,), tasks=(dead,)), "task-exception-unretrieved")
    assert finding.location == consume
    assert "Task consumer died" in finding.title
    assert "long-lived worker" in finding.detail
    assert "after running for at least 1 h" in finding.detail
    assert "server keeps running without it" in finding.detail


def test_unretrieved_events_are_grouped_and_counted() -> None:
    events = tuple(
        exception_event(
            i, "task-exception-unretrieved", error("RuntimeError", "upstream 503", RAISE), count=3
        )
        for i in range(4)
    )
    [finding] = findings(snapshot(exceptions=events), "task-exception-unretrieved")
    assert finding.count == 12


def test_a_coroutine_never_awaited_points_at_the_line_that_made_it() -> None:
    made = app(61, "checkout", "notify_warehouse(order)")
    event = exception_event(
        1,
        "coroutine-never-awaited",
        error("RuntimeWarning", "coroutine 'notify_warehouse' was never awaited"),
        location=made,
        request_label="POST /checkout",
    )
    [finding] = findings(snapshot(exceptions=(event,)), "coroutine-never-awaited")
    assert finding.location == made
    assert finding.title.startswith(
        "Coroutine 'notify_warehouse' was never awaited in POST /checkout"
    )
    assert "await" in finding.hint


@pytest.mark.parametrize(
    ("except_line", "severity"),
    [
        ("except Exception:", "warning"),
        ("except:", "warning"),
        ("except (Exception, KeyError) as e:", "warning"),
        ("except KeyError:", "info"),
    ],
)
def test_swallowed_exceptions_point_at_the_except_line(except_line: str, severity: str) -> None:
    where = app(72, "load_prefs", except_line)
    raised = app(70, "load_prefs", "prefs = json.loads(raw)")
    event = exception_event(
        1,
        "exception-swallowed",
        error("JSONDecodeError", "Expecting value", raised),
        location=where,
        count=5,
    )
    [finding] = findings(snapshot(exceptions=(event,)), "exception-swallowed")
    assert finding.location == where
    assert finding.related == (raised,)
    assert finding.severity == severity
    assert finding.count == 5


def test_a_logged_error_is_information_unless_its_request_failed() -> None:
    raised = app(90, "charge", "raise PaymentError('declined')")
    ok = exception_event(1, "logged-error", error("PaymentError", "declined", raised))
    [info] = findings(snapshot(exceptions=(ok,)), "logged-error")
    assert info.severity == "info"
    assert info.location == raised

    failed = request(4, "POST", "/pay", phase="done", status=500, error="PaymentError('declined')")
    bad = exception_event(
        1,
        "logged-error",
        error("PaymentError", "declined", raised),
        request_id=4,
        request_label="POST /pay",
    )
    [warning] = findings(snapshot(exceptions=(bad,), recent_requests=(failed,)), "logged-error")
    assert warning.severity == "warning"
    assert "The request failed" in warning.detail


def test_a_failed_worker_the_agent_still_lists_is_reported_once() -> None:
    from inspector.model import TaskInfo

    created = app(140, "lifespan", "task = asyncio.create_task(apply_stock_updates(shop))")
    dead = TaskInfo(
        id=9,
        name="Task-3",
        state="failed",
        coro="apply_stock_updates",
        exception="ValueError('negative stock: sku-2')",
        created_at=created,
        age=40.0,
    )
    [finding] = findings(snapshot(tasks=(dead,)), "task-exception-unretrieved")
    assert finding.location == created
    assert "Task Task-3 died: ValueError('negative stock: sku-2')" == finding.title
    assert finding.task_ids == (9,)
    event = exception_event(
        1, "task-exception-unretrieved", error("ValueError", "x"), task_name="Task-3"
    )
    assert (
        len(findings(snapshot(tasks=(dead,), exceptions=(event,)), "task-exception-unretrieved"))
        == 1
    )
    from_request = TaskInfo(
        id=10, name="Task-4", state="failed", coro="x", request_id=3, exception="E()"
    )
    assert findings(snapshot(tasks=(from_request,)), "task-exception-unretrieved") == []


def test_tasks_collected_while_pending_are_one_finding_naming_their_coroutine() -> None:
    function = app(15, "notify_when_shipped", "async def notify_when_shipped(order_id):")
    events = tuple(
        exception_event(
            n,
            "task-destroyed-pending",
            error("Task", "notify_when_shipped() was destroyed while pending"),
            location=function,
            request_label=f"POST /orders/{n}/track",
        )
        for n in (1, 2, 3)
    )
    [finding] = findings(snapshot(exceptions=events), "task-destroyed-pending")
    assert finding.severity == "warning" and finding.count == 3
    assert finding.location == function
    assert finding.title.startswith("A pending task was garbage-collected: notify_when_shipped()")
    assert "3 tasks running notify_when_shipped() were destroyed" in finding.detail
    assert "POST /orders/1/track" in finding.detail
    assert "reference" in finding.hint


def test_one_task_collected_while_pending_is_worded_for_one() -> None:
    event = exception_event(
        1, "task-destroyed-pending", error("Task", "refresh() was destroyed while pending")
    )
    [finding] = findings(snapshot(exceptions=(event,)), "task-destroyed-pending")
    assert finding.detail.startswith("A task running refresh() was destroyed before it finished")
