"""Billing service: invoices are queued by requests and issued by a consumer started in the
lifespan, once the tax-rate table has been loaded.

Faults: the tax-rate loader stores the rates but signals a different Event than the one the
consumer waits on, so the consumer is parked forever and invoices pile up unissued; the nightly
dunning job, started by a request, waits on a Semaphore whose permit a failed run took and never
gave back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(
        post("/invoices", '{"customer": "c-1", "cents": 1200}'),
        get("/invoices/pending", after=0.2),
        post("/dunning/run", after=0.2),
        post("/dunning/run", after=0.5),
    )
)


class TaxRates:
    def __init__(self) -> None:
        self.rates: dict[str, float] = {}
        self.loaded = asyncio.Event()
        self.refreshed = asyncio.Event()

    async def load(self) -> None:
        await asyncio.sleep(0.05)
        self.rates = {"EU": 0.2, "US": 0.07}
        self.refreshed.set()


class InvoiceIssuer:
    def __init__(self, rates: TaxRates) -> None:
        self.rates = rates
        self.queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self.issued: list[dict[str, object]] = []

    async def run(self) -> None:
        await self._wait_for_rates()
        while True:
            invoice = await self.queue.get()
            self.issued.append({**invoice, "tax": self.rates.rates["EU"]})

    async def _wait_for_rates(self) -> None:
        await self.rates.loaded.wait()  # bug: stuck-task


class Dunning:
    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(1)
        self.runs = 0

    async def run_once(self) -> None:
        await self.slots.acquire()  # bug: stuck-task
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("payment provider returned 503")
        self.slots.release()


rates = TaxRates()
issuer = InvoiceIssuer(rates)
dunning = Dunning()
jobs: set[asyncio.Task[None]] = set()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    consumer = asyncio.create_task(issuer.run(), name="invoice-issuer")
    await rates.load()
    yield
    consumer.cancel()


app = FastAPI(lifespan=lifespan)


@app.post("/invoices")
async def create_invoice(invoice: dict[str, object]) -> dict[str, int]:
    await issuer.queue.put(invoice)
    return {"queued": issuer.queue.qsize()}


@app.get("/invoices/pending")
async def pending() -> dict[str, int]:
    return {"pending": issuer.queue.qsize(), "issued": len(issuer.issued)}


@app.post("/dunning/run")
async def run_dunning() -> dict[str, str]:
    job = asyncio.create_task(dunning.run_once(), name="dunning")
    jobs.add(job)
    job.add_done_callback(jobs.discard)
    return {"status": "started"}
