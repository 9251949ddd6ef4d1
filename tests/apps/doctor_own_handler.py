"""An app that sets its own loop exception handler in its lifespan, then loses tasks.

Its handler stands for an error reporter: it keeps each exception for later and lets asyncio
log it as usual. `/reported` says how many exceptions it saw and whether the loop still hands
back this very handler.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

reported: list[object] = []


def report(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    reported.append(context.get("exception"))
    loop.default_exception_handler(context)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    asyncio.get_running_loop().set_exception_handler(report)
    yield


app = FastAPI(lifespan=lifespan)


async def sync_inventory(order: int) -> None:
    await asyncio.sleep(0)
    raise ConnectionError(f"inventory refused order {order}")  # doctor-test: lost task raises


@app.post("/orders/{order}")
async def place_order(order: int) -> dict[str, int]:
    asyncio.create_task(sync_inventory(order))  # noqa: RUF006 - the bug under test
    return {"order": order}


@app.get("/reported")
async def reported_so_far() -> dict[str, Any]:
    gc.collect()
    return {
        "count": len(reported),
        "own_handler": asyncio.get_running_loop().get_exception_handler() is report,
    }
