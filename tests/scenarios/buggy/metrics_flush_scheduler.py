"""Metrics service: counters are flushed to the time-series store when a flush is requested.

Fault: at startup the scheduler starts one flusher per shard with create_task and keeps no
reference; each flusher waits on a future that only a weak registry holds, so the garbage
collector destroys them while pending and no shard is ever flushed.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(
        post("/counters/requests?by=3", times=4),
        get("/counters?expand=history", times=6, after=0.5),
        get("/counters?expand=history", times=6, after=1.5),
    ),
    loop="uvloop",
)

SHARDS = 4
counters: dict[str, int] = {}
flush_requests: weakref.WeakValueDictionary[int, asyncio.Future[None]] = (
    weakref.WeakValueDictionary()
)


async def flusher(shard: int) -> None:
    while True:
        signal = asyncio.get_running_loop().create_future()
        flush_requests[shard] = signal
        await signal
        counters.clear()


class FlushScheduler:
    def start(self) -> None:
        for shard in range(SHARDS):
            asyncio.create_task(flusher(shard))  # bug: task-destroyed-pending


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    FlushScheduler().start()
    yield


app = FastAPI(lifespan=lifespan)


@app.post("/counters/{name}")
async def increment(name: str, by: int = 1) -> dict[str, int]:
    counters[name] = counters.get(name, 0) + by
    return {name: counters[name]}


@app.get("/counters")
async def read_counters(expand: str = "") -> dict[str, int]:
    history = [{"name": n, "value": v, "step": s} for s in range(600) for n, v in counters.items()]
    return {"counters": len(counters), "history": len(history)}
