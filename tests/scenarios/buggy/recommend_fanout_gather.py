"""Recommendations service: a page's shelves come from three backends queried at once.

Fault: when the trending backend times out, gather raises its error at once and the endpoint
answers with a fallback; the similar-items backend fails a moment later, and gather marks that
exception retrieved although nobody ever saw it: its broken query is invisible.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get

SCENARIO = Scenario(calls=(get("/recommendations/u-42"), get("/recommendations/u-7", after=0.5)))

app = FastAPI()


class BackendTimeout(Exception):
    pass


class QueryError(Exception):
    pass


class TrendingBackend:
    async def top(self, user: str) -> list[str]:
        await asyncio.sleep(0.01)
        raise BackendTimeout("trending backend did not answer within 10 ms")


class SimilarItemsBackend:
    async def similar(self, user: str) -> list[str]:
        await asyncio.sleep(0.2)
        embedding = await self._embedding(user)
        return [f"sku-{value}" for value in embedding]

    async def _embedding(self, user: str) -> list[int]:
        await asyncio.sleep(0.01)
        rejected = f"vector index rejected the query for {user}: dimension 384 != 768"
        raise QueryError(rejected)  # bug: task-exception-unretrieved


class HistoryBackend:
    async def recent(self, user: str) -> list[str]:
        await asyncio.sleep(0.05)
        return ["sku-1", "sku-2"]


trending, similar, history = TrendingBackend(), SimilarItemsBackend(), HistoryBackend()


@app.get("/recommendations/{user}")
async def recommendations(user: str) -> dict[str, list[str]]:
    try:
        top, alike, recent = await asyncio.gather(
            trending.top(user), similar.similar(user), history.recent(user)
        )
    except BackendTimeout:
        return {"shelves": ["bestsellers"]}
    return {"shelves": [*top, *alike, *recent]}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
