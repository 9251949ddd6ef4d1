"""Reporting service: reports read from the database through the app's own connection pool.

Fault: the report keeps its database connection while it waits for the slow PDF renderer, so
four report requests hold all four connections and every other query waits for one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, hold


class DatabasePool:
    """At most `max_size` connections open at once."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._slots = asyncio.Semaphore(max_size)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[dict[str, int]]:
        async with self._slots:
            yield {"open": 1}


SCENARIO = Scenario(
    calls=(hold("/reports/monthly", times=4), hold("/customers/7", after=0.4, times=2))
)

app = FastAPI()
db = DatabasePool(max_size=4)


async def render_pdf(rows: list[int]) -> bytes:
    await asyncio.sleep(30)  # the renderer is a slow external service
    return b"%PDF"


@app.get("/reports/monthly")
async def monthly_report() -> dict[str, int]:
    async with db.connection():
        rows = list(range(100))
        pdf = await render_pdf(rows)  # still holding the connection
    return {"bytes": len(pdf)}


@app.get("/customers/{customer_id}")
async def customer(customer_id: int) -> dict[str, int]:
    async with db.connection():  # bug: pool-exhausted
        return {"id": customer_id}
