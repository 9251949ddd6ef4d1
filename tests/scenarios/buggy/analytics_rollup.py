"""Analytics service: page-view events are rolled up into percentiles and cached.

Faults: the rollup computes its weighted means in pure Python on the event loop; the cache
checkpoint pickles the whole event store on the event loop.
"""

from __future__ import annotations

import pickle
import random

from fastapi import APIRouter, FastAPI

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(get("/events/count"), get("/rollups/latency"), post("/cache/checkpoint", after=1.2))
)

rng = random.Random(7)
events = [
    {"page": f"/p/{n % 500}", "ms": rng.random() * 900, "user": f"u{n % 9000}", "tags": [n % 7]}
    for n in range(150_000)
]
users = {f"u{n}": {"name": f"user {n}", "seen": [n, n + 1]} for n in range(9000)}
router = APIRouter()


def latency_rollup() -> dict[str, float]:
    """Mean latency per page over the last hours, each hour weighted by its traffic."""
    totals: dict[str, float] = {}
    for hour in range(1, 15):
        for event in events:
            page = event["page"]
            totals[page] = totals.get(page, 0.0) + event["ms"] / hour  # bug: loop-blocked
    return {page: total / len(events) for page, total in totals.items()}


@router.get("/events/count")
async def count() -> dict[str, int]:
    return {"events": len(events)}


@router.get("/rollups/latency")
async def rollup() -> dict[str, float]:
    return latency_rollup()


@router.post("/cache/checkpoint")
async def checkpoint() -> dict[str, int]:
    blob = pickle.dumps({"events": events, "users": users}, protocol=0)  # bug: loop-blocked
    return {"bytes": len(blob)}


app = FastAPI()
app.include_router(router, prefix="")
