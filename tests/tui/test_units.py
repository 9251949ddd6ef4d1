"""The UI's Textual-free parts: wording, event history, row building, the poller's reconnects."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from inspector.model import Frame, Stall, TaskInfo
from inspector.tui import formatting
from inspector.tui.history import History
from inspector.tui.messages import SnapshotReceived, VitalsSampled
from inspector.tui.poller import Connected, Disconnected, Fetched, Observation, Poller
from inspector.tui.task_rows import build_task_rows
from inspector.tui.widgets.banners import stall_sentence
from tests.tui.fakes import FakeSource, load

APP = Frame("/srv/shop/app.py", 57, "export", "time.sleep(3)  # render the PDF")
LIB = Frame(
    "/srv/shop/.venv/lib/python3.11/site-packages/starlette/routing.py",
    76,
    "app",
    "await f(request)",
)
STD = Frame("/usr/lib/python3.11/json/encoder.py", 200, "encode", "chunks = ...")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0.0004, "0.4 ms", id="sub-millisecond"),
        pytest.param(0.85, "850 ms", id="milliseconds"),
        pytest.param(2.31, "2.3 s", id="seconds with a decimal"),
        pytest.param(42, "42 s", id="whole seconds"),
        pytest.param(245, "4 min 5 s", id="minutes"),
        pytest.param(7825, "2 h 10 min", id="hours"),
        pytest.param(None, "—", id="unknown"),
    ],
)
def test_durations_read_like_a_person_writes_them(seconds, text) -> None:
    assert formatting.duration(seconds) == text


@pytest.mark.parametrize(
    ("frames", "call"),
    [
        pytest.param((LIB, APP), "time.sleep", id="a C call read from the application line"),
        pytest.param(
            (LIB, APP, STD), "encoder.encode", id="the library function below the app frame"
        ),
        pytest.param((LIB,), "app", id="no application frame"),
        pytest.param(
            (LIB, STD),
            "encode, called from app",
            id="no application frame: the library call and what called it",
        ),
    ],
)
def test_blocking_call(frames, call) -> None:
    assert formatting.blocking_call(frames) == call


def test_a_stall_is_placed_where_doctor_places_it() -> None:
    main = Frame("/srv/shop/main.py", 20, "<module>", "uvicorn.run(app)")
    runner = (
        main,
        Frame("/usr/lib/python3.11/asyncio/runners.py", 118, "Runner.run"),
        Frame("/usr/lib/python3.11/asyncio/base_events.py", 1922, "BaseEventLoop._run_once"),
        Frame("/usr/lib/python3.11/asyncio/events.py", 80, "Handle._run"),
    )
    assert formatting.stall_place((*runner, LIB, STD)) == (None, "encode, called from app")
    assert formatting.stall_place((*runner, LIB, APP)) == (APP, "time.sleep")


def test_the_line_to_fix_is_the_innermost_application_frame() -> None:
    assert formatting.innermost_application_frame((LIB, APP, STD)) == APP
    assert formatting.innermost_application_frame((LIB, STD)) is None


def test_banner_sentence_from_the_ongoing_stall() -> None:
    assert (
        stall_sentence(load("blocked"))
        == "Loop blocked 2.3 s at app.py:57 in time.sleep, serving GET /export"
    )
    assert stall_sentence(load("healthy")) is None


def stall(stall_id: int, ongoing: bool = False) -> Stall:
    return Stall(id=stall_id, started_at=1000.0 + stall_id, duration=0.5, ongoing=ongoing)


def test_history_keeps_events_the_target_forgot_and_ends_vanished_stalls() -> None:
    base = load("healthy")
    history = History(limit=3)
    history.add(dataclasses.replace(base, stalls=(stall(1), stall(2, ongoing=True))))
    events = history.add(dataclasses.replace(base, stalls=(stall(3),)))
    assert [s.id for s in events.stalls] == [1, 2, 3]
    assert not any(s.ongoing for s in events.stalls)
    events = history.add(dataclasses.replace(base, stalls=(stall(4),)))
    assert [s.id for s in events.stalls] == [2, 3, 4]  # bounded: the oldest goes first


def test_a_newer_snapshot_replaces_a_pending_one_but_vitals_do_not_replace_it() -> None:
    observation = Observation(
        snapshot=load("healthy"), findings=(), events=History().add(load("healthy")), received_at=0
    )
    older, newer = SnapshotReceived(observation), SnapshotReceived(observation)
    assert older.can_replace(newer)
    assert not older.can_replace(VitalsSampled(None))


def test_rows_are_reused_for_tasks_that_did_not_change() -> None:
    snapshot = load("blocked")
    first = build_task_rows(snapshot, 5.0)
    older = dataclasses.replace(snapshot.tasks[5], age=(snapshot.tasks[5].age or 0) + 1)
    second = build_task_rows(
        dataclasses.replace(snapshot, tasks=(older, *snapshot.tasks[:5], *snapshot.tasks[6:])),
        5.0,
        first,
    )
    unchanged = str(snapshot.tasks[0].id)
    assert second.rows[unchanged] is first.rows[unchanged]
    assert second.rows[str(older.id)] is not first.rows[str(older.id)]
    assert second.orders["age"][0] == first.orders["age"][0]


def test_poller_reconnects_with_backoff_after_the_target_goes_away() -> None:
    source = FakeSource([load("healthy")])
    events: list[object] = []
    poller = Poller(
        source, emit=events.append, interval=0.01, diagnose=lambda s, x: [], backoff=(0.01, 0.02)
    )
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()

    def wait(predicate, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    try:
        wait(lambda: any(isinstance(e, Fetched) for e in events))
        source.down = True
        wait(lambda: sum(isinstance(e, Disconnected) for e in events) >= 3)  # it keeps trying
        source.down = False
        count = len(events)
        wait(lambda: any(isinstance(e, Fetched) for e in events[count:]))
        assert sum(isinstance(e, Connected) for e in events) == 2
        assert all(e.ever_connected for e in events if isinstance(e, Disconnected))
    finally:
        poller.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert source.closes >= 1


def test_poller_reads_a_file_once_and_does_not_retry() -> None:
    source = FakeSource([load("healthy")], live=False)
    events: list[object] = []
    poller = Poller(source, emit=events.append, interval=0.01, diagnose=lambda s, x: [])
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not any(isinstance(e, Fetched) for e in events):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    poller.stop()
    thread.join(timeout=5)
    assert source.served == 0 and sum(isinstance(e, Fetched) for e in events) == 1


def test_cancel_goes_through_the_pollers_connection() -> None:
    source = FakeSource([load("healthy")])
    poller = Poller(source, emit=lambda e: None, interval=0.05, diagnose=lambda s, x: [])
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while source.connects == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        result = poller.cancel_task(7).result(timeout=5)
        assert result.ok and source.cancelled == [7]
    finally:
        poller.stop()
        thread.join(timeout=5)


def test_task_rows_mark_long_waiting_requests() -> None:
    task = TaskInfo(id=1, name="t", state="pending", coro="c", age=9.0, request_id=4)
    snapshot = dataclasses.replace(load("healthy"), tasks=(task,))
    row = build_task_rows(snapshot, stuck_after=5.0).rows["1"]
    assert row[3] == ("9 s", "warning")
