"""Deadlines on uvloop, whose timers cannot be read: `asyncio.timeout()` scopes noted as they
are entered, anyio's cancel scopes read where anyio keeps them. Real tasks on a real uvloop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from inspector.agent import timeout_registry
from inspector.agent.deadlines import task_deadlines

uvloop = pytest.importorskip("uvloop")
TIMEOUT = 5.0


@pytest.fixture
def uv_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    timeout_registry.install()
    try:
        yield loop
    finally:
        timeout_registry.uninstall()
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


def _start(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
    async def create() -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        await asyncio.sleep(0.05)  # let it enter its scope
        return task

    return asyncio.run_coroutine_threadsafe(create(), loop).result(TIMEOUT)


async def _under_asyncio_timeout() -> None:
    async with asyncio.timeout(30):
        await asyncio.Event().wait()


async def _under_anyio_fail_after() -> None:
    with anyio.fail_after(20):
        await anyio.Event().wait()


async def _under_nested_scopes() -> None:
    with anyio.move_on_after(40):
        async with asyncio.timeout(12):
            await asyncio.Event().wait()


async def _without_a_deadline() -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [(_under_asyncio_timeout, 30), (_under_anyio_fail_after, 20), (_under_nested_scopes, 12)],
)
def test_a_wait_under_a_timeout_has_a_deadline(
    uv_loop: asyncio.AbstractEventLoop, waiting: Any, expected: float
) -> None:
    task = _start(uv_loop, waiting())
    deadlines = task_deadlines(uv_loop, {id(task): task})
    assert expected - 1 < deadlines[id(task)] <= expected


def test_a_wait_without_one_has_none(uv_loop: asyncio.AbstractEventLoop) -> None:
    task = _start(uv_loop, _without_a_deadline())
    assert task_deadlines(uv_loop, {id(task): task}) == {}


def test_uninstall_gives_asyncio_its_method_back() -> None:
    original = asyncio.timeouts.Timeout.__dict__["reschedule"]
    timeout_registry.install()
    timeout_registry.install()
    assert asyncio.timeouts.Timeout.__dict__["reschedule"] is not original
    timeout_registry.uninstall()
    assert asyncio.timeouts.Timeout.__dict__["reschedule"] is not original
    timeout_registry.uninstall()
    assert asyncio.timeouts.Timeout.__dict__["reschedule"] is original
