"""`own_loop.waits_for_own_loop`, on a real loop thread that waits for itself (bounded by the
waits' own timeouts) and on one that waits for a real worker thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
from collections.abc import Callable

import pytest

from inspector.agent.own_loop import waits_for_own_loop

uvloop = pytest.importorskip("uvloop")


async def _answer() -> int:
    return 42


def _seen_while(make_loop: Callable[[], asyncio.AbstractEventLoop], blocking: Callable) -> bool:
    """Run `blocking(loop)` on a loop thread and ask whether it waits for its own loop."""
    loop = make_loop()
    started = threading.Event()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:

        def block() -> None:
            started.set()
            try:
                blocking(loop)
            except concurrent.futures.TimeoutError:
                pass

        loop.call_soon_threadsafe(block)
        assert started.wait(2)
        time.sleep(0.1)
        frames = sys._current_frames()
        others = [f for ident, f in frames.items() if ident != thread.ident]
        return waits_for_own_loop(frames.get(thread.ident or 0), loop, others)
    finally:
        # Let the loop run what the blocked callback scheduled before it stops.
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), loop).result(timeout=3)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(3)
        loop.close()


def _split_over_two_lines(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.run_coroutine_threadsafe(_answer(), loop)
    pending.result(timeout=0.5)


def _waits_with_concurrent_wait(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.run_coroutine_threadsafe(_answer(), loop)
    concurrent.futures.wait([pending], timeout=0.5)


@pytest.mark.parametrize("make_loop", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_loop_in_concurrent_wait_for_its_own_coroutine_is_seen(make_loop: Callable) -> None:
    assert _seen_while(make_loop, _waits_with_concurrent_wait)


def _waits_for_a_worker(loop: asyncio.AbstractEventLoop) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(time.sleep, 0.5).result(timeout=1)


@pytest.mark.parametrize("make_loop", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_loop_waiting_for_a_coroutine_it_must_run_itself_is_seen(make_loop: Callable) -> None:
    assert _seen_while(make_loop, _split_over_two_lines)


def _waits_for_a_worker_that_waits_for_it(loop: asyncio.AbstractEventLoop) -> None:
    def fetch() -> int:
        return asyncio.run_coroutine_threadsafe(_answer(), loop).result(timeout=0.5)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(fetch).result(timeout=1)


@pytest.mark.parametrize("make_loop", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_loop_waiting_for_a_worker_that_waits_for_the_loop_is_seen(make_loop: Callable) -> None:
    assert _seen_while(make_loop, _waits_for_a_worker_that_waits_for_it)


@pytest.mark.parametrize("make_loop", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_loop_waiting_for_a_worker_thread_is_not(make_loop: Callable) -> None:
    assert not _seen_while(make_loop, _waits_for_a_worker)


def test_no_frame_or_an_odd_loop_is_simply_not_recognised() -> None:
    assert waits_for_own_loop(None, asyncio.new_event_loop()) is False
    frame = sys._getframe()
    assert waits_for_own_loop(frame, object()) is False  # type: ignore[arg-type]
