"""Task failures nobody sees: a worker dying before any snapshot, gather's hidden exceptions, and
the creating line of a task collected while pending; and their healthy twins, which stay quiet."""

from __future__ import annotations

import gc
import inspect
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from inspector.model import ExceptionEvent
from tests.apps import probes_tasks_app as tasks_app
from tests.probes.conftest import LiveServer, wait_for

Start = Callable[..., LiveServer]


def line_of(function: Callable[..., object], text: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


def events(server: LiveServer, kind: str) -> list[ExceptionEvent]:
    return [e for e in server.collect()["exceptions"] if e.kind == kind]


def test_a_worker_dying_on_its_first_line_is_reported_with_its_creating_line(
    live_server: Start,
) -> None:
    server = live_server(tasks_app.app)
    server.call_on_loop(tasks_app.start_worker)
    [found] = wait_for(lambda: events(server, "task-exception-unretrieved"), timeout=5)
    assert found.task_name == "index-compactor" and found.error.type == "KeyError"
    assert found.location is not None and found.location.function == "compact_index"
    assert found.created_at is not None
    assert found.created_at.line == line_of(tasks_app.start_worker, "asyncio.create_task(")
    worker = tasks_app.workers[-1]
    assert worker._log_traceback  # read, never retrieved


def test_a_worker_whose_failure_another_task_awaits_is_not_reported(live_server: Start) -> None:
    server = live_server(tasks_app.app)
    server.call_on_loop(tasks_app.start_supervised_worker)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert events(server, "task-exception-unretrieved") == []
        time.sleep(0.1)


def test_an_exception_gather_marks_retrieved_unseen_is_reported(live_server: Start) -> None:
    server = live_server(tasks_app.app)
    assert httpx.post(server.url("/gather-hides")).json() == {"shelves": "fallback"}
    [found] = wait_for(lambda: events(server, "task-exception-unretrieved"))
    assert found.gathered and found.error.type == "IndexUnavailable"
    assert found.location is not None and found.location.function == "fails_later"
    assert found.request_label == "POST /gather-hides"
    assert found.created_at is not None
    assert found.created_at.line == line_of(tasks_app.gather_hides, "asyncio.gather(")
    time.sleep(0.2)
    assert len(events(server, "task-exception-unretrieved")) == 1  # the raised one is not


@pytest.mark.parametrize("path", ["/gather-all", "/wait-all"])
def test_a_request_still_reading_its_tasks_results_is_left_to_read_them(
    live_server: Start, path: str
) -> None:
    """gather(return_exceptions=True) and asyncio.wait read a child's exception only once the
    slowest child is done: until then a failed child is not unseen."""
    server = live_server(tasks_app.app)
    with httpx.Client() as client:
        sent = time.monotonic()
        answer: list[int] = []
        thread = threading.Thread(
            target=lambda: answer.append(client.post(server.url(path)).json()["failed"])
        )
        thread.start()
        while thread.is_alive() and time.monotonic() - sent < 5:
            assert events(server, "task-exception-unretrieved") == []  # a child failed early
            time.sleep(0.05)
        thread.join(5)
    assert answer == [1]
    assert events(server, "task-exception-unretrieved") == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_task_collected_while_pending_names_the_line_that_created_it(
    live_server: Start,
) -> None:
    server = live_server(tasks_app.app)
    assert httpx.post(server.url("/orphan")).status_code == 200
    server.call_on_loop(gc.collect)
    [found] = wait_for(lambda: events(server, "task-destroyed-pending"))
    assert found.request_label == "POST /orphan"
    assert found.created_at is not None
    assert found.created_at.line == line_of(tasks_app.orphan, "asyncio.create_task(")


def test_a_task_a_request_created_is_linked_to_the_line_that_created_it(
    live_server: Start,
) -> None:
    server = live_server(tasks_app.app)
    assert httpx.post(server.url("/watch")).status_code == 200
    assert server.context is not None
    watcher = tasks_app.watchers[-1]
    link = server.context.link_for(watcher)
    assert link is not None and link.request_label == "POST /watch"
    assert link.created_at is not None
    assert link.created_at.line == line_of(tasks_app.watch, "asyncio.create_task(")
    server.call_on_loop(watcher.cancel)


def test_a_gather_bound_by_name_before_the_agent_started_is_watched(live_server: Start) -> None:
    import tests.apps.probes_tasks_gather  # noqa: F401 - binds gather before the server starts

    server = live_server(tasks_app.app)
    assert httpx.post(server.url("/gather-by-name")).json() == {"shelves": "fallback"}
    [found] = wait_for(lambda: events(server, "task-exception-unretrieved"))
    assert found.gathered and found.location is not None
    assert found.location.function == "fails_later"


def test_a_worker_created_outside_requests_is_linked_to_its_creating_line_only(
    live_server: Start,
) -> None:
    server = live_server(tasks_app.app)
    worker = server.call_on_loop(tasks_app.start_worker)
    assert server.context is not None
    link = server.context.link_for(worker)
    assert link is not None and link.request_id is None
    assert link.created_at is not None
    assert link.created_at.line == line_of(tasks_app.start_worker, "asyncio.create_task(")
