"""`inspector demo` with the terminal UI: traffic in a thread, the UI in the foreground.

Textual owns the main thread and its event loop, so the traffic runs on a loop of its own in a
daemon thread. Quitting the UI stops the traffic, then the server (the caller's `finally`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from inspector.demo.server import HOST, DemoServer
from inspector.demo.traffic import DemoClient, TrafficStats, drive
from inspector.errors import InspectorError


class TrafficThread:
    """The demo's traffic mix, repeating until `stop()`."""

    def __init__(self, server: DemoServer) -> None:
        self.stats = TrafficStats()
        self._server = server
        self._thread = threading.Thread(
            target=self._run, name="inspector-demo-traffic", daemon=True
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        client = DemoClient(HOST, self._server.http_port, self.stats)
        try:
            await drive(client, self._stop)
        finally:
            await client.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending, hang up the requests in flight; idempotent."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        if self._thread.is_alive():
            self._thread.join(timeout)


def load_tui() -> Callable[[Any], Any]:
    """`inspector.tui.make_app`, or one clear error when the UI is not available."""
    import importlib

    problem: Exception | None = None
    for module_name in ("inspector.tui", "inspector.tui.app"):
        try:
            make_app = getattr(importlib.import_module(module_name), "make_app", None)
        except ImportError as error:
            problem = error
            continue
        if make_app is not None:
            return make_app  # type: ignore[no-any-return]
    reason = f" ({problem})" if problem else ""
    raise InspectorError(
        f"the terminal UI is not available{reason}; try `inspector demo --headless`"
    )


def run_tui(server: DemoServer, duration: float | None = None) -> int:
    """Open the UI on the demo's agent with traffic running; returns when the UI quits.

    With `duration`, the UI quits by itself after that many seconds (recordings, tests).
    """
    from inspector.client.target import open_source

    make_app = load_tui()
    traffic = TrafficThread(server)
    traffic.start()
    timer: threading.Timer | None = None
    try:
        app = make_app(open_source(server.agent_address, None))
        if duration is not None:
            timer = threading.Timer(duration, lambda: _exit_app(app))
            timer.daemon = True
            timer.start()
        app.run()
    finally:
        if timer is not None:
            timer.cancel()
        traffic.stop()
    return int(getattr(app, "return_code", 0) or 0)


def _exit_app(app: Any) -> None:
    try:
        app.call_from_thread(app.exit)
    except RuntimeError:  # the app already stopped
        pass
