"""A lifespan startup that never completes: the database takes the connection, never answers.

The "database" is a socket of the app's own that listens (so the kernel accepts the
connection) and never sends the greeting the client waits for: the shape of a database or
broker behind a firewall that drops replies, or a server stuck before its handshake.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

_silent: list[socket.socket] = []


def silent_database() -> tuple[str, int]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    _silent.append(listener)
    host, port = listener.getsockname()
    return host, port


async def connect_to_database(address: tuple[str, int]) -> asyncio.StreamReader:
    reader, _writer = await asyncio.open_connection(*address)
    await reader.readexactly(4)  # doctor-test: startup waits here
    return reader


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.database = await connect_to_database(silent_database())
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def index() -> dict[str, bool]:
    return {"ok": True}
