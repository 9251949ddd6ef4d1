"""A plain ASGI app without the agent that runs a script on SIGUSR1, for the inject tests.

A Python signal handler runs on the main thread between two bytecodes, which is exactly where
Python 3.14's `sys.remote_exec` runs its script; on older Pythons this is how the bootstrap that
`inspector inject` sends is exercised in a real server. The script's path is in
``INSPECTOR_TEST_BOOTSTRAP``.
"""

from __future__ import annotations

import os
import signal
from typing import Any


def _run_bootstrap(signum: int, frame: Any) -> None:
    path = os.environ["INSPECTOR_TEST_BOOTSTRAP"]
    with open(path, encoding="utf-8") as handle:
        code = compile(handle.read(), path, "exec")
    exec(code, {"__name__": "__inspector_bootstrap__"})


signal.signal(signal.SIGUSR1, _run_bootstrap)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
