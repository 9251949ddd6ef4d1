"""Search service: a query fans out to every index shard in a TaskGroup and merges the hits.

Faults: shard replies are matched to waiting queries by request id, and a shard that is being
rebalanced never replies, so the query hangs inside its TaskGroup (the child waits with no
timeout); the index snapshot endpoint serializes the whole in-memory index on the event loop.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(
    calls=(get("/search/health"), hold("/search?q=boots"), get("/index/snapshot", after=0.3)),
    loop="uvloop",
)


class ShardClient:
    """Talks to one shard; replies come back through `deliver`."""

    def __init__(self, shard: int, rebalancing: bool = False) -> None:
        self.shard = shard
        self.rebalancing = rebalancing
        self._pending: dict[int, asyncio.Future[list[str]]] = {}
        self._next_id = 0

    async def query(self, text: str) -> list[str]:
        self._next_id += 1
        reply: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = reply
        if not self.rebalancing:
            asyncio.get_running_loop().call_later(0.01, self.deliver, self._next_id, [text])
        hits = await reply  # bug: hanging-request
        return [f"shard{self.shard}:{hit}" for hit in hits]

    def deliver(self, query_id: int, hits: list[str]) -> None:
        reply = self._pending.pop(query_id, None)
        if reply is not None and not reply.done():
            reply.set_result(hits)


class SearchCluster:
    def __init__(self) -> None:
        self.shards = [ShardClient(0), ShardClient(1, rebalancing=True), ShardClient(2)]

    async def search(self, text: str) -> list[str]:
        tasks = []
        async with asyncio.TaskGroup() as group:
            for shard in self.shards:
                tasks.append(group.create_task(shard.query(text)))
        return sorted(hit for task in tasks for hit in task.result())


cluster = SearchCluster()
index = {
    f"doc-{n}": {"title": f"Trail boot {n}", "tags": ["outdoor", "boots", str(n)]}
    for n in range(60000)
}


def get_cluster() -> SearchCluster:
    return cluster


router = APIRouter()


@router.get("/search/health")
async def health() -> dict[str, int]:
    return {"shards": len(cluster.shards)}


@router.get("/search")
async def search(
    q: str, cluster: Annotated[SearchCluster, Depends(get_cluster)]
) -> dict[str, object]:
    return {"q": q, "hits": await cluster.search(q)}


@router.get("/index/snapshot")
async def snapshot() -> dict[str, int]:
    total = 0
    for _ in range(4):
        body = json.dumps(index, sort_keys=True, indent=1)  # bug: loop-blocked
        total += len(body)
    return {"bytes": total}


app = FastAPI()
app.include_router(router)
