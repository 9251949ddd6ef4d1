"""Quotes service: every wait for a market maker's answer runs under a deadline.

Healthy: the requests and the lifespan task below all wait on things nobody has set yet, but
each wait is bounded by `wait_for`, `asyncio.timeout`, or anyio's `fail_after`/`move_on_after`,
and none of those deadlines has passed while doctor watches: they are waiting, not stuck. It
runs on uvloop, whose timers cannot be read from outside.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(
    calls=(
        get("/quotes/health"),
        hold("/quotes/eurusd/firm", times=2),
        hold("/quotes/gbpusd/indicative", times=2),
        hold("/quotes/usdjpy/auction"),
        hold("/quotes/audusd/best-effort"),
    ),
    loop="uvloop",
    watch=5.0,
)


class MakerDesk:
    def __init__(self) -> None:
        self.firm: dict[str, asyncio.Event] = {}
        self.indicative: dict[str, anyio.Event] = {}
        self.auction_done = asyncio.Condition()
        self.ready = asyncio.Event()

    def firm_event(self, pair: str) -> asyncio.Event:
        return self.firm.setdefault(pair, asyncio.Event())

    def indicative_event(self, pair: str) -> anyio.Event:
        return self.indicative.setdefault(pair, anyio.Event())


desk = MakerDesk()


async def wait_for_desk_ready() -> None:
    try:
        await asyncio.wait_for(desk.ready.wait(), timeout=60)
    except TimeoutError:
        pass


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    waiter = asyncio.create_task(wait_for_desk_ready(), name="desk-ready")
    yield
    waiter.cancel()


app = FastAPI(lifespan=lifespan)


@app.get("/quotes/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/quotes/{pair}/firm")
async def firm_quote(pair: str) -> dict[str, object]:
    try:
        async with asyncio.timeout(30):
            await desk.firm_event(pair).wait()
    except TimeoutError:
        return {"pair": pair, "quote": None}
    return {"pair": pair, "quote": "firm"}


@app.get("/quotes/{pair}/indicative")
async def indicative_quote(pair: str) -> dict[str, object]:
    try:
        with anyio.fail_after(30):
            await desk.indicative_event(pair).wait()
    except TimeoutError:
        return {"pair": pair, "quote": None}
    return {"pair": pair, "quote": "indicative"}


@app.get("/quotes/{pair}/auction")
async def auction(pair: str) -> dict[str, object]:
    async def closed() -> None:
        async with desk.auction_done:
            await desk.auction_done.wait()

    try:
        await asyncio.wait_for(closed(), timeout=25)
    except TimeoutError:
        return {"pair": pair, "filled": False}
    return {"pair": pair, "filled": True}


@app.get("/quotes/{pair}/best-effort")
async def best_effort(pair: str) -> dict[str, object]:
    quote = None
    with anyio.move_on_after(20):
        await desk.indicative_event(pair).wait()
        quote = "indicative"
    return {"pair": pair, "quote": quote}
