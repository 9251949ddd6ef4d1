"""Exceptions nobody saw, each tied to its request, without changing what Python prints."""

from __future__ import annotations

import gc
import inspect
import json
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from inspector.model import ExceptionEvent
from tests.apps import probes_app
from tests.probes.conftest import LiveServer, wait_for

Start = Callable[..., LiveServer]
REPO = __file__.rsplit("/tests/", 1)[0]


def line_of(function: Callable[..., object], text: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


def event(server: LiveServer, kind: str, label: str) -> ExceptionEvent | None:
    return next(
        (e for e in server.collect()["exceptions"] if e.kind == kind and e.request_label == label),
        None,
    )


def test_a_failed_fire_and_forget_task_is_reported_with_its_request(live_server: Start) -> None:
    server = live_server(probes_app.app)
    assert httpx.post(server.url("/fire-and-forget")).status_code == 200
    server.call_on_loop(gc.collect)
    found = wait_for(lambda: event(server, "task-exception-unretrieved", "POST /fire-and-forget"))
    assert found.error.type == "ValueError"
    assert found.error.message == "fire-and-forget task failed"
    assert found.location is not None and found.location.function == "fails_later"
    assert found.task_name is not None and found.task_name.startswith("Task-")
    request = next(r for r in server.collect()["recent_requests"] if r.path == "/fire-and-forget")
    assert found.request_id == request.id


def test_a_failed_task_that_is_still_referenced_is_reported(live_server: Start) -> None:
    server = live_server(probes_app.app)
    assert httpx.post(server.url("/kept-task")).status_code == 200
    found = wait_for(lambda: event(server, "task-exception-unretrieved", "POST /kept-task"))
    assert found.location is not None and found.location.function == "fails_while_kept"
    kept = probes_app.kept_tasks[-1]
    assert kept.done() and kept._log_traceback  # type: ignore[attr-defined]  # still unretrieved
    assert found.count == 1
    server.collect()
    assert event(server, "task-exception-unretrieved", "POST /kept-task").count == 1  # type: ignore[union-attr]


@pytest.mark.filterwarnings("ignore:coroutine 'send_email' was never awaited")
def test_a_forgotten_await_is_reported_at_its_line(live_server: Start) -> None:
    server = live_server(probes_app.app)
    assert httpx.post(server.url("/forgot-await")).status_code == 200
    found = wait_for(lambda: event(server, "coroutine-never-awaited", "POST /forgot-await"))
    assert found.error.message == "coroutine 'send_email' was never awaited"
    assert found.location is not None
    assert found.location.file == probes_app.__file__
    assert found.location.line == line_of(probes_app.forgot_await, 'send_email("b@example.com")')


def test_errors_logged_with_a_traceback_are_reported_with_their_request(
    live_server: Start,
) -> None:
    server = live_server(probes_app.app)
    assert httpx.post(server.url("/logged")).status_code == 200
    logged = wait_for(lambda: event(server, "logged-error", "POST /logged"))
    assert logged.error.type == "KeyError"
    assert logged.location is not None
    assert logged.location.line == line_of(probes_app.logged, '{}["missing"]')
    # uvicorn logs an unhandled endpoint error after the request's middleware returned.
    assert httpx.post(server.url("/unhandled")).status_code == 500
    unhandled = wait_for(lambda: event(server, "logged-error", "POST /unhandled"))
    assert unhandled.error.type == "LookupError"
    assert unhandled.location is not None and unhandled.location.function == "unhandled"


def test_an_error_logged_inside_an_except_block_is_reported_with_its_exception(
    live_server: Start,
) -> None:
    server = live_server(probes_app.app)
    assert httpx.post(server.url("/logged-message")).status_code == 200
    logged = wait_for(lambda: event(server, "logged-error", "POST /logged-message"))
    assert logged.error.type == "ValueError"
    assert logged.location is not None
    assert logged.location.line == line_of(probes_app.logged_message, 'int("twelve")')
    assert logged.logged_at is not None
    assert logged.logged_at.line == line_of(probes_app.logged_message, "quantity rejected")
    assert [e.kind for e in server.collect()["exceptions"]] == ["logged-error"]


def test_identical_events_are_folded_with_a_count(live_server: Start) -> None:
    server = live_server(probes_app.app)
    with httpx.Client() as client:
        for _ in range(3):
            client.post(server.url("/logged"))
    found = wait_for(
        lambda: (
            (e := event(server, "logged-error", "POST /logged")) is not None and e.count == 3 and e
        )
    )
    assert len([e for e in server.collect()["exceptions"] if e.kind == "logged-error"]) == 1
    last = [r for r in server.collect()["recent_requests"] if r.path == "/logged"][-1]
    assert found.request_id == last.id  # the latest occurrence names its request


@pytest.mark.parametrize("python", [sys.executable])
def test_the_stdlib_prints_exactly_what_it_prints_without_the_probes(python: str) -> None:
    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [python, "-m", "tests.apps.probes_stderr", mode],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )

    with_probes, without = run("on"), run("off")
    assert with_probes.returncode == without.returncode == 0, with_probes.stderr
    assert "Task exception was never retrieved" in without.stderr
    assert "RuntimeWarning: coroutine 'forgotten' was never awaited" in without.stderr
    assert "an error with its traceback" in without.stderr
    assert with_probes.stderr == without.stderr
    kinds = {e["kind"]: e for e in json.loads(with_probes.stdout)}
    assert kinds["task-exception-unretrieved"]["function"] == "fails"
    assert kinds["coroutine-never-awaited"]["function"] == "main"
    assert kinds["logged-error"]["function"] == "log_an_error"


def test_a_record_made_with_odd_arguments_still_comes_out_of_the_factory(
    live_server: Start,
) -> None:
    """Code that builds a bare record (to learn LogRecord's attribute names) gets one back."""
    import logging

    live_server(probes_app.app)
    record = logging.getLogRecordFactory()(None, None, "", 0, "", (), None)
    assert record.levelno is None
