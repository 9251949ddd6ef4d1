"""Catalog service: prices are stored in euros and converted on the way out.

Faults: the conversion helper was written for worker threads (it schedules the rate lookup on
the loop and waits for its result) and is called from an `async def` endpoint, so the loop
thread waits for a coroutine only it can run: once in the price endpoint, where the wait is
split over two lines, and once in the basket total, through a small `run_sync` helper.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get

SCENARIO = Scenario(
    calls=(
        get("/products"),
        get("/products/p-7/price?currency=USD"),
        get("/basket/b-1/total", after=2.5),
    ),
    watch=7.0,
)

T = TypeVar("T")
app = FastAPI()
PRICES_EUR = {"p-7": 1999, "p-8": 4550}
BASKETS = {"b-1": ["p-7", "p-8"]}


class RateService:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    async def rate(self, currency: str) -> float:
        await asyncio.sleep(0.01)
        return {"USD": 1.08, "GBP": 0.86}.get(currency, 1.0)

    def rate_blocking(self, currency: str) -> float:
        """For sync code running in a worker thread."""
        assert self.loop is not None
        pending = asyncio.run_coroutine_threadsafe(self.rate(currency), self.loop)
        return pending.result(timeout=2)  # bug: sync-async-deadlock


rates = RateService()


def run_sync(coro: Coroutine[Any, Any, T], timeout: float = 2) -> T:
    loop = rates.loop
    assert loop is not None
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)  # bug: sync-async-deadlock


def convert(cents: int, currency: str) -> int:
    return round(cents * rates.rate_blocking(currency))


@app.on_event("startup")
async def remember_loop() -> None:
    rates.loop = asyncio.get_running_loop()


@app.get("/products")
async def products() -> list[str]:
    return sorted(PRICES_EUR)


@app.get("/products/{sku}/price")
async def price(sku: str, currency: str = "EUR") -> dict[str, object]:
    return {"sku": sku, "currency": currency, "cents": convert(PRICES_EUR[sku], currency)}


@app.get("/basket/{basket_id}/total")
async def basket_total(basket_id: str, currency: str = "GBP") -> dict[str, object]:
    total = sum(PRICES_EUR[sku] for sku in BASKETS[basket_id])
    return {"cents": round(total * run_sync(rates.rate(currency))), "currency": currency}
