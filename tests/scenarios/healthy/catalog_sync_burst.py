"""Catalog service: product pages are read through a blocking driver from sync endpoints, and
stock levels through `asyncio.to_thread`.

Healthy: a flash sale sends a burst of page views at once; each takes a tenth of a second on a
worker thread, so for a moment more requests want a thread than there are, and a moment later
all have been served. The stock lookups queue on the default executor just as briefly. The pools
are sized right for this traffic.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get

SCENARIO = Scenario(
    calls=(
        get("/products/p-1", times=90),
        get("/products/p-2", times=60, after=1.0),
        get("/products/p-1/stock", times=40, after=2.0),
    ),
    watch=4.0,
)

app = FastAPI()
PRODUCTS = {"p-1": "Trail shoe", "p-2": "Rain jacket"}


def read_product(product: str) -> str:
    time.sleep(0.1)  # the driver's round trip
    return PRODUCTS.get(product, "?")


def read_stock(product: str) -> int:
    time.sleep(0.05)
    return 12


@app.get("/products/{product}/stock")
async def stock(product: str) -> dict[str, int]:
    return {"stock": await asyncio.to_thread(read_stock, product)}


@app.get("/products/{product}")
def product_page(product: str) -> dict[str, str]:
    return {"product": product, "name": read_product(product)}
