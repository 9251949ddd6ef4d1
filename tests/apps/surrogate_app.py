"""A Starlette app that names a task with a lone surrogate, for the tests that save snapshots.

``GET /spawn`` parks one task named ``"x\\ud800y"``: Python allows the name, UTF-8 cannot carry
it, and the agent sends it as the JSON escape ``\\ud800``. ``GET /release`` wakes it.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

NAME = "x\ud800y"
EVENT = asyncio.Event()
PARKED: set[asyncio.Task[None]] = set()


async def wait_for_release() -> None:
    await EVENT.wait()


async def index(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def spawn(request: Request) -> PlainTextResponse:
    task = asyncio.get_running_loop().create_task(wait_for_release(), name=NAME)
    PARKED.add(task)
    task.add_done_callback(PARKED.discard)
    return PlainTextResponse(str(len(PARKED)))


async def release(request: Request) -> PlainTextResponse:
    EVENT.set()
    return PlainTextResponse("released")


app = Starlette(routes=[Route("/", index), Route("/spawn", spawn), Route("/release", release)])
