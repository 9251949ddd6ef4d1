"""An aiohttp server that starts a stock aiomonitor itself, without the inspector agent.

Run: ``python fleet_aiomonitor_app.py [--hook]``. Prints one line
``READY <http port> <termui port>`` once both answer. ``GET /block?s=N`` holds the event loop in
``time.sleep`` (to see what the loop thread runs); one task waits on an Event forever; with
``--hook`` (aiomonitor's ``hook_task_factory``) a fire-and-forget task fails at start so the
monitor records a finished task with its exception.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time

import aiomonitor
from aiohttp import web


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_the_signal(event: asyncio.Event) -> None:
    await event.wait()  # parked: nobody ever sets this event


async def fire_and_forget_failure() -> None:
    raise RuntimeError("nobody awaited this task")


async def block(request: web.Request) -> web.Response:
    time.sleep(float(request.query.get("s", "1")))  # holds the event loop on purpose
    return web.Response(text="blocked")


async def main(hook: bool) -> None:
    loop = asyncio.get_running_loop()
    termui_port = free_port()
    monitor = aiomonitor.start_monitor(
        loop,
        port=termui_port,
        webui_port=free_port(),
        console_port=free_port(),
        console_enabled=False,
        hook_task_factory=hook,
    )
    event = asyncio.Event()
    parked = asyncio.create_task(wait_for_the_signal(event), name="parked-on-event")
    if hook:
        asyncio.create_task(fire_and_forget_failure(), name="doomed")
    app = web.Application()
    app.router.add_get("/block", block)
    runner = web.AppRunner(app)
    await runner.setup()
    http_port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", http_port)
    await site.start()
    print(f"READY {http_port} {termui_port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        parked.cancel()
        await runner.cleanup()
        monitor.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--hook", action="store_true")
    options = parser.parse_args()
    try:
        asyncio.run(main(options.hook))
    except KeyboardInterrupt:
        pass
