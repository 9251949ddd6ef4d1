"""Locks and semaphores of the app's own classes, taken in opposite orders: two deadlocks.

Like a lock-debugging helper does, the app puts a subclass of its own in `asyncio.Lock`'s and
`asyncio.Semaphore`'s place, so every `asyncio.Lock()` is one; its other primitives subclass
asyncio's and override `acquire`/`release`, handing over with `super()`.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import FastAPI


class TracedLock(asyncio.Lock):
    """Overrides `acquire` only: its `__dict__` has no `release`."""

    async def acquire(self) -> Literal[True]:
        return await super().acquire()


class TracedSemaphore(asyncio.Semaphore):
    async def acquire(self) -> Literal[True]:
        return await super().acquire()


asyncio.Lock = TracedLock  # type: ignore[misc]
asyncio.Semaphore = TracedSemaphore  # type: ignore[misc]


class CountingLock(asyncio.locks.Lock):
    def __init__(self) -> None:
        super().__init__()
        self.acquired = 0

    async def acquire(self) -> Literal[True]:
        result = await super().acquire()
        self.acquired += 1
        return result

    def release(self) -> None:
        super().release()


class PoolSlots(asyncio.BoundedSemaphore):
    """A bounded semaphore with a name, for the logs."""

    def __init__(self, name: str, value: int) -> None:
        super().__init__(value)
        self.name = name


app = FastAPI()
lock_a = asyncio.Lock()
lock_b = CountingLock()
slots_a = PoolSlots("a", 1)
slots_b = asyncio.Semaphore(1)
locks_held = asyncio.Barrier(2)
slots_held = asyncio.Barrier(2)


@app.get("/a-then-b")
async def a_then_b() -> dict[str, bool]:
    async with lock_a:  # doctor-test: lock taken a
        await locks_held.wait()
        async with lock_b:  # doctor-test: lock line a
            return {"ok": True}


@app.get("/b-then-a")
async def b_then_a() -> dict[str, bool]:
    async with lock_b:  # doctor-test: lock taken b
        await locks_held.wait()
        async with lock_a:  # doctor-test: lock line b
            return {"ok": True}


@app.get("/slots-a-then-b")
async def slots_a_then_b() -> dict[str, bool]:
    async with slots_a:  # doctor-test: semaphore taken a
        await slots_held.wait()
        async with slots_b:  # doctor-test: semaphore line a
            return {"ok": True}


@app.get("/slots-b-then-a")
async def slots_b_then_a() -> dict[str, bool]:
    async with slots_b:  # doctor-test: semaphore taken b
        await slots_held.wait()
        async with slots_a:  # doctor-test: semaphore line b
            return {"ok": True}


@app.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}
