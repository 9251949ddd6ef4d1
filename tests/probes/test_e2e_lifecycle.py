"""The request lifecycle end to end: `inspector run` in a real uvicorn subprocess, read over the
agent's real termui socket."""

from __future__ import annotations

import inspect
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from inspector.model import Snapshot
from tests.apps import probes_app, probes_swallowed
from tests.helpers.server import RunningServer, inspector_run
from tests.helpers.telnet import TermuiClient

pytestmark = pytest.mark.e2e

APP = "tests.apps.probes_app:app"


def line_of(function: Callable[..., object], text: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


def post(server: RunningServer, path: str) -> int:
    request = urllib.request.Request(server.url(path), method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def get(server: RunningServer, path: str) -> int:
    with urllib.request.urlopen(server.url(path), timeout=30) as response:
        return int(response.status)


def snapshot(client: TermuiClient) -> Snapshot:
    message = client.command("inspector-snapshot")
    assert message.type == "snapshot", message
    payload: Snapshot = message.payload
    return payload


def poll(client: TermuiClient, check: Callable[[Snapshot], Any], timeout: float = 10.0) -> Any:
    """Take snapshots until `check(snapshot)` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        current = snapshot(client)
        value = check(current)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


def request_of(current: Snapshot, path: str) -> Any:
    return next((r for r in reversed(current.recent_requests) if r.path == path), None)


def jobs_of(current: Snapshot, path: str) -> list[Any]:
    request = request_of(current, path)
    if request is None:
        return []
    return [job for job in current.background if job.request_id == request.id]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with inspector_run(APP, tmp_path_factory.mktemp("lifecycle"), loop="asyncio") as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[TermuiClient]:
    with TermuiClient(*server.agent_address()) as connected:
        yield connected


def test_a_task_dropped_by_the_responses_own_background_is_reported_at_its_line(
    server: RunningServer, client: TermuiClient
) -> None:
    assert post(server, "/dropped") == 200
    injected, own = poll(
        client,
        lambda s: (
            (jobs := jobs_of(s, "/dropped")) and len(jobs) == 2 and jobs[1].state == "done" and jobs
        ),
    )
    assert injected.state == "dropped"
    assert injected.call_site.file == probes_app.__file__
    assert injected.call_site.line == line_of(probes_app.dropped, 'add_task(record, "injected")')
    assert "own background" in (injected.reason or "")


def test_a_failing_task_has_its_traceback_and_the_next_one_is_skipped(
    server: RunningServer, client: TermuiClient
) -> None:
    assert post(server, "/failing-chain") == 200
    boom, second = poll(
        client,
        lambda s: (
            (jobs := jobs_of(s, "/failing-chain"))
            and len(jobs) == 2
            and jobs[1].state == "skipped"
            and jobs
        ),
    )
    assert boom.state == "failed" and boom.error.type == "RuntimeError"
    assert boom.error.traceback[-1].function == "boom"
    assert boom.error.traceback[-1].file == probes_app.__file__
    assert "boom" in (second.reason or "") and "Starlette stops" in (second.reason or "")


def test_fifty_sync_requests_exhaust_the_forty_thread_tokens(
    server: RunningServer, client: TermuiClient
) -> None:
    with ThreadPoolExecutor(max_workers=50) as clients:
        answers = [clients.submit(get, server, "/sync-wait?seconds=20") for _ in range(50)]
        try:
            current: Snapshot = poll(
                client,
                lambda s: (
                    s.threadpool is not None
                    and s.threadpool.borrowed == 40
                    and s.threadpool.waiting == 10
                    and s
                ),
                timeout=20,
            )
            assert current.threadpool is not None and current.threadpool.total == 40
            by_id = {r.id: r for r in current.requests}
            borrower_paths = [by_id[b.request_id].path for b in current.threadpool.borrowers]
            assert borrower_paths == ["/sync-wait"] * 40
            workers = [t for t in current.threads if t.pool == "anyio" and t.busy]
            assert len(workers) == 40
            assert all(any(f.function == "sync_wait" for f in t.stack) for t in workers)
        finally:
            get(server, "/release")
        assert [answer.result(timeout=30) for answer in answers] == [200] * 50


def test_a_failing_fire_and_forget_task_is_reported_and_still_logged(
    server: RunningServer, client: TermuiClient
) -> None:
    assert post(server, "/fire-and-forget") == 200
    event = poll(
        client,
        lambda s: next(
            (
                e
                for e in s.exceptions
                if e.kind == "task-exception-unretrieved"
                and e.request_label == "POST /fire-and-forget"
            ),
            None,
        ),
    )
    assert event.error.message == "fire-and-forget task failed"
    assert event.location.function == "fails_later"
    deadline = time.monotonic() + 5
    while "Task exception was never retrieved" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    assert "ValueError: fire-and-forget task failed" in server.output()


def test_a_forgotten_await_is_reported_with_its_line(
    server: RunningServer, client: TermuiClient
) -> None:
    assert post(server, "/forgot-await") == 200
    event = poll(
        client,
        lambda s: next(
            (
                e
                for e in s.exceptions
                if e.kind == "coroutine-never-awaited" and e.request_label == "POST /forgot-await"
            ),
            None,
        ),
    )
    assert event.location.file == probes_app.__file__
    assert event.location.line == line_of(probes_app.forgot_await, 'send_email("b@example.com")')
    assert "RuntimeWarning: coroutine 'send_email' was never awaited" in server.output()


def _python312() -> str | None:
    if sys.version_info >= (3, 12):
        return sys.executable
    return os.environ.get("INSPECTOR_PYTHON312") or None


def test_a_swallowed_exception_is_reported_with_its_except_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = _python312()
    if python is None:
        pytest.skip("needs Python >= 3.12 (set INSPECTOR_PYTHON312)")
    monkeypatch.setattr(sys, "executable", python)  # the server helper runs sys.executable
    with inspector_run(APP, tmp_path, args=["--trace-exceptions"]) as running:
        monkeypatch.undo()
        assert post(running, "/swallowed") == 200
        with TermuiClient(*running.agent_address()) as connected:
            event = poll(
                connected,
                lambda s: next(
                    (
                        e
                        for e in s.exceptions
                        if e.kind == "exception-swallowed" and e.request_label == "POST /swallowed"
                    ),
                    None,
                ),
            )
    assert event.error.type == "ValueError"
    assert event.location.file == probes_app.__file__
    assert event.location.line == line_of(probes_app.swallowed, "except ValueError:")
    assert probes_swallowed  # the tracer's own unit scenarios live beside the app
