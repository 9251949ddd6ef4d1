"""Catalog service: supplier prices are fetched through one aiohttp session per process.

Fault: the connector allows three connections and the supplier's price API is slow, so a burst
of product pages queues for a connection behind the three in use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from fastapi import FastAPI, Request

from tests.scenarios.spec import Scenario, hold

SCENARIO = Scenario(
    calls=(hold("/products/1", times=3), hold("/products/2", after=0.4, times=3)),
    loop="uvloop",
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=3)
    async with aiohttp.ClientSession(connector=connector) as session:
        app.state.supplier = session
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/supplier/prices/{sku}")
async def supplier_price(sku: str) -> dict[str, float]:
    await asyncio.sleep(30)  # the supplier's API is slow today
    return {"price": 9.5}


class SupplierClient:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def price(self, sku: str) -> float:
        url = f"{self.base}supplier/prices/{sku}"
        async with self.session.get(url) as response:  # bug: pool-exhausted
            return float((await response.json())["price"])


@app.get("/products/{product_id}")
async def product_page(product_id: int, request: Request) -> dict[str, object]:
    supplier = SupplierClient(request.app.state.supplier, str(request.base_url))
    return {"id": product_id, "price": await supplier.price(f"sku-{product_id}")}
