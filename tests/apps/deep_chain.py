"""A task whose await chain is 500 coroutines deep, parked on an Event nobody sets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

DEPTH = 500
tree_loaded = asyncio.Event()
_kept: list[asyncio.Task[None]] = []


async def walk(depth: int) -> None:
    if depth == 1:
        await tree_loaded.wait()  # doctor-test: deep leaf
        return
    await walk(depth - 1)  # doctor-test: deep recursion


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    _kept.append(asyncio.create_task(walk(DEPTH), name="tree-walker"))
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def index() -> dict[str, bool]:
    return {"ok": True}
