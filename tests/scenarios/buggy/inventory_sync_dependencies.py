"""Inventory service: every endpoint gets a connection from a blocking pool through a sync
dependency, and the exports run on the loop's default executor.

Faults: the sync dependency blocks while the legacy pool hands out a connection, holding one of
anyio's threads each; a burst fills the threadpool. The CSV export hands its blocking query to
the default executor, which a burst fills as well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(
    calls=(
        hold("/stock/sku-1", times=46),
        hold("/exports/stock.csv", times=40),
        get("/health"),
    )
)

app = FastAPI()


class LegacyPool:
    def __init__(self, latency: float) -> None:
        self.latency = latency

    def checkout(self) -> str:
        time.sleep(self.latency)  # bug: threadpool-saturated
        return "conn"

    def release(self, connection: str) -> None:
        pass


pool = LegacyPool(latency=6.0)


def connection() -> Iterator[str]:
    conn = pool.checkout()
    try:
        yield conn
    finally:
        pool.release(conn)


class StockReport:
    def query(self) -> list[str]:
        time.sleep(6.0)  # bug: threadpool-saturated
        return ["sku-1,12"]

    async def render(self) -> str:
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(None, self.query)
        return "\n".join(rows)


report = StockReport()


@app.get("/stock/{sku}")
async def stock(sku: str, conn: str = Depends(connection)) -> dict[str, int]:
    return {"on_hand": await run_in_threadpool(len, sku)}


@app.get("/exports/stock.csv")
async def export() -> dict[str, int]:
    return {"bytes": len(await report.render())}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
