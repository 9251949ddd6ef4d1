"""Two endpoints that take two locks in opposite orders: together they deadlock."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

app = FastAPI()
lock_a = asyncio.Lock()
lock_b = asyncio.Lock()
both_hold_one = asyncio.Barrier(2)


@app.get("/a-then-b")
async def a_then_b() -> dict[str, bool]:
    async with lock_a:  # doctor-test: took lock a
        await both_hold_one.wait()
        async with lock_b:  # doctor-test: deadlock line a
            return {"ok": True}


@app.get("/b-then-a")
async def b_then_a() -> dict[str, bool]:
    async with lock_b:  # doctor-test: took lock b
        await both_hold_one.wait()
        async with lock_a:  # doctor-test: deadlock line b
            return {"ok": True}


@app.get("/ok")
async def ok() -> dict[str, bool]:
    return {"ok": True}
