"""aiomonitor, with the parts that are unsafe in a production server replaced (each measured).

The agent keeps what aiomonitor is good at: its own thread and event loop (so the agent answers
while the app's loop is blocked) and its click commands (``ps``, ``where``, ``stacktrace``…, plus
the inspector's, registered by `inspector.agent.commands`). It replaces:

* the telnet server (prompt_toolkit's, which spins past 1,024 file descriptors, leaks a pipe per
  connection, blocks on writes and buffers without bound) with `inspector.agent.termui_server`;
* the always-on web UI, which lets anyone cancel tasks, with `inspector.agent.webui`: off
  unless a port is asked for, and guarded when on;
* a failed start: stock `Monitor.start()` waits forever when its thread fails (a taken port);
  here the failure is reported;
* `Monitor.close()` joins its thread without a timeout: `close_monitor` gives it 2 seconds.

aiomonitor is imported only when a monitor is first wanted (about 0.3 s).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Final

from inspector.agent.termui_server import ServerEvents, TermuiConnection, TermuiServer

MONITOR_CLOSE_TIMEOUT: Final = 2.0
"""Seconds given to aiomonitor's close; after that its daemon thread is abandoned."""

_monitor_class: type[Any] | None = None


def guarded_monitor_class() -> type[Any]:
    """aiomonitor's Monitor with the agent's termui server and guarded web UI."""
    global _monitor_class
    if _monitor_class is not None:
        return _monitor_class
    from aiomonitor import Monitor

    class GuardedMonitor(Monitor):  # type: ignore[misc]
        inspector_agent: Any = None
        """The agent this monitor serves, for the inspector's commands."""
        startup_error: BaseException | None = None

        def __init__(
            self,
            loop: asyncio.AbstractEventLoop,
            *,
            host: str,
            termui_port: int,
            webui_port: int | None = None,
            read_only: bool = False,
            events: ServerEvents | None = None,
            on_refused: Callable[[], None] = lambda: None,
        ) -> None:
            super().__init__(
                loop,
                host=host,
                termui_port=termui_port,
                webui_port=webui_port or 0,
                console_port=0,
                console_enabled=False,
                hook_task_factory=False,
            )
            self._ui_thread.name = "inspector-agent"
            self._wants_webui = webui_port is not None
            self._read_only = read_only
            self._events = events or ServerEvents()
            self._on_refused = on_refused
            self.termui: TermuiServer | None = None
            self.webui_port: int | None = None
            """Where the web UI listens, once started; None when it is off."""

        def _ui_main(self) -> None:
            try:
                super()._ui_main()
            except BaseException as error:
                if not self._ui_started.is_set():
                    self.startup_error = error
            finally:
                self._ui_started.set()  # stock aiomonitor never sets it when the start fails

        async def _ui_main_async(self) -> None:
            from inspector.agent.line_session import serve

            loop = asyncio.get_running_loop()
            self._ui_loop = loop
            self._ui_forever_future = loop.create_future()

            async def session(connection: TermuiConnection) -> None:
                await serve(
                    self, connection, read_only=self._read_only, on_refused=self._on_refused
                )

            termui = TermuiServer(session, self._events)
            runner: Any = None
            try:
                await termui.start(self._host, self._termui_port)
                self.termui = termui
                if self._wants_webui:
                    from inspector.agent.webui import start_webui

                    runner, self.webui_port = await start_webui(
                        self, self._host, self._webui_port, self._read_only
                    )
                self._ui_started.set()
                try:
                    await self._ui_forever_future
                except asyncio.CancelledError:
                    pass
            finally:
                pending = {*self._termui_tasks}  # aiomonitor's own (an async `cancel`)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=1.0)
                await termui.close()
                if runner is not None:
                    await runner.cleanup()

    _monitor_class = GuardedMonitor
    return GuardedMonitor


def close_monitor(monitor: Any, timeout: float = MONITOR_CLOSE_TIMEOUT) -> bool:
    """Close aiomonitor, giving up after `timeout`; True when it closed in time."""
    finished = threading.Event()

    def run() -> None:
        try:
            monitor.close()
        except Exception:
            pass
        finally:
            finished.set()

    closer = threading.Thread(target=run, name="inspector-agent-close", daemon=True)
    closer.start()
    closer.join(timeout)
    return finished.is_set()
