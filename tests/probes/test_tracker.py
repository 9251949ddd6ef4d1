"""The request tracker's rationing and the route statistics, driven by a clock of the test's own.

No server and no sleeps: the tracker takes its clocks as parameters, so a test decides what
"one second later" means and each runs in milliseconds.
"""

from __future__ import annotations

from typing import Any

import pytest

from inspector.agent.probes.records import FinishedRequest, RequestRecord
from inspector.agent.probes.routes import MAX_ROUTES, NO_ROUTE, route_stats
from inspector.agent.probes.tracker import RequestTracker


class FakeClock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def arrive(tracker: RequestTracker, count: int, at: float) -> list[bool]:
    """What the middleware decides for `count` requests arriving at `at`: record each or not."""
    decisions = []
    for _ in range(count):
        request_id = next(tracker.ids)
        if at >= tracker.window_end:
            tracker.new_window(at, request_id)
        decisions.append(next(tracker.turns))
    return decisions


def test_without_a_rate_every_request_is_recorded() -> None:
    tracker = RequestTracker(10, perf=FakeClock())
    tracker.ration_detail(None)
    assert all(arrive(tracker, 5000, 1.0))
    assert tracker.undetailed == 0


def test_above_the_rate_one_request_in_n_is_recorded_from_the_next_second() -> None:
    tracker = RequestTracker(10, perf=FakeClock())
    tracker.ration_detail(100)
    first = arrive(tracker, 1000, 0.0)  # the first window knows no rate yet: all recorded
    assert all(first)
    second = arrive(tracker, 1000, 1.0)  # 1,000 a second against 100: one in ten
    assert tracker.detail_every == 10
    assert sum(second) == 100
    arrive(tracker, 1, 2.0)  # opening the next window counts the last one's unrecorded
    assert tracker.undetailed == 900


def test_a_quiet_spell_records_every_request_again() -> None:
    tracker = RequestTracker(10, perf=FakeClock())
    tracker.ration_detail(100)
    arrive(tracker, 1000, 0.0)
    arrive(tracker, 1000, 1.0)
    assert tracker.detail_every == 10
    quiet = arrive(tracker, 50, 10.0)  # 1,001 requests over nine seconds: about 111 a second
    assert tracker.detail_every == 2
    assert sum(quiet) == 25
    arrive(tracker, 1, 20.0)  # 51 requests over ten seconds
    assert tracker.detail_every == 1


def test_the_snapshot_says_a_window_that_ended_no_longer_rations() -> None:
    perf = FakeClock(0.0)
    tracker = RequestTracker(10, perf=perf)
    tracker.ration_detail(100)
    arrive(tracker, 1000, 0.0)
    arrive(tracker, 1000, 1.0)
    perf.now = 1.5
    assert tracker.snapshot()["requests_detailed_every"] == 10
    perf.now = 2.5  # the window ended and no request came to open another
    assert tracker.snapshot()["requests_detailed_every"] == 1


def test_a_finished_request_takes_its_duration_from_the_trackers_clock() -> None:
    perf = FakeClock(50.0)
    tracker = RequestTracker(10, clock=FakeClock(1_700_000_000.0), perf=perf)
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/orders"}
    scope["client"] = ("10.0.0.7", 4711)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    sent: list[Any] = []

    def send(message: Any) -> None:  # the server's send returns an awaitable: not needed here
        sent.append(message)

    record = RequestRecord(1, perf(), scope, receive, send, tracker.clock(), None)
    tracker.in_flight[record.id] = record
    record.send({"type": "http.response.start", "status": 201})
    perf.now = 50.25
    tracker.finish(record)
    (done,) = tracker.snapshot()["recent_requests"]
    assert (done.method, done.path, done.status, done.phase) == ("POST", "/orders", 201, "done")
    assert done.duration == pytest.approx(0.25)
    assert done.client == "10.0.0.7:4711"
    assert record.scope is None and record.task is None  # the connection is not kept alive


def finished(method: str, route: str | None, duration: float, **values: Any) -> FinishedRequest:
    fields: dict[str, Any] = {
        "id": 0,
        "method": method,
        "path": route or "/x",
        "started_at": 0.0,
        "route": route,
        "client": None,
        "duration": duration,
        "status": 200,
        "bytes_sent": 0,
        "disconnected": False,
        "disconnected_at": None,
        "task_id": None,
        "background_ids": (),
        "error": None,
        "scheme": "http",
        "detailed": True,
        **values,
    }
    return FinishedRequest(**fields)


def test_route_statistics_give_percentiles_and_errors_per_method_and_route() -> None:
    entries = [finished("GET", "/users/{id}", duration / 100) for duration in range(1, 101)]
    entries += [finished("GET", "/users/{id}", 2.0, status=503)]
    entries += [finished("POST", "/users/{id}", 0.5, error="ValueError('x')")]
    entries += [finished("GET", None, 0.1)]
    stats = {(s.method, s.route): s for s in route_stats(entries)}
    get = stats[("GET", "/users/{id}")]
    assert (get.count, get.errors, get.max) == (101, 1, 2.0)
    assert get.p50 == pytest.approx(0.51) and get.p95 == pytest.approx(0.96)
    assert stats[("POST", "/users/{id}")].errors == 1
    assert stats[("GET", NO_ROUTE)].count == 1


def test_route_statistics_are_capped_and_sorted() -> None:
    entries = [finished("GET", f"/r{index:04d}", 0.01) for index in range(MAX_ROUTES + 50)]
    stats = route_stats(list(reversed(entries)))
    assert len(stats) == MAX_ROUTES
    assert [s.route for s in stats] == sorted(s.route for s in stats)
