"""Market data service: prices are pushed to browsers as server-sent events.

Healthy: the SSE endpoint keeps sending a tick every few hundred milliseconds for as long as
the client listens; the trade feed stream waits on its queue between trades. Both are long
requests by design.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from tests.scenarios.spec import Scenario, get, stream

SCENARIO = Scenario(
    calls=(get("/symbols"), stream("/ticks/ACME", times=2), stream("/trades/ACME")),
    loop="uvloop",
    watch=5.0,
)

trades: asyncio.Queue[dict[str, object]] = asyncio.Queue()


async def trade_source() -> None:
    rng = random.Random(1)
    while True:
        await asyncio.sleep(1.5)
        await trades.put({"symbol": "ACME", "qty": rng.randint(1, 100)})


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    source = asyncio.create_task(trade_source(), name="trade-source")
    yield
    source.cancel()


app = FastAPI(lifespan=lifespan)


@app.get("/symbols")
async def symbols() -> list[str]:
    return ["ACME"]


async def ticks(symbol: str) -> AsyncIterator[str]:
    price = 100.0
    rng = random.Random(symbol)
    while True:
        price += rng.uniform(-0.5, 0.5)
        yield f"data: {json.dumps({'symbol': symbol, 'price': round(price, 2)})}\n\n"
        await asyncio.sleep(0.3)


async def trade_events() -> AsyncIterator[str]:
    while True:
        trade = await trades.get()
        yield f"event: trade\ndata: {json.dumps(trade)}\n\n"


@app.get("/ticks/{symbol}")
async def tick_stream(symbol: str) -> StreamingResponse:
    return StreamingResponse(ticks(symbol), media_type="text/event-stream")


@app.get("/trades/{symbol}")
async def trade_stream(symbol: str) -> StreamingResponse:
    return StreamingResponse(trade_events(), media_type="text/event-stream")
