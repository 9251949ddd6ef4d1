"""aiomonitor, guarded against the ways it hangs or litters the server's terminal (each measured).

* `Monitor.start()` waits forever when its UI thread fails (a taken web UI port): the guarded
  class reports the failure instead.
* `Monitor.close()` joins its thread without a timeout and hangs while a client is not reading:
  `close_monitor` runs it in a daemon thread that is given 2 seconds.
* A client that vanishes mid-answer makes prompt_toolkit print tracebacks on the server's
  terminal: the termui sockets read a reset as end of file.
* The inspector's own clients get a line session (`inspector.agent.line_session`) instead of a
  prompt_toolkit prompt; everyone else gets aiomonitor's prompt.
* Each termui session's prompt polls its terminal size twice a second. Every wake-up takes the
  GIL from the app loop: twenty idle clients doubled the server's p99 latency under load. Over
  telnet the size arrives by NAWS anyway, so the sessions do not poll, and redraws are coalesced.

aiomonitor is imported only when a monitor is first wanted (about 0.3 s).
"""

from __future__ import annotations

import functools
import socket
import threading
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from inspector.agent.agent import Agent

MIN_REDRAW_INTERVAL: Final = 0.05
"""Seconds between two redraws of a termui prompt (prompt_toolkit's default redraws at once)."""
MONITOR_CLOSE_TIMEOUT: Final = 2.0
"""Seconds given to aiomonitor's close; after that its daemon thread is abandoned."""

_monitor_class: type[Any] | None = None


def guarded_monitor_class() -> type[Any]:
    """aiomonitor's Monitor, with a UI thread that reports a failed start instead of hanging."""
    global _monitor_class
    if _monitor_class is not None:
        return _monitor_class
    from aiomonitor import Monitor

    _install_resilient_telnet_server()
    _install_quiet_prompt_sessions()

    class GuardedMonitor(Monitor):  # type: ignore[misc]
        inspector_agent: Agent | None = None
        startup_error: BaseException | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._ui_thread.name = "inspector-agent"

        def _ui_main(self) -> None:
            # Stock aiomonitor never sets `_ui_started` when its UI fails to start (a taken
            # port), and `start()` then waits forever on the app loop's thread.
            try:
                super()._ui_main()
            except BaseException as error:
                if not self._ui_started.is_set():
                    self.startup_error = error
            finally:
                self._ui_started.set()

    _monitor_class = GuardedMonitor
    return GuardedMonitor


class _ClientSocket(socket.socket):
    """A termui connection on which a vanished client reads as end of file.

    prompt_toolkit lets a connection reset escape from its reader callback; its application's
    exception handler then prints a traceback and a "Press ENTER" prompt on the server's
    terminal, over and over. A reset is just a client that went away.
    """

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        try:
            return super().recv(bufsize, flags)
        except (ConnectionError, TimeoutError):
            return b""

    def send(self, data: Any, flags: int = 0) -> int:
        try:
            return super().send(data, flags)
        except ConnectionError:  # the reader then sees end of file and closes the connection
            return len(data)


class _ListeningSocket(socket.socket):
    def accept(self) -> tuple[socket.socket, Any]:
        fd, address = self._accept()  # type: ignore[attr-defined]
        connection = _ClientSocket(self.family, self.type, self.proto, fileno=fd)
        connection.setblocking(True)
        try:
            # Answers are single writes followed by a wait for the next command: without
            # this, each waits ~40 ms for the client's delayed ACK.
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return connection, address


def _install_resilient_telnet_server() -> None:
    """Make aiomonitor's termui server use `_ListeningSocket` (same bind, same backlog)."""
    import aiomonitor.monitor as monitor_module
    from prompt_toolkit.contrib.telnet.server import TelnetServer

    if getattr(monitor_module.TelnetServer, "inspector_resilient", False):
        return

    class ResilientTelnetServer(TelnetServer):
        inspector_resilient = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            interact = kwargs.get("interact")
            if interact is not None:
                kwargs["interact"] = _routing_inspector_clients(interact)
            super().__init__(*args, **kwargs)

        @classmethod
        def _create_socket(cls, host: str, port: int) -> socket.socket:
            listener = _ListeningSocket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(4)
            return listener

    monitor_module.TelnetServer = ResilientTelnetServer


def _routing_inspector_clients(interact: Any) -> Any:
    """aiomonitor's per-connection `interact`, with inspector clients sent to a line session."""
    monitor = (
        interact.args[0] if isinstance(interact, functools.partial) and interact.args else None
    )
    if monitor is None:
        return interact

    async def route(connection: Any) -> None:
        from inspector.agent.line_session import serve_lines, wants_line_session

        if wants_line_session(connection):
            await serve_lines(monitor, connection)
        else:
            await interact(connection)

    return route


def _install_quiet_prompt_sessions() -> None:
    """Make aiomonitor's termui sessions create prompts that do not poll the terminal size."""
    import aiomonitor.termui.commands as termui_module
    from prompt_toolkit import PromptSession

    if getattr(termui_module.PromptSession, "inspector_quiet", False):
        return

    class QuietPromptSession(PromptSession):  # type: ignore[type-arg]
        inspector_quiet = True

        def _create_application(self, *args: Any, **kwargs: Any) -> Any:
            application = super()._create_application(*args, **kwargs)
            application.terminal_size_polling_interval = None
            # Coalesce the redraws a command causes (paste, accept): half of a command's cost.
            application.min_redraw_interval = MIN_REDRAW_INTERVAL
            return application

    termui_module.PromptSession = QuietPromptSession


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
