"""Healthy endpoints that wait long on purpose, each under a timeout: long-polls. Doctor must not
call them hanging. `GET /stuck` is the control: the same wait with no timeout, which is a hang.
"""

from __future__ import annotations

import asyncio

import anyio
from fastapi import FastAPI

app = FastAPI()
updates: asyncio.Queue[str] = asyncio.Queue()
never = asyncio.Event()


@app.get("/poll/wait-for")
async def poll_wait_for() -> dict[str, str | None]:
    try:
        return {"update": await asyncio.wait_for(updates.get(), timeout=60)}  # marker: wait-for
    except TimeoutError:
        return {"update": None}


@app.get("/poll/timeout")
async def poll_timeout() -> dict[str, str | None]:
    try:
        async with asyncio.timeout(60):
            return {"update": await updates.get()}  # marker: timeout
    except TimeoutError:
        return {"update": None}


@app.get("/poll/anyio")
async def poll_anyio() -> dict[str, str | None]:
    with anyio.move_on_after(60):
        return {"update": await updates.get()}  # marker: anyio
    return {"update": None}


@app.get("/stuck")
async def stuck() -> dict[str, bool]:
    await never.wait()  # marker: stuck
    return {"ok": True}
