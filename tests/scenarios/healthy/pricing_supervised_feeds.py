"""Pricing service: rate feeds run as workers under a supervisor that restarts any that crash,
and a quote asks every provider at once and keeps the answers that came.

Healthy: a crashed feed's exception is read by its supervisor (asyncio.wait) and logged without
a traceback before the feed restarts; a provider that fails early is read from asyncio.wait and
as_completed once the slower ones have answered. Nothing fails unseen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get

SCENARIO = Scenario(
    calls=(get("/quotes/EURUSD", times=3), get("/quotes/EURUSD/fastest", times=3, after=0.5)),
    watch=4.0,
)

log = logging.getLogger("pricing")
rates: dict[str, float] = {}
restarts: dict[str, int] = {}


class FeedDisconnected(Exception):
    pass


async def run_feed(name: str) -> None:
    await asyncio.sleep(0.3)
    rates[name] = 1.08
    raise FeedDisconnected(f"{name} closed the stream")


async def supervise(names: list[str]) -> None:
    running = {asyncio.create_task(run_feed(name)): name for name in names}
    while True:
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            name = running.pop(task)
            log.warning("feed %s stopped: %s; restarting", name, task.exception())
            restarts[name] = restarts.get(name, 0) + 1
            running[asyncio.create_task(run_feed(name))] = name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    supervisor = asyncio.create_task(supervise(["ecb", "fed"]), name="feed-supervisor")
    yield
    supervisor.cancel()


app = FastAPI(lifespan=lifespan)


class ProviderDown(Exception):
    pass


async def ask(provider: str, pair: str) -> float:
    await asyncio.sleep({"fast": 0.05, "slow": 0.8}.get(provider, 0.02))
    if provider == "flaky":
        raise ProviderDown(f"{provider} is down")
    return 1.08


@app.get("/quotes/{pair}")
async def quote(pair: str) -> dict[str, object]:
    asks = {asyncio.create_task(ask(p, pair)): p for p in ("flaky", "fast", "slow")}
    done, _ = await asyncio.wait(asks)
    prices = {asks[t]: t.result() for t in done if t.exception() is None}
    return {"pair": pair, "prices": prices, "failed": len(done) - len(prices)}


@app.get("/quotes/{pair}/fastest")
async def fastest(pair: str) -> dict[str, object]:
    answers = []
    for next_answer in asyncio.as_completed([ask(p, pair) for p in ("flaky", "fast", "slow")]):
        try:
            answers.append(await next_answer)
        except ProviderDown as error:
            log.warning("quote for %s: %s", pair, error)
        await asyncio.sleep(0.1)  # each answer is recorded before the next is read
    return {"pair": pair, "answers": len(answers)}
