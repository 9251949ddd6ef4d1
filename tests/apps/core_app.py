"""A small FastAPI app for the agent's end-to-end tests.

`/block` blocks the event loop with `time.sleep` inside `async def` (the classic mistake); the
tests look for the marked line in the agent's stall samples.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time

from fastapi import FastAPI

app = FastAPI()
_parked: list[asyncio.Task[None]] = []
_release = asyncio.Event()


@app.get("/")
async def root() -> dict[str, int]:
    return {"pid": os.getpid()}


@app.get("/block")
async def block(seconds: float = 1.0) -> dict[str, float]:
    time.sleep(seconds)  # BLOCKING-LINE: the agent must name this line
    return {"blocked": seconds}


async def _parked_forever(index: int) -> None:
    await _release.wait()


@app.get("/spawn")
async def spawn(count: int = 100) -> dict[str, int]:
    """Park `count` tasks on an event, so snapshots have something to report."""
    for index in range(count):
        _parked.append(asyncio.create_task(_parked_forever(index), name=f"parked-{index}"))
    return {"parked": len(_parked)}


@app.get("/gc")
async def collector() -> dict[str, object]:
    """What the cyclic garbage collector sees of this process: frozen start-up objects, and
    whether this module's own objects are still collected normally."""
    tracked = {id(obj) for obj in gc.get_objects()}
    return {
        "frozen": gc.get_freeze_count(),
        "app_tracked": id(collector) in tracked and id(app) in tracked,
        "uvicorn_tracked": id(_uvicorn_config_class()) in tracked,
    }


def _uvicorn_config_class() -> type:
    from uvicorn import Config

    return Config
