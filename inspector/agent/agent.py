"""The agent's lifecycle: choose ports, start aiomonitor safely, install the probes, close on time.

aiomonitor 0.7.1 has three traps this module exists to avoid (each one measured):

* `start_monitor()` waits forever when its web UI port is taken, so every port is bound by us
  first (without SO_REUSEPORT), the web UI gets a free port we picked, and the monitor's UI
  thread is guarded so that a failure is reported instead of waited on.
* `Monitor.close()` joins its thread without a timeout and hangs while a client is not reading;
  it runs here in a daemon thread that is given 2 seconds.
* Several workers asking for the same port: each agent takes a numbered slot (an `flock`ed file
  in the runtime directory) and listens on base port + slot.

`instrument(app)` is the one call for people who start uvicorn themselves. The app always works:
if the agent cannot start, one warning is logged and requests are served as before.
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import ipaddress
import logging
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Final

from inspector import __version__
from inspector.agent.probe import AgentConfig, AgentContext, Probe
from inspector.agent.watchdog import Watchdog
from inspector.model import ALL_CAPABILITIES, Capability, ProcessInfo
from inspector.protocol import PROTOCOL_VERSION, Hello

logger = logging.getLogger("inspector.agent")

MONITOR_CLOSE_TIMEOUT: Final = 2.0
"""Seconds given to aiomonitor's close; after that its daemon thread is abandoned."""
START_ATTEMPTS: Final = 3
"""Tries with a fresh web UI port when another process grabs the one we picked."""
MAX_SLOTS: Final = 64

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PROBE_CAPABILITIES: Final[dict[str, tuple[Capability, ...]]] = {
    "tasks": ("tasks", "stacks"),
    "watchdog": ("stalls",),
}


class AgentStartError(Exception):
    """The agent could not start; the message names the cause (a port, a host) for a person."""


# --- addresses and ports ---------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(config: AgentConfig, remote_hint: str = "set allow_remote=True") -> None:
    """Refuse addresses the agent must not or cannot listen on."""
    if ":" in config.host:
        raise AgentStartError(
            f"cannot listen on {config.host}: aiomonitor's terminal server supports IPv4 only"
        )
    if not is_loopback(config.host) and not config.allow_remote:
        raise AgentStartError(
            f"refusing to listen on {config.host}: not a loopback address, and the agent has no "
            f"authentication ({remote_hint} to do it anyway)"
        )
    if not 0 <= config.port <= 65535:
        raise AgentStartError(f"port {config.port} is out of range")


def port_is_free(host: str, port: int) -> bool:
    """Whether aiomonitor could bind `port` now (tested the way it binds: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def is_listening(host: str, port: int) -> bool:
    """Whether something listens on `port` (a listener makes our bind fail)."""
    return not port_is_free(host, port)


def free_port(host: str) -> int:
    """A port nobody uses right now (the OS picks it; we close it again at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class PortSlot:
    """Base port + the first free slot: how workers of one server get one port each.

    A slot is owned by holding an exclusive `flock` on its file for the life of the agent; the
    OS releases it when the process dies, so a restarted worker takes its predecessor's slot.
    """

    def __init__(
        self, index: int, port: int, handle: int | None = None, path: Path | None = None
    ) -> None:
        self.index = index
        self.port = port
        self._handle = handle
        self._path = path

    @classmethod
    def acquire(cls, base_port: int, directory: Path | None) -> PortSlot:
        if directory is None:
            return cls(0, base_port)
        for index in range(MAX_SLOTS):
            port = base_port + index
            if port > 65535:
                break
            path = directory / f"slot-{base_port}-{index}.lock"
            handle = cls._lock(path)
            if handle is not None:
                return cls(index, port, handle, path)
        raise AgentStartError(f"no free agent slot from port {base_port} ({MAX_SLOTS} in use)")

    @staticmethod
    def _lock(path: Path) -> int | None:
        """An fd holding the lock on `path`, or None when another agent holds it."""
        for _ in range(3):
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(handle)
                return None
            try:
                # The owner unlinks the file when it lets go; a lock on an unlinked file
                # protects nothing, so check that the path still names what we locked.
                if os.stat(path).st_ino == os.fstat(handle).st_ino:
                    return handle
            except FileNotFoundError:
                pass
            os.close(handle)
        return None

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        if self._path is not None:
            try:
                self._path.unlink()  # while still locked, so nobody can lock it and lose it
            except OSError:
                pass
        try:
            os.close(handle)  # closing drops the lock
        except OSError:
            pass


# --- aiomonitor, guarded ---------------------------------------------------------------------

_monitor_class: type[Any] | None = None


def guarded_monitor_class() -> type[Any]:
    """aiomonitor's Monitor, with a UI thread that reports a failed start instead of hanging."""
    global _monitor_class
    if _monitor_class is not None:
        return _monitor_class
    from aiomonitor import Monitor

    _install_resilient_telnet_server()

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

        @classmethod
        def _create_socket(cls, host: str, port: int) -> socket.socket:
            listener = _ListeningSocket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(4)
            return listener

    monitor_module.TelnetServer = ResilientTelnetServer


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


# --- process facts ---------------------------------------------------------------------------


def process_started_at() -> float | None:
    """When this process started (wall clock), from /proc; None where that is unavailable."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            after_name = handle.read().rsplit(")", 1)[1].split()
        start_ticks = int(after_name[19])  # field 22 of stat(5)
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _package_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def _worker_index(slot: int) -> int | None:
    """The slot doubles as the worker index in a multiprocessing child (uvicorn --workers)."""
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None:
        return None
    try:
        return slot if multiprocessing.parent_process() is not None else None
    except Exception:
        return None


# --- the agent -------------------------------------------------------------------------------


class Agent:
    """One agent in one server process: aiomonitor + commands + probes + registration."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: AgentConfig | None = None,
        *,
        extra_errors: tuple[str, ...] = (),
    ) -> None:
        self.config = config or AgentConfig()
        self.loop = loop
        self.context = AgentContext(
            loop=loop, loop_thread_id=threading.get_ident(), config=self.config
        )
        for message in extra_errors:
            self.context.record_error(message)
        self.host = self.config.host
        self.port = 0
        self.webui_port = 0
        self.slot: PortSlot | None = None
        self.probes: tuple[Probe, ...] = ()
        self.watchdog: Watchdog | None = None
        self.started_at = time.time()
        self.monitor: Any = None
        self.registration_path: Path | None = None
        self._process: ProcessInfo | None = None
        self._metrics: Any = None
        self._closed = False
        self._close_lock = threading.Lock()

    # --- start -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything, or raise AgentStartError having undone what was started."""
        check_host(self.config)
        try:
            import inspector.agent.commands  # noqa: F401  (registers the termui commands)
        except Exception as error:
            raise AgentStartError(f"aiomonitor is not usable: {error}") from error
        try:
            self._start_monitor()
            self._install_probes()
            self._process = self._describe_process()
            self._register()
            self._start_metrics()
        except AgentStartError:
            self.close()
            raise
        except Exception as error:
            self.close()
            raise AgentStartError(f"{type(error).__name__}: {error}") from error
        _live_agents.add(self)
        logger.info(
            "inspector agent listening on %s:%d (pid %d)", self.host, self.port, os.getpid()
        )

    def _start_monitor(self) -> None:
        host = self.config.host
        directory = _runtime_dir_or_none(self.context)
        if self.config.port == 0:
            self.slot = PortSlot(0, free_port(host))
        else:
            self.slot = PortSlot.acquire(self.config.port, directory)
        port = self.slot.port
        if not port_is_free(host, port):
            raise AgentStartError(f"port {port} on {host} is already in use")
        monitor_class = guarded_monitor_class()
        last_error = "aiomonitor did not start"
        for _ in range(START_ATTEMPTS):
            webui_port = free_port(host)
            monitor = monitor_class(
                self.loop,
                host=host,
                termui_port=port,
                webui_port=webui_port,
                console_port=0,
                console_enabled=False,
                hook_task_factory=False,
            )
            monitor.inspector_agent = self
            monitor.start()
            if monitor.startup_error is not None:
                # The web UI port we picked was taken meanwhile: pick another one.
                last_error = (
                    f"aiomonitor's web UI could not listen on {host}:{webui_port}: "
                    f"{monitor.startup_error}"
                )
                continue
            self.monitor = monitor
            if not is_listening(host, port):
                raise AgentStartError(f"port {port} on {host} is already in use")
            self.port = port
            self.webui_port = webui_port
            return
        raise AgentStartError(last_error)

    def _install_probes(self) -> None:
        installed: list[Probe] = []
        for probe in self._make_probes():
            name = getattr(probe, "name", type(probe).__name__)
            try:
                probe.install(self.context)
            except Exception as error:
                self.context.record_error(f"{name}: install failed: {error!r}")
                _close_probe(probe, self.context)
                continue
            installed.append(probe)
            if isinstance(probe, Watchdog):
                self.watchdog = probe
        self.probes = tuple(installed)

    def _make_probes(self) -> list[Probe]:
        probes: list[Probe] = [Watchdog()]
        try:
            from inspector.agent.tasks import TasksProbe

            probes.append(TasksProbe())
        except Exception as error:
            self.context.record_error(f"tasks probe unavailable: {error!r}")
        try:
            from inspector.agent.probes import default_probes

            probes.extend(default_probes(self.config))
        except Exception as error:
            self.context.record_error(f"lifecycle probes unavailable: {error!r}")
        return probes

    def _describe_process(self) -> ProcessInfo:
        return ProcessInfo(
            pid=os.getpid(),
            argv=tuple(getattr(sys, "orig_argv", sys.argv)),
            python=f"{platform.python_implementation()} {platform.python_version()}",
            started_at=process_started_at() or self.started_at,
            ppid=os.getppid(),
            cwd=_cwd(),
            uvicorn=_package_version("uvicorn"),
            app=self.config.app,
            loop=self.watchdog.implementation if self.watchdog else None,
            agent_version=__version__,
            worker=_worker_index(self.slot.index if self.slot else 0),
        )

    def _register(self) -> None:
        if not self.config.register:
            return
        from inspector.registration import Registration, write_registration

        process = self.process_info()
        try:
            self.registration_path = write_registration(
                Registration(
                    pid=process.pid,
                    ppid=process.ppid or 0,
                    host=self.host,
                    port=self.port,
                    webui_port=self.webui_port,
                    app=self.config.app,
                    python=process.python,
                    uvicorn=process.uvicorn,
                    agent_version=__version__,
                    started_at=process.started_at or self.started_at,
                    argv=process.argv,
                    worker=process.worker,
                )
            )
        except OSError as error:
            self.context.record_error(f"registration failed: {error}")

    def _start_metrics(self) -> None:
        if self.config.metrics_port is None:
            return
        try:
            from inspector.agent.metrics import start_for

            self._metrics = start_for(self)
        except Exception as error:  # metrics are optional: never fail the agent for them
            self.context.record_error(f"metrics unavailable: {error!r}")

    # --- what commands ask -------------------------------------------------------------------

    def process_info(self) -> ProcessInfo:
        if self._process is None:
            self._process = self._describe_process()
        return self._process

    def capabilities(self) -> tuple[Capability, ...]:
        offered: set[str] = {"cancel"}
        for probe in self.probes:
            name = str(getattr(probe, "name", ""))
            offered.update(_PROBE_CAPABILITIES.get(name, (name,)))
        return tuple(c for c in ALL_CAPABILITIES if c in offered)

    def hello(self) -> Hello:
        return Hello(
            protocol=PROTOCOL_VERSION,
            agent_version=__version__,
            process=self.process_info(),
            capabilities=self.capabilities(),
            read_only=self.config.read_only,
            stall_threshold=self.config.stall_threshold,
        )

    @property
    def metrics_port(self) -> int | None:
        """Where Prometheus metrics are served, when `config.metrics_port` asked for them."""
        return int(self._metrics.port) if self._metrics is not None else None

    # --- close -------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop everything within about 3 seconds, whatever the clients do. Never raises."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        _live_agents.discard(self)
        if self.registration_path is not None:
            try:
                self.registration_path.unlink()
            except OSError:
                pass
        metrics, self._metrics = self._metrics, None
        if metrics is not None:
            try:
                metrics.close()
            except Exception as error:
                self.context.record_error(f"metrics close failed: {error!r}")
        monitor, self.monitor = self.monitor, None
        if monitor is not None and monitor.startup_error is None:
            if not close_monitor(monitor):
                logger.warning("inspector agent: a client is not reading; stopped waiting for it")
        for probe in reversed(self.probes):
            _close_probe(probe, self.context)
        if self.slot is not None:
            self.slot.release()


def _close_probe(probe: Probe, context: AgentContext) -> None:
    try:
        probe.close()
    except Exception as error:
        context.record_error(f"{getattr(probe, 'name', probe)}: close failed: {error!r}")


def _runtime_dir_or_none(context: AgentContext) -> Path | None:
    from inspector.registration import runtime_dir

    try:
        return runtime_dir()
    except OSError as error:
        context.record_error(f"runtime directory unusable: {error}")
        return None


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


_live_agents: set[Agent] = set()


@atexit.register
def _close_live_agents() -> None:
    """Last resort for agents nobody closed (no lifespan): remove their registration files."""
    for agent in list(_live_agents):
        agent.close()


def start_agent(
    loop: asyncio.AbstractEventLoop | None = None, config: AgentConfig | None = None
) -> Agent:
    """Start an agent for `loop`; call it on the loop's thread while the loop runs.

    Returns the started Agent (`.port` is the termui port it listens on); raises
    AgentStartError with a one-line reason when it cannot start.
    """
    agent = Agent(loop or asyncio.get_running_loop(), config)
    agent.start()
    return agent


# --- instrument(app) -------------------------------------------------------------------------


def _wrap_requests(app: Any, errors: list[str]) -> Any:
    try:
        from inspector.agent.probes import wrap_asgi
    except Exception as error:
        errors.append(f"request middleware unavailable: {error!r}")
        return app
    try:
        return wrap_asgi(app)
    except Exception as error:
        errors.append(f"request middleware failed: {error!r}")
        return app


def _preload(errors: list[str]) -> None:
    """Import aiomonitor now (~0.3 s) rather than on the running loop at startup."""
    try:
        import inspector.agent.commands  # noqa: F401
    except Exception as error:
        errors.append(f"aiomonitor is not usable: {error!r}")


class InstrumentedApp:
    """An ASGI app with the agent: started at lifespan startup, stopped at shutdown.

    Attribute access falls through to the wrapped app, so `app.state`, `app.include_router` and
    FastAPI decorators keep working on the returned object.
    """

    def __init__(
        self,
        app: Any,
        config: AgentConfig | None = None,
        *,
        strict: bool = False,
        on_start_error: Callable[[str], None] | None = None,
    ) -> None:
        if isinstance(app, InstrumentedApp):  # never two agents for one app
            app = app.__dict__["_inspector_original"]
        self.__dict__["_inspector_original"] = app
        self._config = config or AgentConfig()
        self._strict = strict
        self._on_start_error = on_start_error
        self._errors: list[str] = []
        self._app = _wrap_requests(app, self._errors)
        self._agent: Agent | None = None
        self._attempted = False
        _preload(self._errors)

    @property
    def agent(self) -> Agent | None:
        """The running agent, or None before startup or when it could not start."""
        return self._agent

    def __getattr__(self, name: str) -> Any:
        try:
            original = self.__dict__["_inspector_original"]
        except KeyError:
            raise AttributeError(name) from None
        return getattr(original, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if not self._attempted:  # no lifespan (uvicorn --lifespan off): start on first request
            self._start()
        await self._app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first.get("type") == "lifespan.startup" and not self._attempted:
            error = self._start()
            if error is not None and self._strict:
                await send({"type": "lifespan.startup.failed", "message": error})
                return
        pending = [first]
        shutdown_seen = False

        async def replay_receive() -> Message:
            nonlocal shutdown_seen
            message = pending.pop() if pending else await receive()
            if message.get("type") == "lifespan.shutdown":
                shutdown_seen = True
            return message

        async def watch_send(message: Message) -> None:
            if message.get("type") in (
                "lifespan.startup.failed",
                "lifespan.shutdown.complete",
                "lifespan.shutdown.failed",
            ):
                self._stop()
            await send(message)

        try:
            await self._app(scope, replay_receive, watch_send)
        finally:
            # An app without lifespan support raises at once; the agent then lives until exit.
            if shutdown_seen:
                self._stop()

    def _start(self) -> str | None:
        """Start the agent; return None, or the one-line reason it did not start."""
        self._attempted = True
        try:
            agent = Agent(
                asyncio.get_running_loop(), self._config, extra_errors=tuple(self._errors)
            )
            agent.start()
        except Exception as error:
            message = f"inspector agent not started: {error}"
            if self._strict:
                logger.error(message)
            else:
                logger.warning("%s (the app runs without it)", message)
            if self._on_start_error is not None:
                self._on_start_error(message)
            return message
        self._agent = agent
        return None

    def _stop(self) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            agent.close()


def instrument(app: Any, config: AgentConfig | None = None) -> InstrumentedApp:
    """Wrap an ASGI app (FastAPI, Starlette, any) so the inspector agent runs inside it.

    The one call for people who start uvicorn themselves::

        app = FastAPI()
        ...
        app = inspector.agent.instrument(app)

    The agent starts at lifespan startup (or at the first request without lifespan) and stops
    at shutdown. If it cannot start (a busy port), one warning is logged and the app serves as
    if it were not there.
    """
    if isinstance(app, InstrumentedApp):
        return app
    return InstrumentedApp(app, config)
