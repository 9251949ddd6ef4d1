"""A plain aiomonitor without the inspector agent, for the client's end-to-end tests.

Run as a script: ``python monitor_app.py``. It starts aiomonitor on free ports and prints one
line ``READY <termui port>`` once it can be reached.
"""

from __future__ import annotations

import asyncio
import socket

import aiomonitor


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main() -> None:
    port = _free_port()
    with aiomonitor.start_monitor(
        asyncio.get_running_loop(),
        port=port,
        webui_port=_free_port(),
        console_port=_free_port(),
        console_enabled=False,
        hook_task_factory=False,
    ):
        print(f"READY {port}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
