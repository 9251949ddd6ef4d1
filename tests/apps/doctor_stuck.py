"""Background tasks stuck forever: one waits on an Event nobody sets, producers wait on a full
queue whose consumer died on its first item."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

background: set[asyncio.Task[None]] = set()


async def warm_cache(ready: asyncio.Event) -> None:
    await ready.wait()  # doctor-test: event nobody sets


async def consume(jobs: asyncio.Queue[int]) -> None:
    item = await jobs.get()
    raise ValueError(f"cannot handle job {item}")  # doctor-test: consumer dies


async def produce(jobs: asyncio.Queue[int], first: int) -> None:
    for item in range(first, first + 100):
        await jobs.put(item)  # doctor-test: producer blocked


def keep(task: asyncio.Task[None]) -> None:
    background.add(task)
    task.add_done_callback(background.discard)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    jobs: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
    keep(asyncio.create_task(warm_cache(asyncio.Event()), name="warm_cache"))
    asyncio.create_task(consume(jobs), name="consumer")  # not kept: its failure goes unseen
    for first in (0, 1000):
        keep(asyncio.create_task(produce(jobs, first), name=f"producer-{first}"))
    yield
    for task in list(background):
        task.cancel()


app = FastAPI(lifespan=lifespan)


@app.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}
