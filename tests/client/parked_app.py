"""A Starlette app whose tasks wait on an Event, for the client's end-to-end tests.

Served with ``inspector run tests.client.parked_app:app``. At startup it parks
``PARKED_TASKS`` tasks (default 3) three coroutines deep on one ``asyncio.Event``;
``GET /spawn?n=N`` parks N more, ``GET /release`` wakes them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

EVENT = asyncio.Event()
PARKED: set[asyncio.Task[None]] = set()


async def wait_for_release() -> None:
    await EVENT.wait()  # parked here on purpose


async def handle_order() -> None:
    await wait_for_release()


async def order_worker() -> None:
    await handle_order()


def park(count: int) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(count):
        task = loop.create_task(order_worker(), name=f"order-worker-{len(PARKED)}")
        PARKED.add(task)
        task.add_done_callback(PARKED.discard)


async def index(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def spawn(request: Request) -> PlainTextResponse:
    park(int(request.query_params.get("n", "1")))
    return PlainTextResponse(str(len(PARKED)))


async def release(request: Request) -> PlainTextResponse:
    EVENT.set()
    return PlainTextResponse("released")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    park(int(os.environ.get("PARKED_TASKS", "3")))
    yield
    for task in list(PARKED):
        task.cancel()


app = Starlette(
    routes=[Route("/", index), Route("/spawn", spawn), Route("/release", release)],
    lifespan=lifespan,
)
