"""A healthy app with the usual moving parts: async and sync endpoints, background tasks, an
idle queue consumer, a periodic job and a shutdown signal. Doctor must find nothing here."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import BackgroundTasks, FastAPI

jobs: asyncio.Queue[int] = asyncio.Queue(maxsize=1000)
processed = 0


async def consume() -> None:
    global processed
    while True:
        await jobs.get()
        processed += 1
        jobs.task_done()


async def tick() -> None:
    while True:
        await asyncio.sleep(0.5)


async def wait_for_shutdown(stop: asyncio.Event) -> None:
    await stop.wait()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(consume(), name="consumer"),
        asyncio.create_task(tick(), name="ticker"),
        asyncio.create_task(wait_for_shutdown(stop), name="shutdown-watch"),
    ]
    yield
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


app = FastAPI(lifespan=lifespan)


def record(n: int) -> None:
    time.sleep(0.001)


@app.get("/async")
async def async_endpoint() -> dict[str, int]:
    await asyncio.sleep(0.005)
    await jobs.put(1)
    return {"processed": processed}


@app.get("/sync")
def sync_endpoint() -> dict[str, bool]:
    time.sleep(0.005)
    return {"ok": True}


@app.post("/background")
async def with_background(background_tasks: BackgroundTasks) -> dict[str, bool]:
    background_tasks.add_task(record, 1)
    return {"queued": True}
