"""An app started every way people start FastAPI: by uvicorn's CLI, `fastapi run`, gunicorn,
`python launch_app.py PORT` (which calls `uvicorn.run`), with its own lifespan."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.started = True
    yield


app = FastAPI(lifespan=lifespan)
_parked = asyncio.Event()


@app.get("/")
async def root() -> dict[str, object]:
    return {"pid": os.getpid(), "started": app.state.started}


@app.get("/park")
async def park() -> dict[str, bool]:
    """A request that waits for an Event nobody sets: it shows up in flight."""
    await _parked.wait()
    return {"parked": True}


@app.get("/release")
async def release() -> dict[str, bool]:
    """Lets the parked requests finish, so the server can stop without waiting for them."""
    _parked.set()
    return {"released": True}


@app.get("/block")
async def block() -> dict[str, bool]:
    """Blocks the event loop: `doctor` must name this line."""
    time.sleep(0.4)  # marker: blocks
    return {"blocked": True}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
