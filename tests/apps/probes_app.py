"""A FastAPI app that misbehaves in the ways the lifecycle probes must make visible.

Each endpoint is one failure: background work dropped, skipped or queued wrongly, a sync endpoint
holding a threadpool token, a fire-and-forget task that fails, a forgotten `await`, an error that
is logged, an exception that is swallowed. `ran` records which background jobs actually ran, so a
test can check that the inspector observed without changing anything.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import anyio
import anyio.to_thread
from fastapi import BackgroundTasks, FastAPI, HTTPException, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.background import BackgroundTask

app = FastAPI()
logger = logging.getLogger("probes_app")
ran: list[str] = []
kept_tasks: list[asyncio.Task[None]] = []
release = threading.Event()
"""Set by a test to let every /sync-wait call return."""


def record(label: str) -> None:
    ran.append(label)


def boom() -> None:
    raise RuntimeError("the first background job failed")


async def send_email(address: str) -> None:
    ran.append(f"email {address}")


async def fails_later() -> None:
    await asyncio.sleep(0)
    raise ValueError("fire-and-forget task failed")


async def fails_while_kept() -> None:
    await asyncio.sleep(0)
    raise ValueError("a task kept in a list failed")


gates: dict[str, asyncio.Event] = {}
"""Events created on the serving loop (a server per test may use a new loop)."""


async def slow_job(gate: asyncio.Event) -> None:
    await gate.wait()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/users/{user_id}")
async def user(user_id: int) -> dict[str, int]:
    return {"id": user_id}


@app.get("/ran")
async def ran_jobs() -> list[str]:
    return ran


@app.get("/sync-wait")
def sync_wait(seconds: float = 10.0) -> dict[str, bool]:
    released = release.wait(seconds)
    return {"released": released}


render_limiter = anyio.CapacityLimiter(2)
"""A limiter of the app's own: at most two renders on worker threads at once."""


@app.get("/own-limiter")
async def own_limiter(seconds: float = 10.0) -> dict[str, bool]:
    released = await anyio.to_thread.run_sync(release.wait, seconds, limiter=render_limiter)
    return {"released": released}


@app.get("/sync-sleep")
def sync_sleep(seconds: float = 0.2) -> dict[str, float]:
    time.sleep(seconds)
    return {"slept": seconds}


@app.get("/release")
async def release_sync_waiters() -> dict[str, bool]:
    release.set()
    return {"released": True}


@app.post("/dropped")
async def dropped(background_tasks: BackgroundTasks) -> JSONResponse:
    background_tasks.add_task(record, "injected")  # line reported as the drop site
    return JSONResponse({"ok": True}, background=BackgroundTask(record, "own"))


@app.post("/raises")
async def raises(background_tasks: BackgroundTasks) -> None:
    background_tasks.add_task(record, "audit")
    raise HTTPException(status_code=404, detail="no such thing")


@app.post("/failing-chain")
async def failing_chain(background_tasks: BackgroundTasks) -> dict[str, bool]:
    background_tasks.add_task(boom)
    background_tasks.add_task(record, "second")
    return {"ok": True}


@app.post("/coroutine-queued")
async def coroutine_queued(background_tasks: BackgroundTasks) -> dict[str, bool]:
    background_tasks.add_task(send_email("a@example.com"))  # type: ignore[arg-type]
    return {"ok": True}


@app.post("/fire-and-forget")
async def fire_and_forget() -> dict[str, bool]:
    asyncio.create_task(fails_later())  # noqa: RUF006 - the bug under test
    return {"ok": True}


@app.post("/kept-task")
async def kept_task() -> dict[str, bool]:
    kept_tasks.append(asyncio.create_task(fails_while_kept()))
    return {"ok": True}


@app.post("/forgot-await")
async def forgot_await() -> dict[str, bool]:
    send_email("b@example.com")  # type: ignore[unused-coroutine]  # the forgotten await
    return {"ok": True}


@app.post("/logged")
async def logged() -> dict[str, bool]:
    try:
        {}["missing"]  # noqa: B018
    except KeyError:
        logger.exception("lookup failed")
    return {"ok": True}


@app.post("/logged-message")
async def logged_message() -> dict[str, bool]:
    try:
        int("twelve")
    except ValueError as error:
        logger.error("quantity rejected: %s", error)
    logger.error("no exception is being handled here")
    return {"ok": True}


@app.post("/swallowed")
async def swallowed() -> dict[str, bool]:
    try:
        int("not a number")
    except ValueError:
        pass  # the swallowed exception
    return {"ok": True}


@app.post("/unhandled")
async def unhandled() -> None:
    raise LookupError("nobody handles this")


@app.post("/slow-background")
async def slow_background(background_tasks: BackgroundTasks) -> dict[str, bool]:
    gates["slow"] = gate = asyncio.Event()
    background_tasks.add_task(slow_job, gate)
    return {"ok": True}


@app.post("/finish-slow-background")
async def finish_slow_background() -> dict[str, bool]:
    gates["slow"].set()
    return {"ok": True}


@app.post("/spawn-sleeper")
async def spawn_sleeper() -> dict[str, bool]:
    kept_tasks.append(asyncio.create_task(asyncio.sleep(30), name="sleeper"))  # type: ignore[arg-type]
    return {"ok": True}


@app.get("/hang")
async def hang(seconds: float = 10.0) -> dict[str, bool]:
    await asyncio.sleep(seconds)
    return {"ok": True}


@app.get("/stream")
async def stream(chunks: int = 3, delay: float = 0.05) -> StreamingResponse:
    async def produce():
        for index in range(chunks):
            await asyncio.sleep(delay)
            yield f"chunk {index}\n".encode()

    return StreamingResponse(produce(), media_type="text/plain")


@app.post("/echo")
async def echo(payload: dict[str, str]) -> dict[str, str]:
    return payload


@app.get("/text")
async def text() -> PlainTextResponse:
    return PlainTextResponse("x" * 1000)


@app.websocket("/ws")
async def websocket_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive_text()
        if message == "bye":
            await websocket.close()
            return
        await websocket.send_text(message)
