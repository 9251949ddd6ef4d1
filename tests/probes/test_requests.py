"""Requests in flight and recently finished, seen through a real uvicorn server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import httpx
import pytest

from inspector.agent.probes import InspectorMiddleware, wrap_asgi
from inspector.model import RequestInfo
from tests.apps import probes_app
from tests.probes.conftest import HOST, LiveServer, wait_for

Start = Callable[..., LiveServer]


def in_flight(server: LiveServer, path: str) -> RequestInfo | None:
    return next((r for r in server.collect()["requests"] if r.path == path), None)


def finished(server: LiveServer, path: str) -> RequestInfo | None:
    return next((r for r in server.collect()["recent_requests"] if r.path == path), None)


def raw_request(port: int, head: str) -> socket.socket:
    connection = socket.create_connection((HOST, port), timeout=5)
    connection.sendall(head.encode())
    return connection


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_finished_request_has_route_status_duration_and_client(
    live_server: Start, loop: str
) -> None:
    server = live_server(probes_app.app, loop=loop)
    for user in (1, 2, 3):
        assert httpx.get(server.url(f"/users/{user}")).status_code == 200

    info = wait_for(lambda: finished(server, "/users/3"))
    assert (info.method, info.route, info.status, info.phase) == (
        "GET",
        "/users/{user_id}",
        200,
        "done",
    )
    assert info.client is not None and info.client.startswith("127.0.0.1:")
    assert info.duration is not None and 0 < info.duration < 5
    assert info.bytes_sent == len(b'{"id":3}')
    assert info.task_id is not None and info.scheme == "http"
    stats = {(s.method, s.route): s for s in server.collect()["routes"]}
    route = stats[("GET", "/users/{user_id}")]
    assert route.count == 3 and route.errors == 0
    assert 0 < route.p50 <= route.p95 <= route.max


def test_a_hanging_request_is_in_flight_in_the_handler_with_its_task(live_server: Start) -> None:
    server = live_server(probes_app.app)
    with httpx.Client() as client:
        thread = threading.Thread(
            target=lambda: client.get(server.url("/hang?seconds=0.8")), daemon=True
        )
        thread.start()
        info = wait_for(lambda: in_flight(server, "/hang"))
        assert info.phase == "handler" and info.route == "/hang" and info.status is None
        assert info.task_id is not None and info.disconnected is False
        link = server.call_on_loop(lambda: _link_of_task(server, info.task_id))
        assert link == (info.id, "GET /hang")
        thread.join(5)
    assert wait_for(lambda: finished(server, "/hang")).status == 200


def _link_of_task(server: LiveServer, task_id: int) -> tuple[int | None, str | None] | None:
    import asyncio

    assert server.context is not None
    task = next(t for t in asyncio.all_tasks() if id(t) == task_id)
    link = server.context.link_for(task)
    return (link.request_id, link.request_label) if link else None


def test_a_client_that_left_is_reported_while_the_handler_still_runs(live_server: Start) -> None:
    server = live_server(probes_app.app)
    connection = raw_request(server.port, "GET /hang?seconds=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: in_flight(server, "/hang"))
    connection.close()
    info = wait_for(lambda: (r := in_flight(server, "/hang")) is not None and r.disconnected and r)
    assert info.phase == "handler"
    done = wait_for(lambda: finished(server, "/hang"))
    assert done.disconnected is True


def test_a_request_waiting_for_its_body_is_receiving(live_server: Start) -> None:
    server = live_server(probes_app.app)
    head = (
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 12\r\n\r\n"
    )
    connection = raw_request(server.port, head)
    try:
        info = wait_for(lambda: (r := in_flight(server, "/echo")) and r.phase == "receiving" and r)
        assert info.method == "POST"
        connection.sendall(b'{"a": "bcd"}')
        answer = connection.recv(4096)
        assert b"200 OK" in answer
    finally:
        connection.close()
    assert wait_for(lambda: finished(server, "/echo")).status == 200


def test_a_streaming_response_is_streaming_and_counts_bytes(live_server: Start) -> None:
    server = live_server(probes_app.app)
    with (
        httpx.Client() as client,
        client.stream("GET", server.url("/stream?chunks=4&delay=0.3")) as response,
    ):
        chunks = response.iter_raw()
        next(chunks)
        info = wait_for(lambda: (r := in_flight(server, "/stream")) and r.bytes_sent and r)
        assert info.phase == "streaming" and info.status == 200
        assert b"".join(chunks)
    done = wait_for(lambda: finished(server, "/stream"))
    assert done.bytes_sent == len(b"".join(f"chunk {i}\n".encode() for i in range(4)))


def test_background_work_after_the_response_is_the_background_phase(live_server: Start) -> None:
    server = live_server(probes_app.app)
    response = httpx.post(server.url("/slow-background"))
    assert response.status_code == 200  # the client has its answer...
    info = wait_for(
        lambda: (r := in_flight(server, "/slow-background")) and r.phase == "background" and r
    )
    assert info.status == 200  # ...but the request is not over: its background task runs
    assert len(info.background_ids) == 1
    httpx.post(server.url("/finish-slow-background"))
    assert wait_for(lambda: finished(server, "/slow-background")).phase == "done"


def test_a_sync_endpoint_names_its_worker_thread(live_server: Start) -> None:
    server = live_server(probes_app.app)
    probes_app.release.clear()
    with httpx.Client() as client:
        thread = threading.Thread(
            target=lambda: client.get(server.url("/sync-wait?seconds=5")), daemon=True
        )
        thread.start()
        info = wait_for(lambda: (r := in_flight(server, "/sync-wait")) and r.thread_ids and r)
        (worker,) = info.thread_ids
        threads = {t.id: t for t in server.collect()["threads"]}
        assert threads[worker].pool == "anyio" and threads[worker].busy
        assert threads[worker].request_id == info.id
        assert any(frame.function == "sync_wait" for frame in threads[worker].stack)
        probes_app.release.set()
        thread.join(5)
    assert wait_for(lambda: finished(server, "/sync-wait")).thread_ids == ()


def test_endpoint_errors_are_recorded_even_when_a_handler_answers(live_server: Start) -> None:
    server = live_server(probes_app.app)
    assert httpx.post(server.url("/raises")).status_code == 404
    assert httpx.post(server.url("/unhandled")).status_code == 500
    raised = wait_for(lambda: finished(server, "/raises"))
    assert raised.error is not None and raised.error.startswith("HTTPException(status_code=404")
    unhandled = wait_for(lambda: finished(server, "/unhandled"))
    assert unhandled.status == 500 and unhandled.error == "LookupError('nobody handles this')"
    stats = {s.route: s for s in server.collect()["routes"]}
    assert stats["/unhandled"].errors == 1


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_websocket_sessions_are_requests_with_the_ws_scheme(live_server: Start) -> None:
    from starlette.testclient import TestClient

    server = live_server(probes_app.app)  # installs the probes; the session runs in-process
    with TestClient(wrap_asgi(probes_app.app)) as client:
        with client.websocket_connect("/ws") as websocket:
            websocket.send_text("ping")
            assert websocket.receive_text() == "ping"
            info = wait_for(lambda: in_flight(server, "/ws"))
            assert (info.scheme, info.method, info.phase, info.status) == (
                "ws",
                "WS",
                "handler",
                101,
            )
            assert info.bytes_sent == 4
            websocket.send_text("bye")
    assert wait_for(lambda: finished(server, "/ws")).phase == "done"


def test_the_recent_history_is_bounded(live_server: Start) -> None:
    from inspector.agent.probe import AgentConfig

    server = live_server(probes_app.app, config=AgentConfig(max_history=5))
    with httpx.Client() as client:
        for user in range(12):
            client.get(server.url(f"/users/{user}"))
    recent = wait_for(
        lambda: (r := server.collect()["recent_requests"]) and r[-1].path == "/users/11" and r
    )
    assert [r.path for r in recent] == [f"/users/{u}" for u in range(7, 12)]
    (route,) = [s for s in server.collect()["routes"] if s.route == "/users/{user_id}"]
    assert route.count == 12  # latency statistics look further back than the recent list


async def test_without_an_agent_the_middleware_passes_everything_through() -> None:
    transport = httpx.ASGITransport(app=wrap_asgi(probes_app.app))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/users/7")
    assert response.json() == {"id": 7}
    wrapped = wrap_asgi(probes_app.app)
    assert wrap_asgi(wrapped) is wrapped and isinstance(wrapped, InspectorMiddleware)
    assert wrapped.routes is probes_app.app.routes  # attribute access reaches the app


def test_closing_the_probes_restores_every_patch(live_server: Start) -> None:
    import logging
    import warnings

    from starlette import _exception_handler, background

    before: dict[str, Any] = {
        "init": background.BackgroundTask.__dict__["__init__"],
        "call": background.BackgroundTask.__dict__["__call__"],
        "tasks_call": background.BackgroundTasks.__dict__["__call__"],
        "run_sync": anyio.to_thread.run_sync,
        "lookup": _exception_handler._lookup_exception_handler,
        "unawaited": warnings._warn_unawaited_coroutine,  # type: ignore[attr-defined]
        "factory": logging.getLogRecordFactory(),
    }
    server = live_server(probes_app.app)
    httpx.get(server.url("/sync-sleep?seconds=0.01"))
    assert background.BackgroundTask.__dict__["__init__"] is not before["init"]
    assert wait_for(lambda: anyio.to_thread.run_sync is not before["run_sync"])
    loop = server.loop
    assert loop is not None
    # The handler on the loop itself: `loop.get_exception_handler()` answers the app's own.
    handlers = server.call_on_loop(
        lambda: (type(loop).get_exception_handler(loop), loop.get_task_factory())
    )
    assert all(handler is not None for handler in handlers)
    server.stop()
    after = {
        "init": background.BackgroundTask.__dict__["__init__"],
        "call": background.BackgroundTask.__dict__["__call__"],
        "tasks_call": background.BackgroundTasks.__dict__["__call__"],
        "run_sync": anyio.to_thread.run_sync,
        "lookup": _exception_handler._lookup_exception_handler,
        "unawaited": warnings._warn_unawaited_coroutine,  # type: ignore[attr-defined]
        "factory": logging.getLogRecordFactory(),
    }
    assert after == before
    assert server.loop is not None
    assert server.loop.get_exception_handler() is None
    assert server.loop.get_task_factory() is None


def test_a_failing_probe_never_breaks_the_request(
    live_server: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = live_server(probes_app.app)
    tracker = server.probes[0].tracker  # type: ignore[attr-defined]

    def broken(record: object) -> None:
        raise RuntimeError("probe bug")

    monkeypatch.setattr(tracker, "finish", broken)
    assert httpx.get(server.url("/users/5")).json() == {"id": 5}
    context = server.context
    assert context is not None
    health = wait_for(lambda: (h := context.health((), 0.0)).errors >= 1 and h)
    assert any("probe bug" in error for error in health.recent_errors)


def test_the_task_index_follows_requests_that_come_and_go() -> None:
    from inspector.agent.probes.records import RequestRecord
    from inspector.agent.probes.tracker import RequestTracker

    tracker = RequestTracker(max_history=10)

    async def ignore(*_: Any) -> None:
        return None

    def start(task: object) -> RequestRecord:
        scope = {"type": "http", "method": "GET", "path": f"/{id(task)}"}
        record = RequestRecord(next(tracker.ids), 0.0, scope, ignore, ignore, 0.0, task)  # type: ignore[arg-type]
        tracker.in_flight[record.id] = record
        return record

    first_task, second_task, third_task = object(), object(), object()
    first = start(first_task)
    assert tracker.in_flight_for(first_task) is first  # type: ignore[arg-type]
    second = start(second_task)
    assert tracker.in_flight_for(second_task) is second  # type: ignore[arg-type]
    # One finishes and another starts: the same number in flight, a new last key.
    tracker.finish(first)
    third = start(third_task)
    assert tracker.in_flight_for(first_task) is None  # type: ignore[arg-type]
    assert tracker.in_flight_for(third_task) is third  # type: ignore[arg-type]
    tracker.finish(second)
    assert tracker.in_flight_for(second_task) is None  # type: ignore[arg-type]
    assert [info.path for info in tracker.snapshot()["recent_requests"]] == [
        first.path,
        second.path,
    ]
