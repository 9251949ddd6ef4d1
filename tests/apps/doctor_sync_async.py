"""An endpoint that makes the loop wait for itself: `run_coroutine_threadsafe(...).result()` on
the loop thread. Its `result()` has a timeout so the server recovers after it."""

from __future__ import annotations

import asyncio
import concurrent.futures

from fastapi import FastAPI

app = FastAPI()


async def lookup() -> int:
    return 42


@app.get("/self-wait")
async def self_wait(seconds: float = 3.0) -> dict[str, str]:
    loop = asyncio.get_running_loop()
    try:
        asyncio.run_coroutine_threadsafe(lookup(), loop).result(timeout=seconds)  # marker: self
    except concurrent.futures.TimeoutError:
        return {"result": "timed out"}
    return {"result": "done"}


@app.get("/")
async def index() -> dict[str, bool]:
    return {"ok": True}
