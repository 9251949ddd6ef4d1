"""Market data service: clients follow tickers over a websocket or server-sent events.

Healthy: each connection runs a pump task fed by a shared publisher; the pump is cancelled when
its connection ends, a disconnect is expected and handled narrowly, and waits for the next price
are bounded by a timeout. Many tasks live at once, all tied to connections still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from tests.scenarios.spec import Scenario, stream, websocket

SCENARIO = Scenario(
    calls=(websocket("/ws/tickers/ACME", times=12), stream("/sse/tickers/ACME", times=12)),
    loop="uvloop",
    watch=4.0,
    run_args=("--trace-exceptions",),
)

subscribers: set[asyncio.Queue[float]] = set()


async def publish() -> None:
    price = 100.0
    while True:
        price += 0.25
        for queue in list(subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(price)
        await asyncio.sleep(0.1)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    publisher = asyncio.create_task(publish(), name="ticker-publisher")
    yield
    publisher.cancel()


app = FastAPI(lifespan=lifespan)


async def pump(queue: asyncio.Queue[float], out: asyncio.Queue[str], symbol: str) -> None:
    while True:
        try:
            price = await asyncio.wait_for(queue.get(), timeout=5)
        except TimeoutError:
            continue
        await out.put(json.dumps({"symbol": symbol, "price": price}))


@app.websocket("/ws/tickers/{symbol}")
async def follow(ws: WebSocket, symbol: str) -> None:
    await ws.accept()
    prices: asyncio.Queue[float] = asyncio.Queue(maxsize=100)
    out: asyncio.Queue[str] = asyncio.Queue()
    subscribers.add(prices)
    pumping = asyncio.create_task(pump(prices, out, symbol))
    try:
        while True:
            await ws.send_text(await out.get())
    except WebSocketDisconnect:
        return
    finally:
        subscribers.discard(prices)
        pumping.cancel()


@app.get("/sse/tickers/{symbol}")
async def sse(symbol: str) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        prices: asyncio.Queue[float] = asyncio.Queue(maxsize=100)
        out: asyncio.Queue[str] = asyncio.Queue()
        subscribers.add(prices)
        pumping = asyncio.create_task(pump(prices, out, symbol))
        try:
            while True:
                yield f"data: {await out.get()}\n\n"
        finally:
            subscribers.discard(prices)
            pumping.cancel()

    return StreamingResponse(events(), media_type="text/event-stream")
