"""A worker that swallows its cancellation, and one that is cancelled by timeouts all the time
and is healthy: only the first is a finding."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI

app = FastAPI()
workers: dict[str, asyncio.Task[None]] = {}


async def stubborn() -> None:
    while True:
        try:
            await asyncio.sleep(0.5)  # marker: swallowed
        except BaseException:  # takes CancelledError too
            continue


async def polite() -> None:
    """Runs each step under a short timeout: asyncio cancels and uncancels it every time."""
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.05):
                await asyncio.sleep(1)


@app.post("/start")
async def start() -> dict[str, int]:
    workers["stubborn"] = asyncio.create_task(stubborn())
    workers["polite"] = asyncio.create_task(polite())
    return {"started": len(workers)}


@app.post("/stop")
async def stop() -> dict[str, bool]:
    workers["stubborn"].cancel()
    return {"cancelled": True}
