"""Notification service: clients long-poll for their next notification under a deadline.

Healthy: every wait has a timeout that has not expired yet; doctor must not call them hanging.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, hold

SCENARIO = Scenario(calls=(hold("/notifications/next", times=3),), watch=4.0)

app = FastAPI()
inbox: asyncio.Queue[str] = asyncio.Queue()


@app.get("/notifications/next")
async def next_notification() -> dict[str, str | None]:
    try:
        return {"message": await asyncio.wait_for(inbox.get(), timeout=20)}
    except TimeoutError:
        return {"message": None}
