"""Geocoding service: addresses and coordinates are resolved through a blocking vendor SDK.

Fault: both lookups hand the SDK's blocking call to the loop's default executor
(`run_in_executor(None, ...)` and `asyncio.to_thread`), which has a few threads only: a burst
takes them all and every later lookup queues behind them.
"""

from __future__ import annotations

import asyncio
import functools
import time

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(
    # A few reverse lookups first, then a burst of forward ones: both calls hold threads, and
    # the burst queues behind them.
    calls=(
        hold("/reverse?lat=47.37&lon=8.54", times=3),
        hold("/geocode?address=1+Main+St", times=24, after=0.4),
        get("/health"),
    ),
    loop="uvloop",
)

app = FastAPI()


class VendorGeocoder:
    """The vendor's SDK: synchronous HTTP under the hood."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def forward(self, address: str) -> tuple[float, float]:
        time.sleep(self.timeout)  # bug: threadpool-saturated
        return (47.37, 8.54)

    def reverse(self, lat: float, lon: float) -> str:
        time.sleep(self.timeout)  # bug: threadpool-saturated
        return "Bahnhofstrasse 1, Zurich"


sdk = VendorGeocoder(timeout=6.0)


@app.get("/geocode")
async def geocode(address: str) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    lat, lon = await loop.run_in_executor(None, functools.partial(sdk.forward, address))
    return {"lat": lat, "lon": lon}


@app.get("/reverse")
async def reverse(lat: float, lon: float) -> dict[str, str]:
    return {"address": await asyncio.to_thread(sdk.reverse, lat, lon)}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
