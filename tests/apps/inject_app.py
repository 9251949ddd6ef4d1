"""A plain ASGI app served without the agent, for `inspector inject` tests.

No framework, so it runs in a bare venv of any Python the machine has (uvicorn and aiomonitor
only). Each endpoint puts the loop in one of the states the injection must cope with:

* ``/park``: the request awaits an event nobody sets (a parked request, the loop idle);
* ``/sleep?s=N``: ``time.sleep`` on the loop (the loop blocked in the kernel, GIL released);
* ``/spin?s=N``: a Python loop on the loop (CPU-bound, GIL held);
* ``/recv?s=N``: a blocking socket read on the loop;
* ``/lock?s=N``: ``threading.Lock.acquire`` on the loop (a futex wait);
* anything else answers ``ok``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qs

_never = asyncio.Event()


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _seconds(scope: dict[str, Any]) -> float:
    query = parse_qs(scope.get("query_string", b"").decode())
    return min(30.0, float(query.get("s", ["5"])[0]))


def spin(seconds: float) -> int:
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:  # inject-test: spinning line
        count += 1
    return count


def read_nothing(seconds: float) -> None:
    mine, theirs = socket.socketpair()
    try:
        mine.settimeout(seconds)
        try:
            mine.recv(1)  # inject-test: reading line
        except OSError:
            pass
    finally:
        mine.close()
        theirs.close()


def wait_for_lock(seconds: float) -> None:
    lock = threading.Lock()
    lock.acquire()
    lock.acquire(timeout=seconds)  # inject-test: lock line


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/park":
        await _never.wait()  # inject-test: parked line
    elif path == "/sleep":
        time.sleep(_seconds(scope))  # inject-test: blocking line
    elif path == "/spin":
        spin(_seconds(scope))
    elif path == "/recv":
        read_nothing(_seconds(scope))
    elif path == "/lock":
        wait_for_lock(_seconds(scope))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
