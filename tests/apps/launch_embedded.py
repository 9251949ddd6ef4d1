"""A larger program that runs `uvicorn.Server(config).serve()` beside its own work."""

from __future__ import annotations

import asyncio
import sys

import uvicorn

from tests.apps.launch_app import app


async def housekeeping() -> None:
    while True:
        await asyncio.sleep(0.5)


async def main(port: int) -> None:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    chores = asyncio.create_task(housekeeping(), name="housekeeping")
    try:
        await server.serve()
    finally:
        chores.cancel()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
