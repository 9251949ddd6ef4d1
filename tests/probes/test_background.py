"""Starlette/FastAPI background tasks: what ran, what failed, what never ran and why."""

from __future__ import annotations

import gc
import inspect
from collections.abc import Callable

import httpx
import pytest

from inspector.model import BackgroundJob
from tests.apps import probes_app
from tests.probes.conftest import LiveServer, wait_for

Start = Callable[..., LiveServer]


def line_of(function: Callable[..., object], text: str) -> int:
    """The line number of the first line of `function` containing `text`."""
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


def jobs_of(server: LiveServer, path: str) -> list[BackgroundJob]:
    request = next((r for r in server.collect()["recent_requests"] if r.path == path), None)
    if request is None:
        return []
    return [job for job in server.collect()["background"] if job.request_id == request.id]


def settled(server: LiveServer, path: str, count: int) -> list[BackgroundJob]:
    return wait_for(
        lambda: (
            (jobs := jobs_of(server, path))
            and len(jobs) == count
            and all(job.state not in ("queued", "running") for job in jobs)
            and jobs
        )
    )


def test_injected_tasks_replaced_by_the_responses_own_background_are_dropped(
    live_server: Start,
) -> None:
    server = live_server(probes_app.app)
    probes_app.ran.clear()
    assert httpx.post(server.url("/dropped")).status_code == 200

    injected, own = settled(server, "/dropped", 2)
    assert probes_app.ran == ["own"]  # behaviour unchanged: FastAPI still drops "injected"
    assert injected.state == "dropped" and own.state == "done"
    assert injected.call_site is not None
    assert injected.call_site.line == line_of(probes_app.dropped, 'add_task(record, "injected")')
    assert injected.call_site.file == probes_app.__file__
    assert injected.reason is not None and "own background (record)" in injected.reason
    assert "response.background is None" in injected.reason
    assert own.call_site is not None
    assert own.call_site.line == line_of(probes_app.dropped, "BackgroundTask(record")
    assert own.started_at is not None and own.finished_at is not None
    assert injected.dispatch == own.dispatch == "threadpool"


def test_tasks_queued_by_an_endpoint_that_raised_are_dropped(live_server: Start) -> None:
    server = live_server(probes_app.app)
    probes_app.ran.clear()
    assert httpx.post(server.url("/raises")).status_code == 404

    (audit,) = settled(server, "/raises", 1)
    assert audit.state == "dropped" and "audit" not in probes_app.ran
    assert audit.reason is not None
    assert "the endpoint raised HTTPException(status_code=404" in audit.reason
    assert audit.cause is not None
    assert audit.cause.line == line_of(probes_app.raises, "raise HTTPException")


def test_a_failing_task_is_failed_with_its_traceback_and_the_next_is_skipped(
    live_server: Start,
) -> None:
    server = live_server(probes_app.app)
    probes_app.ran.clear()
    assert (
        httpx.post(server.url("/failing-chain"), headers={"Connection": "close"}).status_code == 200
    )

    boom, second = settled(server, "/failing-chain", 2)
    assert "second" not in probes_app.ran
    assert boom.state == "failed" and boom.function == "boom"
    assert boom.error is not None and boom.error.type == "RuntimeError"
    assert boom.error.message == "the first background job failed"
    assert boom.error.traceback[-1].function == "boom"
    assert second.state == "skipped"
    assert second.reason is not None and second.reason.startswith("boom (queued at ")
    assert f"probes_app.py:{line_of(probes_app.failing_chain, 'add_task(boom)')}" in second.reason
    events = [e for e in server.collect()["exceptions"] if e.kind == "background-failed"]
    (event,) = [e for e in events if e.error.type == "RuntimeError"]
    assert event.request_label == "POST /failing-chain" and event.task_name == "boom"
    assert event.location is not None and event.location.function == "boom"


@pytest.mark.filterwarnings("ignore:coroutine 'send_email' was never awaited")
def test_a_coroutine_object_is_flagged_when_it_is_queued(live_server: Start) -> None:
    server = live_server(probes_app.app)
    assert (
        httpx.post(server.url("/coroutine-queued"), headers={"Connection": "close"}).status_code
        == 200
    )

    (job,) = settled(server, "/coroutine-queued", 1)
    assert job.flagged == (
        "add_task() got a coroutine object, not a function: the coroutine will never run; "
        'pass the function and its arguments: add_task(send_email, "a@example.com")'
    )
    assert job.call_site is not None
    assert job.call_site.line == line_of(probes_app.coroutine_queued, "add_task(send_email(")
    assert job.state == "failed" and job.dispatch == "threadpool"
    server.call_on_loop(gc.collect)  # the dropped coroutine warns now, inside this test


def test_dispatch_says_loop_for_async_functions(live_server: Start) -> None:
    server = live_server(probes_app.app)
    httpx.post(server.url("/slow-background"))
    job = wait_for(
        lambda: (
            (jobs := jobs_of_in_flight(server, "/slow-background"))
            and jobs[0].state == "running"
            and jobs[0]
        )
    )
    assert job.dispatch == "loop" and job.function == "slow_job" and job.state == "running"
    assert job.task_id is not None
    httpx.post(server.url("/finish-slow-background"))
    (done,) = settled(server, "/slow-background", 1)
    assert done.state == "done"


def jobs_of_in_flight(server: LiveServer, path: str) -> list[BackgroundJob]:
    snapshot = server.collect()
    request = next((r for r in snapshot["requests"] if r.path == path), None)
    if request is None:
        return []
    return [job for job in snapshot["background"] if job.request_id == request.id]


def test_the_task_running_a_job_is_linked_to_its_request_and_job(live_server: Start) -> None:
    import asyncio

    server = live_server(probes_app.app)
    httpx.post(server.url("/slow-background"))
    job = wait_for(
        lambda: (
            (jobs := jobs_of_in_flight(server, "/slow-background"))
            and jobs[0].state == "running"
            and jobs[0]
        )
    )

    def link() -> tuple[int | None, str | None, str | None] | None:
        assert server.context is not None
        task = next(t for t in asyncio.all_tasks() if id(t) == job.task_id)
        found = server.context.link_for(task)
        return (found.request_id, found.request_label, found.background_label) if found else None

    assert server.call_on_loop(link) == (job.request_id, "POST /slow-background", "slow_job")
    httpx.post(server.url("/finish-slow-background"))
    settled(server, "/slow-background", 1)


def test_a_task_created_while_serving_a_request_is_linked_to_it(live_server: Start) -> None:
    import asyncio

    server = live_server(probes_app.app)
    httpx.post(server.url("/spawn-sleeper"))
    request = wait_for(
        lambda: next(
            (r for r in server.collect()["recent_requests"] if r.path == "/spawn-sleeper"), None
        )
    )

    def link() -> tuple[int | None, str | None] | None:
        assert server.context is not None
        task = next(t for t in asyncio.all_tasks() if t.get_name() == "sleeper")
        found = server.context.link_for(task)
        return (found.request_id, found.request_label) if found else None

    assert server.call_on_loop(link) == (request.id, "POST /spawn-sleeper")
