"""Inventory service: stock reservations wait for the warehouse to confirm each hold.

Faults: the confirmation wait has no timeout, so a reservation whose confirmation never comes
hangs its request forever; the stock export compresses the whole catalogue on the event loop.
"""

from __future__ import annotations

import asyncio
import time
import zlib

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(calls=(hold("/reservations/sku-17"), get("/export/stock")))

app = FastAPI()
confirmations: dict[str, asyncio.Event] = {}
catalogue = {f"sku-{n}": n * 3 for n in range(2000)}


@app.post("/reservations/{sku}/confirm")
async def confirm(sku: str) -> dict[str, bool]:
    confirmations.setdefault(sku, asyncio.Event()).set()
    return {"confirmed": True}


@app.get("/reservations/{sku}")
async def reserve(sku: str) -> dict[str, str]:
    confirmed = confirmations.setdefault(sku, asyncio.Event())
    await confirmed.wait()  # bug: hanging-request|stuck-task
    return {"sku": sku, "status": "held"}


@app.get("/export/stock")
async def export_stock() -> dict[str, int]:
    payload = repr(catalogue).encode() * 40
    started = time.perf_counter()
    while time.perf_counter() - started < 0.4:
        payload = zlib.compress(payload, 9)  # bug: loop-blocked
    return {"bytes": len(payload)}
