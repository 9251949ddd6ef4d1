"""A small app for the hostile-client tests: it can hold many file descriptors (as a busy server
does), park a task to be cancelled, and block its loop."""

from __future__ import annotations

import asyncio
import os
import resource
import time

from fastapi import FastAPI

app = FastAPI()
_held: list[int] = []
_tasks: dict[int, asyncio.Task[None]] = {}


@app.get("/")
async def root() -> dict[str, int]:
    return {"pid": os.getpid()}


@app.get("/hold-fds")
async def hold_fds(count: int = 5000) -> dict[str, int]:
    """Open `count` more descriptors and keep them, so the process holds fds past 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = len(_held) + count + 1024
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    for _ in range(count):
        _held.append(os.open(os.devnull, os.O_RDONLY))
    return {"highest": max(_held)}


@app.get("/park")
async def park() -> dict[str, int]:
    task = asyncio.create_task(asyncio.Event().wait(), name="victim")
    _tasks[id(task)] = task
    return {"id": id(task)}


@app.get("/task/{task_id}")
async def task_state(task_id: int) -> dict[str, bool]:
    task = _tasks[task_id]
    return {"done": task.done()}


@app.get("/block")
async def block(seconds: float = 0.5) -> dict[str, float]:
    time.sleep(seconds)  # HOSTILE-BLOCK: the stall the watchdog must still see
    return {"blocked": seconds}
