"""Geo service: addresses are validated against a gazetteer that a refresher thread reloads,
and delivery endpoints are resolved before a route is planned.

Faults: the async endpoints take the gazetteer's `threading.Lock`, which the refresher thread
holds for the whole reload, so the event loop waits for that thread; the route planner resolves
every depot's host name with `socket.getaddrinfo` on the event loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get

SCENARIO = Scenario(
    calls=(
        get("/health"),
        get("/addresses/validate?postcode=10115", after=0.3),
        get("/routes/plan?depots=400", after=1.5),
    )
)


class Gazetteer:
    """Postcodes → towns; reloaded from the national file by a thread every few seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._towns: dict[str, str] = {"10115": "Berlin"}
        self._stop = threading.Event()

    def reload_forever(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                fresh = {f"{n:05d}": f"town-{n}" for n in range(10000, 90000)}
                time.sleep(0.8)  # parsing the national file
                self._towns = {**fresh, "10115": "Berlin"}
            self._stop.wait(0.2)

    def town(self, postcode: str) -> str | None:
        with self._lock:  # bug: loop-blocked
            return self._towns.get(postcode)

    def stop(self) -> None:
        self._stop.set()


class RoutePlanner:
    def __init__(self, depots: list[str]) -> None:
        self.depots = depots

    def resolve(self, count: int) -> int:
        addresses = 0
        for _ in range(count):
            for depot in self.depots:
                found = socket.getaddrinfo(depot, 443, type=socket.SOCK_STREAM)  # bug: loop-blocked
                addresses += len(found)
        return addresses


gazetteer = Gazetteer()
planner = RoutePlanner(["localhost"] * 150)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    refresher = threading.Thread(target=gazetteer.reload_forever, name="gazetteer", daemon=True)
    refresher.start()
    yield
    gazetteer.stop()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/addresses/validate")
async def validate(postcode: str) -> dict[str, object]:
    for _ in range(3):
        town = gazetteer.town(postcode)
        await asyncio.sleep(0.3)
    return {"postcode": postcode, "town": town}


@app.get("/routes/plan")
async def plan(depots: int) -> dict[str, int]:
    return {"resolved": planner.resolve(depots)}
