"""`diagnose()`: every rule together, worst first, and the JSON contract of a finding."""

from __future__ import annotations

import dataclasses
import json

import pytest

from inspector.diagnose import diagnose
from inspector.diagnose.findings import KINDS
from inspector.diagnose.rules import RULES
from tests.diagnose.factories import findings, healthy_snapshot, loop_stack
from tests.factories import (
    app,
    error,
    exception_event,
    lib,
    request,
    snapshot,
    stall,
    std,
    task,
    wait,
)


def test_every_contract_kind_has_a_rule() -> None:
    assert set(KINDS) <= set(RULES)


def test_a_healthy_server_has_no_findings() -> None:
    assert findings(healthy_snapshot()) == []


def test_a_long_stream_with_uvicorn_waiting_for_disconnect_is_healthy() -> None:
    listener = task(
        20,
        age=600,
        stack=(
            lib(
                "starlette/responses.py", 240, "listen_for_disconnect", "message = await receive()"
            ),
            lib(
                "uvicorn/protocols/http/httptools_impl.py",
                560,
                "receive",
                "await self.message_event.wait()",
            ),
            std("asyncio/locks.py", 213, "wait", "await fut"),
        ),
        waiting_on=wait("event", "Event.wait() (unset)", object_id=0x1, is_set=False),
        request_id=9,
    )
    streamer = task(
        21, age=600, stack=(app(90, "events", "await asyncio.sleep(1)"),), waiting_on=wait("sleep")
    )
    sse = request(9, "GET", "/events", phase="streaming", age=600.0, task_id=21)
    snap = dataclasses.replace(
        healthy_snapshot(),
        tasks=healthy_snapshot().tasks + (listener, streamer),
        requests=healthy_snapshot().requests + (sse,),
    )
    assert findings(snap) == []


def test_an_empty_snapshot_has_no_findings() -> None:
    assert diagnose(snapshot(loop=None)) == []


def test_findings_are_sorted_worst_first_then_by_count() -> None:
    sleep = app(14, "block", "time.sleep(2)")
    swallowed = exception_event(
        1, "exception-swallowed", error("KeyError", "k"), location=app(3, "f", "except KeyError:")
    )
    failed_many = exception_event(
        2, "task-exception-unretrieved", error("ValueError", "x", app(5, "g")), count=9
    )
    failed_once = exception_event(
        3, "task-exception-unretrieved", error("TypeError", "y", app(6, "h"))
    )
    snap = snapshot(
        stalls=(stall(1, 2.0, loop_stack(sleep), request_label="GET /block"),),
        exceptions=(swallowed, failed_once, failed_many),
    )
    result = diagnose(snap)
    assert [(f.severity, f.count) for f in result] == [
        ("critical", 1),
        ("warning", 9),
        ("warning", 1),
        ("info", 1),
    ]


def test_the_json_form_has_the_contract_keys() -> None:
    snap = snapshot(
        stalls=(
            stall(
                1, 2.0, loop_stack(app(14, "block", "time.sleep(2)")), request_label="GET /block"
            ),
        )
    )
    [finding] = diagnose(snap)
    data = json.loads(json.dumps(finding.to_json_dict()))
    assert set(data) == {
        "kind",
        "severity",
        "title",
        "detail",
        "hint",
        "location",
        "related",
        "task_ids",
        "request",
        "count",
    }
    assert data["location"] == {"file": "/srv/shop/app.py", "line": 14, "function": "block"}
    assert data["severity"] in ("critical", "warning", "info")


def test_a_rule_that_crashes_does_not_take_the_others_down(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspector.diagnose.rules as rules

    def broken(snapshot, settings):
        raise RuntimeError("boom")

    monkeypatch.setitem(rules.RULES, "deadlock", broken)
    snap = snapshot(stalls=(stall(1, 2.0, loop_stack(app(14, "block", "time.sleep(2)"))),))
    kinds = [f.kind for f in diagnose(snap)]
    assert kinds == ["loop-blocked", "diagnosis-error"]


def test_young_suspects_ask_for_a_confirmation_wait() -> None:
    from inspector.diagnose import confirmation_delay
    from tests.diagnose.test_rules_tasks import event_waiter

    first_contact = snapshot(tasks=(event_waiter(1, age=0.0), event_waiter(2, age=1.5)))
    assert findings(first_contact, "stuck-task") == []
    assert confirmation_delay(first_contact, stuck_after=5.0) == pytest.approx(5.2)
    assert confirmation_delay(healthy_snapshot(), stuck_after=5.0) == 0.0
    old_enough = snapshot(tasks=(event_waiter(1, age=30.0),))
    assert confirmation_delay(old_enough, stuck_after=5.0) == 0.0


def test_what_was_not_checked_says_probes_wait_for_a_blocked_loop() -> None:
    from inspector.diagnose import unchecked
    from inspector.model import AgentHealth

    waiting = ("requests", "background", "threadpool", "exceptions")
    injected = snapshot(
        capabilities=("tasks", "stacks", "stalls", "cancel"),
        health=AgentHealth(waiting_for_loop=waiting),
    )
    said = unchecked(injected)
    assert said == (
        "this source cannot report requests, background, threadpool, exceptions yet (the "
        "injected agent's probes are waiting for the blocked loop to come back)"
    )
    no_lifecycle = dataclasses.replace(injected, health=AgentHealth())
    assert "--no-lifecycle, or a probe failed" in (unchecked(no_lifecycle) or "")


def test_requests_older_than_an_injected_agent_are_said_once() -> None:
    from inspector.diagnose import unknown_starts

    older = [dataclasses.replace(request(i), start_unknown=True) for i in (1, 2)]
    shot = snapshot(requests=(*older, request(3)))
    assert unknown_starts(shot) == (
        "2 requests were in flight before the agent was injected: their start times are "
        "unknown, their ages count from the injection"
    )
    assert unknown_starts(snapshot(requests=(request(3),))) is None
