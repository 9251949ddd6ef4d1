"""Fire-and-forget tasks that wait on a future only they know: the collector takes them."""

from __future__ import annotations

import asyncio
import gc
import weakref

from fastapi import FastAPI

app = FastAPI()
_shipments: dict[int, weakref.ref[asyncio.Future[str]]] = {}


async def notify_when_shipped(order_id: int) -> None:  # marker: dies
    shipped: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    _shipments[order_id] = weakref.ref(shipped)  # a weak reference keeps nothing alive
    carrier = await shipped
    print(f"order {order_id} shipped with {carrier}")


@app.post("/orders/{order_id}/track")
async def track(order_id: int) -> dict[str, bool]:
    asyncio.create_task(notify_when_shipped(order_id))  # no reference kept
    await asyncio.sleep(0.01)
    gc.collect()  # what the collector does on its own a moment later under load
    return {"tracking": True}
