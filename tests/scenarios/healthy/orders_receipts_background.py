"""Order service: receipts, stock updates and analytics run as background jobs after checkout.

Healthy: every job succeeds (sync ones in the threadpool, async ones on the loop, and one attached
to the response itself); unknown orders get a 404 and invalid carts a 422 from an exception
handler, neither of which is a fault.
"""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(
        post("/checkout", '{"customer": "c-1", "items": {"sku-1": 2}}', times=6),
        post("/checkout", '{"customer": "c-2", "items": {}}', times=2),
        get("/orders/o-missing", times=2),
        post("/orders/o-1/refund", times=2),
    ),
    watch=4.0,
)

app = FastAPI()
orders: dict[str, dict[str, int]] = {"o-1": {"sku-1": 1}}
stock = {"sku-1": 500}
receipts: dict[str, str] = {}
events: list[str] = []


class Cart(BaseModel):
    customer: str
    items: dict[str, int]


class EmptyCart(Exception):
    def __init__(self, customer: str) -> None:
        self.customer = customer


@app.exception_handler(EmptyCart)
async def empty_cart(request: Request, error: EmptyCart) -> JSONResponse:
    return JSONResponse({"detail": f"cart of {error.customer} is empty"}, status_code=422)


def render_receipt(order_id: str, items: dict[str, int]) -> None:
    receipts[order_id] = hashlib.sha1(repr(sorted(items.items())).encode()).hexdigest()


async def reserve_stock(items: dict[str, int]) -> None:
    await asyncio.sleep(0.01)
    for sku, quantity in items.items():
        stock[sku] -= quantity


def track(event: str) -> None:
    events.append(event)


@app.post("/checkout", status_code=201)
async def checkout(cart: Cart, background_tasks: BackgroundTasks) -> dict[str, str]:
    if not cart.items:
        raise EmptyCart(cart.customer)
    order_id = f"o-{len(orders) + 1}"
    orders[order_id] = cart.items
    background_tasks.add_task(reserve_stock, cart.items)
    background_tasks.add_task(render_receipt, order_id, cart.items)
    return {"order": order_id}


@app.get("/orders/{order_id}")
async def order(order_id: str) -> dict[str, int]:
    if order_id not in orders:
        raise HTTPException(404, f"no order {order_id}")
    return orders[order_id]


@app.post("/orders/{order_id}/refund")
async def refund(order_id: str) -> JSONResponse:
    return JSONResponse(
        {"order": order_id, "status": "refunding"},
        background=BackgroundTask(track, f"refund requested: {order_id}"),
    )
