"""`hanging-request`: requests in flight too long, where they are and what they wait for."""

from __future__ import annotations

import dataclasses

from tests.diagnose.factories import ANYIO_WORKER_FRAMES, findings, task_stack
from tests.factories import NOW, app, lib, request, snapshot, std, task, thread, wait

EVENT_WAIT = app(27, "wait_forever", "await never_set.wait()")


def hanging(request_id: int, age: float, *, path: str = "/wait", **fields) -> tuple:
    """A request whose task waits on an Event at app.py:27."""
    waiting = wait("event", "Event.wait() (unset)", object_id=0xE1, is_set=False)
    t = task(
        100 + request_id,
        stack=task_stack(EVENT_WAIT, std("asyncio/locks.py", 213, "wait")),
        waiting_on=waiting,
        age=age,
        request_id=request_id,
    )
    r = request(request_id, "GET", path, route="/wait", age=age, task_id=t.id, **fields)
    return t, r


def test_a_request_over_the_threshold_is_located_at_its_await() -> None:
    t, r = hanging(1, 12.0)
    [finding] = findings(snapshot(tasks=(t,), requests=(r,)), "hanging-request")
    assert finding.location == EVENT_WAIT
    assert finding.request == "GET /wait"
    assert "12 s" in finding.title
    assert "Event.wait() (unset)" in finding.detail
    assert finding.severity == "warning"
    assert finding.task_ids == (t.id,)


def test_short_requests_are_not_findings() -> None:
    t, r = hanging(1, 4.9)
    assert findings(snapshot(tasks=(t,), requests=(r,)), "hanging-request") == []


def test_the_threshold_is_a_setting() -> None:
    t, r = hanging(1, 3.0)
    assert (
        len(findings(snapshot(tasks=(t,), requests=(r,)), "hanging-request", stuck_after=2.0)) == 1
    )


def test_identical_hanging_requests_are_one_finding_with_a_count() -> None:
    pairs = [hanging(i, 10.0 + i, path=f"/wait?n={i}") for i in range(100)]
    snap = snapshot(tasks=tuple(p[0] for p in pairs), requests=tuple(p[1] for p in pairs))
    [finding] = findings(snap, "hanging-request")
    assert finding.count == 100
    assert "100 requests to GET /wait" in finding.title
    assert "longest 1 min 49 s" in finding.title
    assert len(finding.task_ids) == 100


def test_a_disconnected_client_is_said_to_have_left() -> None:
    t, r = hanging(1, 20.0, disconnected=True)
    [finding] = findings(snapshot(tasks=(t,), requests=(r,)), "hanging-request")
    assert "client has gone" in finding.title
    assert "The client left, yet the handler keeps working" in finding.detail
    assert "is_disconnected" in finding.hint


def test_when_the_client_left_is_said_when_known() -> None:
    t, r = hanging(1, 20.0, disconnected=True)
    r = dataclasses.replace(r, disconnected_at=NOW - 7.0)
    [finding] = findings(snapshot(tasks=(t,), requests=(r,)), "hanging-request")
    assert "The client left 7.0 s ago; the handler keeps working." in finding.detail


def test_a_sync_endpoint_is_located_in_its_worker_thread() -> None:
    line = app(51, "report", "resp = requests.get(SLOW_URL)")
    worker = thread(
        7,
        *ANYIO_WORKER_FRAMES,
        line,
        lib("requests/api.py", 73, "get"),
        std("socket.py", 706, "readinto"),
        request_id=1,
    )
    waiting = wait("thread", "run_sync_in_worker_thread", thread_id=7)
    t = task(
        101,
        stack=(lib("starlette/concurrency.py", 39, "run_in_threadpool"),),
        waiting_on=waiting,
        age=30,
        request_id=1,
    )
    r = request(1, "GET", "/report", age=30.0, task_id=101, thread_ids=(7,))
    [finding] = findings(snapshot(tasks=(t,), requests=(r,), threads=(worker,)), "hanging-request")
    assert finding.location == line
    assert "blocked in requests in worker thread 'AnyIO worker thread'" in finding.detail
    assert "timeout" in finding.hint


def test_websockets_and_streams_are_meant_to_last() -> None:
    t1, ws = hanging(1, 300.0, scheme="ws")
    t2, sse = hanging(2, 300.0, phase="streaming")
    assert findings(snapshot(tasks=(t1, t2), requests=(ws, sse)), "hanging-request") == []


def test_a_stream_whose_client_left_is_reported() -> None:
    t, sse = hanging(2, 300.0, phase="streaming", disconnected=True)
    [finding] = findings(snapshot(tasks=(t,), requests=(sse,)), "hanging-request")
    assert "client has gone" in finding.title


def test_long_background_work_after_the_response_is_information_only() -> None:
    t, r = hanging(1, 60.0, phase="background")
    [finding] = findings(snapshot(tasks=(t,), requests=(r,)), "hanging-request")
    assert finding.severity == "info"
    assert "background work" in finding.title


def test_a_request_waiting_for_its_body() -> None:
    r = request(1, "POST", "/upload", age=40.0, phase="receiving")
    [finding] = findings(snapshot(requests=(r,)), "hanging-request")
    assert "request body" in finding.detail
    assert finding.location is None


def test_a_request_in_a_deadlock_is_told_by_the_deadlock_finding_alone() -> None:
    lock_b = wait("lock", "Lock held by Task-102", object_id=0xB, holder_task_ids=(102,))
    lock_a = wait("lock", "Lock held by Task-101", object_id=0xA, holder_task_ids=(101,))
    t1 = task(101, stack=task_stack(app(10, "a", "async with lock_b:")), waiting_on=lock_b, age=9)
    t2 = task(102, stack=task_stack(app(20, "b", "async with lock_a:")), waiting_on=lock_a, age=9)
    r1 = request(1, "GET", "/a", age=9.0, task_id=101)
    r2 = request(2, "GET", "/b", age=9.0, task_id=102)
    snap = snapshot(tasks=(t1, t2), requests=(r1, r2))
    assert findings(snap, "hanging-request") == []
    assert [f.kind for f in findings(snap)] == ["deadlock"]
