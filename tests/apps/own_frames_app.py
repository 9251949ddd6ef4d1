"""An app whose requests wait in the places the inspector's own code wraps: an async endpoint
(under the request middleware), a sync endpoint (in a worker thread, through the threadpool
probe), a task that dies with nobody looking, and an endpoint whose exception uvicorn logs.
Its snapshots and its log must show none of the inspector's frames, and the sync endpoint's
task must end at the line its thread runs."""

from __future__ import annotations

import asyncio
import threading

from fastapi import FastAPI

app = FastAPI()
_release = asyncio.Event()
_thread_release = threading.Event()
_dropped: list[asyncio.Task[None]] = []


@app.get("/hang")
async def hang() -> dict[str, bool]:
    await _release.wait()  # HANG-LINE
    return {"released": True}


@app.get("/sync-wait")
def sync_wait() -> dict[str, bool]:
    released = _thread_release.wait(30)  # SYNC-LINE
    return {"released": released}


async def _fail() -> None:
    raise KeyError("order-id")  # RAISE-LINE


@app.get("/fail")
async def fail() -> dict[str, bool]:
    task = asyncio.create_task(_fail())
    await asyncio.sleep(0.05)
    del task  # nobody retrieves its exception
    return {"ok": True}


@app.get("/crash")
async def crash() -> dict[str, bool]:
    raise ValueError("inventory out of sync")  # CRASH-LINE


@app.get("/release")
async def release() -> dict[str, bool]:
    _release.set()
    _thread_release.set()
    return {"released": True}
