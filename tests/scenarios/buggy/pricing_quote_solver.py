"""Pricing service: quotes are computed by a solver that calls the rates service synchronously.

Fault: the solver runs on a dedicated ThreadPoolExecutor of 4 threads; each quote holds a thread
for seconds waiting on the rates service, so a handful of concurrent quotes fill the pool and
the rest queue inside it.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(calls=(hold("/quotes/sku-100?quantity=5", times=10), get("/health")))

app = FastAPI()
SOLVER_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="quote-solver")


class RatesClient:
    def current(self, sku: str) -> float:
        time.sleep(6.0)  # bug: threadpool-saturated
        return 12.5


class QuoteSolver:
    def __init__(self, rates: RatesClient) -> None:
        self.rates = rates

    def solve(self, sku: str, quantity: int) -> float:
        unit = self.rates.current(sku)
        return round(unit * quantity * (0.9 if quantity >= 10 else 1.0), 2)


solver = QuoteSolver(RatesClient())


@app.get("/quotes/{sku}")
async def quote(sku: str, quantity: int = 1) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    price = await loop.run_in_executor(SOLVER_POOL, solver.solve, sku, quantity)
    return {"price": price}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
