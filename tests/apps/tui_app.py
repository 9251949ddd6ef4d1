"""The app the UI's end-to-end test attaches to: one endpoint blocks the loop, one parks a task."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI

app = FastAPI()
report_ready = asyncio.Event()
_parked: list[asyncio.Task[None]] = []


@app.get("/")
async def root() -> dict[str, bool]:
    return {"ok": True}


@app.get("/export")
async def export(seconds: float = 3.0) -> dict[str, float]:
    time.sleep(seconds)  # blocks the event loop: the banner must name this line
    return {"slept": seconds}


async def wait_for_report() -> None:
    await report_ready.wait()  # nothing ever sets it


@app.get("/park")
async def park() -> dict[str, int]:
    _parked.append(asyncio.create_task(wait_for_report(), name="waits-for-report"))
    return {"parked": len(_parked)}
