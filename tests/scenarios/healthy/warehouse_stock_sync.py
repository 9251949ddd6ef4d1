"""Warehouse service: stock movements are applied by a consumer started in the lifespan, and
the carrier list is refreshed periodically.

Healthy: the consumer idles on `Queue.get()` between movements, the restock dispatcher waits
for its next wake-up call, the refresher sleeps between refreshes, and the housekeeping task
waits for the shutdown signal: all normal, long waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(
        post("/movements", '{"sku": "s-1", "delta": 4}'),
        get("/stock/s-1", after=0.2),
        get("/carriers", after=2.0),
    ),
    watch=5.0,
)


class Warehouse:
    def __init__(self) -> None:
        self.stock: dict[str, int] = {}
        self.movements: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.carriers: list[str] = []
        self.shutting_down = asyncio.Event()
        self.restock_wakeup = asyncio.Event()
        self.restocks: list[str] = []

    async def apply_movements(self) -> None:
        while True:
            sku, delta = await self.movements.get()
            self.stock[sku] = self.stock.get(sku, 0) + delta
            if self.stock[sku] < 0:
                self.restock_wakeup.set()
            self.movements.task_done()

    async def dispatch_restocks(self) -> None:
        while True:
            await self.restock_wakeup.wait()
            self.restock_wakeup.clear()
            self.restocks += [sku for sku, count in self.stock.items() if count < 0]

    async def refresh_carriers(self) -> None:
        while True:
            await asyncio.sleep(0.05)  # the carrier directory
            self.carriers = ["parcelco", "freightly"]
            await asyncio.sleep(30)

    async def housekeeping(self) -> None:
        await self.shutting_down.wait()
        self.stock.clear()


warehouse = Warehouse()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    tasks = [
        asyncio.create_task(warehouse.apply_movements(), name="movements"),
        asyncio.create_task(warehouse.dispatch_restocks(), name="restocks"),
        asyncio.create_task(warehouse.refresh_carriers(), name="carrier-refresh"),
        asyncio.create_task(warehouse.housekeeping(), name="housekeeping"),
    ]
    yield
    warehouse.shutting_down.set()
    for task in tasks:
        task.cancel()


app = FastAPI(lifespan=lifespan)


def get_warehouse() -> Warehouse:
    return warehouse


WarehouseDep = Annotated[Warehouse, Depends(get_warehouse)]


@app.post("/movements")
async def move(movement: dict[str, str | int], wh: WarehouseDep) -> dict[str, int]:
    await wh.movements.put((str(movement["sku"]), int(movement["delta"])))
    return {"queued": wh.movements.qsize()}


@app.get("/stock/{sku}")
async def stock(sku: str, wh: WarehouseDep) -> dict[str, int]:
    return {sku: wh.stock.get(sku, 0)}


@app.get("/carriers")
async def carriers(wh: WarehouseDep) -> list[str]:
    return wh.carriers
