"""The app every benchmark serves: a hello world, a realistic endpoint, and test hooks.

Environment switches (set by the harness, never needed by hand):

``BENCH_AIOMONITOR_PORTS=TERMUI,WEBUI,CONSOLE``
    start aiomonitor with ``hook_task_factory=True`` in the lifespan (the configuration the
    architecture notes measured at ~0.55x throughput), on these ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel


class FakeDB:
    """An async database: each query is one await on the loop, as with a real driver."""

    def __init__(self) -> None:
        self.rows = {n: {"id": n, "name": f"customer-{n}", "tier": n % 3} for n in range(1000)}

    async def fetch_customer(self, customer_id: int) -> dict[str, Any]:
        await asyncio.sleep(0)
        return self.rows.get(customer_id % 1000, {})


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    monitor = None
    ports = os.environ.get("BENCH_AIOMONITOR_PORTS")
    if ports:
        import aiomonitor

        termui, webui, console = (int(p) for p in ports.split(","))
        monitor = aiomonitor.start_monitor(
            asyncio.get_running_loop(),
            hook_task_factory=True,
            port=termui,
            webui_port=webui,
            console_port=console,
            console_enabled=False,
        )
    try:
        yield
    finally:
        if monitor is not None:
            monitor.close()


app = FastAPI(lifespan=lifespan)
db = FakeDB()
parked: list[asyncio.Task[None]] = []
release = asyncio.Event()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


class OrderLine(BaseModel):
    sku: str
    quantity: int
    price_cents: int


class Order(BaseModel):
    customer_id: int
    currency: str = "EUR"
    lines: list[OrderLine]
    note: str | None = None


@app.post("/orders")
async def create_order(order: Order) -> dict[str, Any]:
    customer = await db.fetch_customer(order.customer_id)
    total = sum(line.quantity * line.price_cents for line in order.lines)
    return {"customer": customer, "total_cents": total, "lines": len(order.lines)}


async def count_visit() -> None:
    await asyncio.sleep(0)


@app.get("/bg")
async def with_background(background: BackgroundTasks) -> dict[str, bool]:
    background.add_task(count_visit)
    return {"queued": True}


# --- hooks for the snapshot and stall benchmarks -----------------------------------------------


async def _level3() -> None:
    await release.wait()


async def _level2() -> None:
    await _level3()


async def _level1() -> None:
    await _level2()


@app.post("/spawn")
async def spawn(n: int) -> dict[str, int]:
    """Park `n` tasks on an Event, each three coroutines deep."""
    global release
    if release.is_set():
        release = asyncio.Event()
    for _ in range(n):
        parked.append(asyncio.create_task(_level1()))
    await asyncio.sleep(0)
    return {"parked": len(parked)}


@app.post("/release")
async def release_parked() -> dict[str, int]:
    count = len(parked)
    release.set()
    await asyncio.gather(*parked)
    parked.clear()
    return {"released": count}


@app.get("/block")
async def block(seconds: float) -> dict[str, float]:
    time.sleep(seconds)  # bench: stall
    return {"blocked": seconds}
