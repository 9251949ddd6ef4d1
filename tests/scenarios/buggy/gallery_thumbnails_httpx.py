"""Gallery service: thumbnails are rendered by an image service behind one shared httpx client.

Fault: the client's pool allows two connections and the image service is slow, so every
thumbnail request past the second queues for a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request

from tests.scenarios.spec import Scenario, hold

SCENARIO = Scenario(
    calls=(hold("/thumbnails/1"), hold("/thumbnails/2"), hold("/thumbnails/3", after=0.3, times=2))
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60)) as client:
        app.state.images = client
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/render/{photo_id}")
async def render(photo_id: int) -> dict[str, str]:
    await asyncio.sleep(30)  # the image service takes its time
    return {"thumbnail": f"/cdn/{photo_id}.webp"}


async def fetch_thumbnail(client: httpx.AsyncClient, base: str, photo_id: int) -> str:
    response = await client.get(f"{base}render/{photo_id}")  # bug: pool-exhausted
    return response.json()["thumbnail"]


@app.get("/thumbnails/{photo_id}")
async def thumbnail(photo_id: int, request: Request) -> dict[str, str]:
    url = await fetch_thumbnail(request.app.state.images, str(request.base_url), photo_id)
    return {"url": url}
