"""Cache service: a periodic janitor expires entries shard by shard, in short tasks.

Healthy: the janitor starts a burst of short tasks every tenth of a second, all of which finish;
each write starts a short replication task that ends a moment after its request. Tasks come and
go all the time, and none piles up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(post("/cache/k1?value=v", times=20), get("/cache/k1", times=10, after=1.0)),
    watch=4.0,
)

SHARDS = 16
cache: list[dict[str, tuple[str, float]]] = [{} for _ in range(SHARDS)]
replicas: dict[str, str] = {}
replicating: set[asyncio.Task[None]] = set()


async def expire_shard(shard: int) -> None:
    now = time.monotonic()
    entries = cache[shard]
    for key in [key for key, (_, expires) in entries.items() if expires < now]:
        del entries[key]
    await asyncio.sleep(0.01)


async def janitor() -> None:
    while True:
        async with asyncio.TaskGroup() as group:
            for shard in range(SHARDS):
                group.create_task(expire_shard(shard))
        await asyncio.sleep(0.1)


async def replicate(key: str, value: str) -> None:
    await asyncio.sleep(0.3)
    replicas[key] = value


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    cleaner = asyncio.create_task(janitor(), name="cache-janitor")
    yield
    cleaner.cancel()


app = FastAPI(lifespan=lifespan)


@app.post("/cache/{key}")
async def put(key: str, value: str) -> dict[str, str]:
    cache[hash(key) % SHARDS][key] = (value, time.monotonic() + 30)
    task = asyncio.create_task(replicate(key, value))
    replicating.add(task)
    task.add_done_callback(replicating.discard)
    return {"key": key}


@app.get("/cache/{key}")
async def get_value(key: str) -> dict[str, str | None]:
    entry = cache[hash(key) % SHARDS].get(key)
    return {"value": entry[0] if entry else None}
