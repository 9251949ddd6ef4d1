"""Every request takes one lock and holds it across a slow call: the requests queue for it."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

app = FastAPI()
lock = asyncio.Lock()


async def fetch_rates() -> dict[str, float]:
    await asyncio.sleep(3)  # marker: slow
    return {"EUR": 1.0}


@app.get("/convert")
async def convert() -> dict[str, float]:
    async with lock:
        rates = await fetch_rates()  # marker: held
    return rates
