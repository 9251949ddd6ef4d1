"""Media service: thumbnails come from an image service through a small httpx pool.

Healthy: bursts briefly queue for one of the pool's connections, but every call is quick, so no
request waits long; the pool is doing its job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request

from tests.scenarios.spec import Scenario, get, load

SCENARIO = Scenario(
    calls=(get("/thumbnails/1", times=12), load("/thumbnails/2", clients=6, seconds=3.0)),
    watch=5.0,
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=3)) as client:
        app.state.images = client
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/render/{photo_id}")
async def render(photo_id: int) -> dict[str, str]:
    await asyncio.sleep(0.02)
    return {"thumbnail": f"/cdn/{photo_id}.webp"}


@app.get("/thumbnails/{photo_id}")
async def thumbnail(photo_id: int, request: Request) -> dict[str, str]:
    client: httpx.AsyncClient = request.app.state.images
    response = await client.get(f"{request.base_url}render/{photo_id}")
    return response.json()
