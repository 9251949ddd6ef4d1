"""Above the detail rate most requests get no record: they are still listed while in flight, and
the ones that start work, hand code to a thread or fail still get one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from inspector.agent.probe import AgentConfig
from inspector.model import RequestInfo
from tests.apps import probes_app
from tests.probes.conftest import LiveServer, wait_for
from tests.probes.test_requests import _link_of_task

Start = Callable[..., LiveServer]

RATIONED = AgentConfig(max_history=50, request_detail_rate=1)


def overload(server: LiveServer, client: httpx.Client, seconds: float = 1.2) -> int:
    """Serve /hello back to back for a little over a second: the rate rises far above one a
    second, so from the next request on only one in many gets a record. Returns how many."""
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or sent < 20:
        client.get(server.url("/hello"))
        sent += 1
    client.get(server.url("/hello"))  # opens the next one-second window
    every = server.collect()["requests_detailed_every"]
    assert every >= 5, f"only {sent} requests in {seconds} s: one in {every} recorded"
    return sent + 1


def busy(live_server: Start) -> LiveServer:
    """A server asked for one full record a second, just overloaded: most requests get none."""
    server = live_server(probes_app.app, config=RATIONED)
    with httpx.Client() as client:
        overload(server, client)
    return server


@contextmanager
def concurrently(server: LiveServer, paths: list[str], method: str = "GET") -> Iterator[None]:
    with httpx.Client(timeout=10) as client:
        threads = [
            threading.Thread(
                target=lambda p=path: client.request(method, server.url(p)), daemon=True
            )
            for path in paths
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            for thread in threads:
                thread.join(10)


def in_flight(server: LiveServer, path: str) -> list[RequestInfo]:
    return [r for r in server.collect()["requests"] if r.path == path]


def test_below_the_rate_every_request_is_recorded(live_server: Start) -> None:
    server = live_server(probes_app.app)
    with httpx.Client() as client:
        for user in range(20):
            client.get(server.url(f"/users/{user}"))
    snapshot = wait_for(
        lambda: (
            (s := server.collect())["recent_requests"]
            and s["recent_requests"][-1].path == "/users/19"
            and s
        )
    )
    recent = [r for r in snapshot["recent_requests"] if r.route == "/users/{user_id}"]
    assert len(recent) == 20 and all(r.detailed and r.status == 200 for r in recent)
    assert snapshot["requests_detailed_every"] == 1 and snapshot["requests_undetailed"] == 0


def test_above_the_rate_requests_without_a_record_are_still_in_flight(
    live_server: Start,
) -> None:
    server = live_server(probes_app.app, config=RATIONED)
    with httpx.Client() as client:
        sent = overload(server, client)
        with concurrently(server, ["/hang?seconds=1.5"] * 5):
            hanging = wait_for(lambda: (r := in_flight(server, "/hang")) and len(r) == 5 and r)
            listed_only = [r for r in hanging if not r.detailed]
            assert len(listed_only) >= 4  # one in five at most has a record
            for info in listed_only:
                assert (info.method, info.route, info.phase, info.status) == (
                    "GET",
                    "/hang",
                    "handler",
                    None,
                )
                assert info.duration is not None and 0 <= info.duration < 5
                assert info.client is not None and info.task_id is not None
            first = listed_only[0]
            assert first.task_id is not None
            link = server.call_on_loop(lambda: _link_of_task(server, first.task_id))
            assert link == (first.id, "GET /hang")
        time.sleep(1.0)
        # A quiet second: the next request will be recorded in full, and the snapshot says so.
        assert server.collect()["requests_detailed_every"] == 1
        client.get(server.url("/hello"))  # the next window counts the last one's requests
    snapshot = server.collect()
    assert snapshot["requests_undetailed"] >= len(listed_only)
    hellos = [r for r in snapshot["recent_requests"] if r.path == "/hello"]
    assert 0 < len(hellos) < sent + 1  # the first second's in full, then a sample
    assert not any(r.path == "/hang" and not r.detailed for r in snapshot["recent_requests"])


def test_a_request_without_a_record_gets_one_for_its_background_work(
    live_server: Start,
) -> None:
    server = busy(live_server)
    with httpx.Client() as client:
        for _ in range(6):
            assert client.post(server.url("/dropped")).status_code == 200

    def dropped_jobs() -> list[object] | None:
        jobs = [
            job
            for job in server.collect()["background"]
            if job.function.endswith("record") and job.state == "dropped"
        ]
        return jobs if len(jobs) == 6 else None

    jobs = wait_for(dropped_jobs)
    request_ids = {job.request_id for job in jobs}  # type: ignore[attr-defined]
    assert None not in request_ids and len(request_ids) == 6
    recent = {r.id: r for r in server.collect()["recent_requests"] if r.path == "/dropped"}
    assert set(recent) == request_ids
    assert any(not r.detailed and r.status is None for r in recent.values())


def test_a_sync_endpoint_without_a_record_still_names_its_worker_thread(
    live_server: Start,
) -> None:
    server = busy(live_server)
    probes_app.release.clear()
    with concurrently(server, ["/sync-wait?seconds=5"] * 3):
        waiting = wait_for(
            lambda: (
                (r := in_flight(server, "/sync-wait"))
                and len(r) == 3
                and all(i.thread_ids for i in r)
                and r
            )
        )
        threads = {t.id: t for t in server.collect()["threads"]}
        for info in waiting:
            (worker,) = info.thread_ids
            assert threads[worker].request_id == info.id
        assert any(not info.detailed for info in waiting)
        probes_app.release.set()


def test_an_exception_that_escapes_a_request_without_a_record_is_recorded(
    live_server: Start,
) -> None:
    server = busy(live_server)
    for _ in range(3):  # uvicorn closes the connection after an error: one each
        assert httpx.post(server.url("/unhandled")).status_code == 500
    failed = wait_for(
        lambda: (
            (r := [i for i in server.collect()["recent_requests"] if i.path == "/unhandled"])
            and len(r) == 3
            and r
        )
    )
    assert all(r.error == "LookupError('nobody handles this')" for r in failed)
    assert any(not r.detailed for r in failed)
    stats = {s.route: s for s in server.collect()["routes"]}
    assert stats["/unhandled"].errors == 3
