"""Healthy long-lived work that tempts a false alarm: a server-sent-events stream that keeps
sending, a streamed download, an open websocket waiting for its client, a request that fans out
in a TaskGroup, and per-request tasks that are kept and finish. Doctor must raise no warning
about any of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

app = FastAPI()
_running: set[asyncio.Task[None]] = set()


async def ticks(seconds: float) -> AsyncIterator[str]:
    for n in range(int(seconds / 0.2)):
        yield f"data: tick {n}\n\n"
        await asyncio.sleep(0.2)


@app.get("/events")
async def events(seconds: float = 30.0) -> StreamingResponse:
    return StreamingResponse(ticks(seconds), media_type="text/event-stream")


async def chunks(seconds: float) -> AsyncIterator[bytes]:
    for _ in range(int(seconds / 0.1)):
        yield b"x" * 1024
        await asyncio.sleep(0.1)


@app.get("/download")
async def download(seconds: float = 30.0) -> StreamingResponse:
    return StreamingResponse(chunks(seconds), media_type="application/octet-stream")


async def fetch(part: int) -> int:
    await asyncio.sleep(0.05)
    return part


@app.get("/fan-out")
async def fan_out() -> dict[str, int]:
    async with asyncio.TaskGroup() as group:
        parts = [group.create_task(fetch(n)) for n in range(5)]
    return {"total": sum(part.result() for part in parts)}


@app.websocket("/live")
async def live(socket: WebSocket) -> None:
    """A chat-like socket: it waits for the client's next message for as long as it is open."""
    await socket.accept()
    try:
        while True:
            await socket.send_text(await socket.receive_text())
    except WebSocketDisconnect:
        pass


async def audit(n: int) -> None:
    await asyncio.sleep(0.05)


@app.post("/orders/{n}")
async def order(n: int) -> dict[str, int]:
    task = asyncio.create_task(audit(n))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return {"order": n}
