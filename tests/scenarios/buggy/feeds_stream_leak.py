"""Feed reader: fetches partner feeds as streams and keeps only the first chunk for a preview.

Fault: the preview reads one chunk of a streamed response and keeps the response open so that
"more" can resume it, but nobody ever asks for more: each preview keeps its connection, and
after two previews the client's pool is empty and every feed fetch waits for a connection no
task will give back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(
    calls=(get("/previews/a"), get("/previews/b"), hold("/feeds/c", after=0.8, times=2)),
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=2)) as client:
        app.state.feeds = client
        yield


app = FastAPI(lifespan=lifespan)
resumable: dict[str, tuple[httpx.Response, AsyncIterator[bytes]]] = {}


@app.get("/partner/{name}/feed")
async def partner_feed(name: str) -> StreamingResponse:
    async def items() -> AsyncIterator[bytes]:
        for n in range(1000):
            yield f"<item>{name}-{n}</item>".encode()
            await asyncio.sleep(0.05)

    return StreamingResponse(items(), media_type="application/xml")


@app.get("/previews/{name}")
async def preview(name: str, request: Request) -> dict[str, str]:
    client: httpx.AsyncClient = request.app.state.feeds
    feed = client.build_request("GET", f"{request.base_url}partner/{name}/feed")
    response = await client.send(feed, stream=True)
    chunks = response.aiter_bytes()
    resumable[name] = (response, chunks)  # kept open for GET /previews/{name}/more
    first = await anext(chunks, b"")
    return {"preview": first[:40].decode()}


@app.get("/previews/{name}/more")
async def more(name: str) -> dict[str, str]:
    response, chunks = resumable.pop(name)
    try:
        return {"more": (await anext(chunks, b""))[:400].decode()}
    finally:
        await response.aclose()


@app.get("/feeds/{name}")
async def feed(name: str, request: Request) -> dict[str, int]:
    client: httpx.AsyncClient = request.app.state.feeds
    response = await client.get(f"{request.base_url}partner/{name}/feed")  # bug: pool-exhausted
    return {"bytes": len(response.content)}
