"""Where a lock holder took what it holds, read from its source, for real tasks on a real loop
(asyncio and uvloop) where one holds a Lock through a helper while another waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspector.agent.lock_sites import lock_sites
from inspector.model import Frame
from tests.agent.test_tasks import Inspected, LoopThread, inspecting, line_of, running_app


@pytest.fixture(params=["asyncio", "uvloop"])
def app(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    yield from running_app(request.param)


@pytest.fixture
def inspected(app: LoopThread) -> Iterator[Inspected]:
    yield from inspecting(app)


async def slow_helper(release: asyncio.Event) -> None:
    await release.wait()


async def hold(lock: asyncio.Lock, release: asyncio.Event) -> None:
    async with lock:  # takes-the-lock
        await asyncio.sleep(0)
        await slow_helper(release)


async def queue_for(lock: asyncio.Lock) -> None:
    async with lock:
        pass


def test_the_holder_names_its_async_with_line(app: LoopThread, inspected: Inspected) -> None:
    lock, release = app.call(asyncio.Lock), app.call(asyncio.Event)
    holder = app.spawn(hold(lock, release), name="holder")
    waiter = app.spawn(queue_for(lock), name="waiter")
    try:
        inspected.waiting(waiter, "lock")
        info = inspected.task(holder)
        assert [f.line for f in info.holding_at] == [line_of("takes-the-lock", __file__)]
        assert inspected.task(waiter).holding_at == ()
    finally:
        app.call(release.set)


def test_lines_outside_any_locked_section_give_nothing() -> None:
    line = line_of("takes-the-lock", __file__) - 2
    assert lock_sites((Frame(str(Path(__file__)), line, "hold", None),)) == ()
    assert lock_sites((Frame("/nonexistent/app.py", 3, "f", None),)) == ()
