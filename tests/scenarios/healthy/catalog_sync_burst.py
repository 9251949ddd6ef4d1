"""Catalog service: product pages are read through a blocking driver from sync endpoints.

Healthy: a flash sale sends a burst of page views at once; each takes a tenth of a second on a
worker thread, so for a moment more requests want a thread than there are, and a moment later
all have been served. The threadpool is sized right for this traffic.
"""

from __future__ import annotations

import time

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get

SCENARIO = Scenario(
    calls=(
        get("/products/p-1", times=90),
        get("/products/p-2", times=60, after=1.0),
    ),
    watch=4.0,
)

app = FastAPI()
PRODUCTS = {"p-1": "Trail shoe", "p-2": "Rain jacket"}


def read_product(product: str) -> str:
    time.sleep(0.1)  # the driver's round trip
    return PRODUCTS.get(product, "?")


@app.get("/products/{product}")
def product_page(product: str) -> dict[str, str]:
    return {"product": product, "name": read_product(product)}
