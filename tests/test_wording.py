"""The words are right for one and for many: dump, doctor and the UI's titles render snapshots
with one of everything and with several, and no count disagrees with its noun or repeats."""

from __future__ import annotations

import dataclasses
import re

import pytest

from inspector.diagnose import diagnose
from inspector.model import AgentHealth, LoopStats, Snapshot, StackSample
from inspector.plurals import plural
from inspector.render import render_snapshot
from inspector.render.findings import render_findings
from inspector.render.requests import request_detail_note
from inspector.tui.views.exceptions import exceptions_title
from inspector.tui.views.stalls import stalls_title
from inspector.tui.views.task_detail import describe_task
from tests.factories import (
    NOW,
    app,
    error,
    exception_event,
    request,
    snapshot,
    stall,
    std,
    task,
    wait,
)

NOUNS = (
    "stall|task|sample|request|event|byte|stack|more stack|getter|putter|item|exception|"
    "coroutine|waiter|frame|heartbeat|thread|token"
)
ONE_WITH_PLURAL = re.compile(rf"(?<![\d.,])1 ({NOUNS})s\b")
MANY_WITH_SINGULAR = re.compile(rf"(?<![\d.,])([2-9]|[1-9]\d+) ({NOUNS})\b(?!s)")


def world(n: int) -> Snapshot:
    """A snapshot with `n` of everything countable."""
    waiting = wait("event", f"Event not set; {n} waiting", waiters=n, object_id=77)
    stack = (app(20, "handler", "await ready.wait()"), std("asyncio/locks.py", 213, "Event.wait"))
    tasks = tuple(
        task(i + 1, stack=stack, waiting_on=waiting, request_id=100 + i, age=30.0) for i in range(n)
    )
    requests = tuple(
        dataclasses.replace(
            request(100 + i, path="/hang", age=30.0, task_id=i + 1, disconnected=True),
            disconnected_at=NOW - 12.0,
            bytes_sent=n,
        )
        for i in range(n)
    )
    samples = tuple(
        StackSample(0.01 * (i + 1), (app(30 + i, "block", "time.sleep(1)"),)) for i in range(n)
    )
    stalls = tuple(
        dataclasses.replace(stall(i + 1, 1.5, request_label="GET /block"), samples=samples)
        for i in range(n)
    )
    events = tuple(
        exception_event(i + 1, "task-exception-unretrieved", error("KeyError", "'id'"), count=1)
        for i in range(n)
    )
    return snapshot(
        tasks=tasks,
        requests=requests,
        stalls=stalls,
        exceptions=events,
        loop=LoopStats(
            implementation="asyncio",
            lag=0.001,
            lag_series=tuple((NOW - 10 + i, 0.001) for i in range(n)),
            total_stalls=n,
            total_stalled_seconds=1.5 * n,
        ),
        health=AgentHealth(dropped_events=n, probes=("tasks",)),
        requests_undetailed=n,
        requests_detailed_every=4,
    )


def texts(n: int) -> str:
    shot = world(n)
    findings = diagnose(shot)
    ui = [
        stalls_title(shot.stalls, shot.loop),
        exceptions_title(shot.exceptions),
        describe_task(shot.tasks[0], shot, gone=False).plain,
        request_detail_note(shot) or "",
    ]
    report = render_findings(findings, width=400, cwd=shot.process.cwd)
    return "\n".join([render_snapshot(shot), report, *ui])


@pytest.mark.parametrize("n", [1, 3, 12])
def test_every_count_agrees_with_its_noun(n: int) -> None:
    text = texts(n)
    assert ONE_WITH_PLURAL.findall(text) == []
    assert MANY_WITH_SINGULAR.findall(text) == []


@pytest.mark.parametrize("n", [1, 3])
def test_no_phrase_is_said_twice_in_a_row(n: int) -> None:
    detail = describe_task(world(n).tasks[0], world(n), gone=False).plain
    assert f"{n} waiting · {n} waiting" not in detail
    assert detail.count(f"{n} waiting") == 1


def test_the_ui_titles_for_one_and_for_many() -> None:
    one, many = world(1), world(3)
    assert stalls_title(one.stalls, one.loop).startswith("1 stall, 1.5 s blocked in all")
    assert stalls_title(many.stalls, many.loop).startswith("3 stalls, 4.5 s blocked in all")
    assert exceptions_title(one.exceptions) == "1 exception nobody saw (1 distinct), newest first"
    assert exceptions_title(many.exceptions).startswith("3 exceptions nobody saw")


def test_the_client_left_when_it_left() -> None:
    text = texts(1)
    assert "[client gone 12 s ago]" in text
    assert "The client left 12 s ago" in text


def test_plural_counts_with_separators() -> None:
    assert plural(1, "stall") == "1 stall"
    assert plural(0, "stall") == "0 stalls"
    assert plural(1204, "task") == "1,204 tasks"
    assert plural(2, "child", "children") == "2 children"
