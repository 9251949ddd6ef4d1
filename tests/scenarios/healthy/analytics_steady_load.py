"""Analytics ingest: small events posted all the time by many clients.

Healthy: the loop is busy under steady traffic, but the time goes to serving requests, not to
a line of the app that could be made cheaper; at most an info that the worker is at capacity.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from tests.scenarios.spec import Scenario, load

SCENARIO = Scenario(calls=(load("/events/pageview", clients=6, seconds=5.0),), watch=6.0)

app = FastAPI()
counts: dict[str, int] = {}


class Accepted(BaseModel):
    kind: str
    total: int


@app.get("/events/{kind}")
async def ingest(kind: str) -> Accepted:
    counts[kind] = counts.get(kind, 0) + 1
    return Accepted(kind=kind, total=counts[kind])
