"""Order events service: a consumer started at startup applies events from the broker queue.

Faults: the consumer, kept in a module global, dies on the first malformed event and the queue
silently fills up; the audit hook of each order update starts a task with ensure_future that
fails on an unknown actor, after the request is long gone.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(
    calls=(
        post("/events", '{"order": "o-1", "status": "paid"}'),
        post("/events", '{"order": "o-2"}', after=0.3),
        post("/orders/o-1/status/shipped?actor=robot", after=0.3),
    ),
    loop="uvloop",
)

app = FastAPI()
events: asyncio.Queue[str] = asyncio.Queue()
orders: dict[str, str] = {}
consumer: asyncio.Task[None] | None = None
ACTORS = {"alice", "bob"}


class EventApplier:
    def apply(self, raw: str) -> None:
        event = json.loads(raw)
        orders[event["order"]] = event["status"]  # bug: task-exception-unretrieved


async def consume(applier: EventApplier) -> None:
    while True:
        raw = await events.get()
        applier.apply(raw)


@app.on_event("startup")
async def start_consumer() -> None:
    global consumer
    consumer = asyncio.ensure_future(consume(EventApplier()))


async def audit(order: str, actor: str) -> None:
    await asyncio.sleep(0.01)
    if actor not in ACTORS:
        denied = f"unknown actor {actor!r} changed {order}"
        raise PermissionError(denied)  # bug: task-exception-unretrieved


@app.post("/events", status_code=202)
async def publish(event: dict[str, str]) -> dict[str, int]:
    await events.put(json.dumps(event))
    return {"queued": events.qsize()}


@app.post("/orders/{order}/status/{status}")
async def set_status(order: str, status: str, actor: str) -> dict[str, str]:
    orders[order] = status
    asyncio.ensure_future(audit(order, actor))
    return {"order": order, "status": status}
