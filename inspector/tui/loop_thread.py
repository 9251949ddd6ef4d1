"""Provides `LoopThread`: an asyncio loop of its own, run on a worker thread, stoppable from any.

Both pollers (`Poller`, `FleetPoller`) keep their connections and their decoding off the UI's
loop this way; this holds the scaffolding they share: `run` (blocks), `wake` and `stop` (any
thread), and a `_sleep` that `wake` cuts short.
"""

from __future__ import annotations

import asyncio
import threading


class LoopThread:
    """Runs `_body` on a loop of its own until `stop()`; every method but `run` is thread-safe."""

    def __init__(self) -> None:
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._main_task: asyncio.Task[None] | None = None
        self._started = threading.Event()

    def wake(self) -> None:
        """Cut the current wait short."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed in between
                pass

    def stop(self) -> None:
        self._stopping = True
        loop, task = self._loop, self._main_task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass

    def run(self) -> None:
        """Run until `stop()`; blocks, so call it on a worker thread."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._main_task = asyncio.current_task()
        self._on_loop_started()
        self._started.set()
        try:
            await self._body()
        except asyncio.CancelledError:
            pass
        finally:
            await self._cleanup()

    def _on_loop_started(self) -> None:
        """Create loop-bound state; runs on the loop before `_started` is set."""

    async def _body(self) -> None:
        raise NotImplementedError

    async def _cleanup(self) -> None:
        """Release what `_body` held; runs on the loop however `_body` ended."""

    async def _sleep(self, seconds: float | None) -> None:
        """Wait `seconds` (None: until woken), cut short by `wake()`."""
        assert self._wake is not None
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass
