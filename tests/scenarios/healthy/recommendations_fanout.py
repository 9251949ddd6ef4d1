"""Recommendations service: each page asks three sources at once in a TaskGroup and counts
its requests under a lock.

Healthy: the TaskGroup's children all answer quickly, and the hit counter's lock is held for a
moment by each of many concurrent requests: short queues that drain at once, not contention.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get

SCENARIO = Scenario(
    calls=(
        get("/recommendations/u-1", times=25),
        get("/recommendations/u-2", times=25, after=1.0),
        get("/stats", after=2.0),
    ),
    watch=5.0,
)


class HitCounter:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.hits: dict[str, int] = {}

    async def record(self, user: str) -> None:
        async with self._lock:
            count = self.hits.get(user, 0)
            await asyncio.sleep(0.002)  # write-through to the cache
            self.hits[user] = count + 1


class Recommender:
    async def from_history(self, user: str) -> list[str]:
        await asyncio.sleep(0.05)
        return [f"{user}-again"]

    async def from_trending(self) -> list[str]:
        await asyncio.sleep(0.08)
        return ["trending-1"]

    async def from_similar(self, user: str) -> list[str]:
        await asyncio.sleep(0.03)
        return [f"{user}-similar"]

    async def recommend(self, user: str) -> list[str]:
        async with asyncio.TaskGroup() as group:
            history = group.create_task(self.from_history(user))
            trending = group.create_task(self.from_trending())
            similar = group.create_task(self.from_similar(user))
        return history.result() + trending.result() + similar.result()


counter = HitCounter()
recommender = Recommender()
app = FastAPI()


@app.get("/recommendations/{user}")
async def recommendations(user: str) -> dict[str, object]:
    await counter.record(user)
    return {"user": user, "items": await recommender.recommend(user)}


@app.get("/stats")
async def stats() -> dict[str, int]:
    return counter.hits
