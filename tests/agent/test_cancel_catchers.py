"""The handlers that took a cancellation a task outlived: read from its functions' source, for
a real task on a real loop that catches `CancelledError` and goes on."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Iterator

import pytest

from inspector.agent.cancel_catchers import cancel_catchers
from inspector.model import Frame
from tests.agent.test_tasks import Inspected, LoopThread, inspecting, line_of, running_app

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is 3.11+")


async def stubborn(stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.sleep(0.02)
        except BaseException:  # takes-the-cancellation
            continue


async def careful() -> None:
    with contextlib.suppress(asyncio.CancelledError):  # suppresses-it
        await asyncio.sleep(30)
    try:
        await asyncio.sleep(0)
    except ValueError:
        pass


@pytest.fixture
def app() -> Iterator[LoopThread]:
    yield from running_app("asyncio")


@pytest.fixture
def inspected(app: LoopThread) -> Iterator[Inspected]:
    yield from inspecting(app)


def test_a_task_that_went_on_after_cancel_names_the_handler_that_took_it(
    app: LoopThread, inspected: Inspected
) -> None:
    stop = threading.Event()
    task = app.spawn(stubborn(stop), name="stubborn")
    inspected.collect()
    app.call(task.cancel)
    try:
        info = inspected.wait_for(task, lambda t: t.cancelled_for is not None)
    finally:
        stop.set()
    assert [f.line for f in info.cancel_catchers] == [line_of("takes-the-cancellation", __file__)]
    assert info.cancel_catchers[0].function.endswith("stubborn")


def test_tasks_without_a_pending_cancellation_carry_none(
    app: LoopThread, inspected: Inspected
) -> None:
    stop = threading.Event()
    task = app.spawn(stubborn(stop), name="left-alone")
    try:
        assert inspected.waiting(task, "sleep").cancel_catchers == ()
    finally:
        stop.set()


def test_suppress_counts_and_other_handlers_do_not() -> None:
    here = Frame(__file__, line_of("suppresses-it", __file__) + 1, "careful", None)
    assert [f.line for f in cancel_catchers((here,))] == [line_of("suppresses-it", __file__)]


def test_a_frame_whose_source_cannot_be_read_gives_nothing() -> None:
    assert cancel_catchers((Frame("/nonexistent/app.py", 12, "handler", None),)) == ()
