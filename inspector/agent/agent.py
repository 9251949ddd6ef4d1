"""The agent's lifecycle: take a port, start aiomonitor, install the probes, close on time.

One `Agent` per server process in the usual case; every started agent is kept in
`inspector.agent.registry` until it closes. Ports live in `ports`, aiomonitor's guards in
`monitor`, snapshots in `snapshot`, and `instrument(app)` in `instrumented`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

from inspector import __version__
from inspector.agent import registry
from inspector.agent.budget import CpuBudget
from inspector.agent.errors import AgentStartError
from inspector.agent.monitor import close_monitor, guarded_monitor_class
from inspector.agent.ports import PortSlot, check_host, port_is_free
from inspector.agent.probe import AgentConfig, AgentContext, Probe
from inspector.agent.process import current_dir, package_version, process_started_at, worker_index
from inspector.agent.snapshot import SnapshotBuilder
from inspector.agent.termui_server import ServerEvents
from inspector.agent.watchdog import Watchdog
from inspector.model import ALL_CAPABILITIES, Capability, ProcessInfo
from inspector.protocol import PROTOCOL_VERSION, Hello

__all__ = ["Agent", "AgentStartError", "live_agents", "start_agent"]

logger = logging.getLogger("inspector.agent")

_PROBE_CAPABILITIES: Final[dict[str, tuple[Capability, ...]]] = {
    "tasks": ("tasks", "stacks"),
    "watchdog": ("stalls",),
}
_OFF_LOOP_PROBES: Final = frozenset({"watchdog", "tasks"})
"""Probes an agent started away from the loop's thread installs at once: they only start
threads and patch classes. The others touch the loop (task factory, exception handler, timers)
and are installed by the loop itself when it next runs callbacks."""


class Agent:
    """One agent in one server process: aiomonitor + commands + probes + registration."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: AgentConfig | None = None,
        *,
        extra_errors: tuple[str, ...] = (),
        loop_thread_id: int | None = None,
    ) -> None:
        self.config = config or AgentConfig()
        self.loop = loop
        if loop_thread_id is None:
            loop_thread_id = threading.get_ident()
        self.context = AgentContext(loop=loop, loop_thread_id=loop_thread_id, config=self.config)
        for message in extra_errors:
            self.context.record_error(message)
        self.host = self.config.host
        self.port = 0
        self.webui_port = 0
        self.slot: PortSlot | None = None
        self.probes: tuple[Probe, ...] = ()
        self.watchdog: Watchdog | None = None
        self.started_at = time.time()
        self.budget = CpuBudget(self.config.cpu_share)
        self.monitor: Any = None
        self.registration_path: Path | None = None
        self._process: ProcessInfo | None = None
        self._metrics: Any = None
        self._events: Any = None
        self.snapshots = SnapshotBuilder(self)
        self._closed = False
        self._close_lock = threading.Lock()
        self.off_loop = False
        """Started from another thread than the loop's (`inspector inject`, the loop maybe
        blocked): what needs the loop's thread waits until the loop runs again."""

    # --- start -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything, or raise AgentStartError having undone what was started.

        On the loop's thread everything is installed now. From another thread (an injected
        agent) the listener, the watchdog's thread and the task probe start now, so a loop that
        is blocked at this moment is reported with its stack; the heartbeat and the probes that
        touch the loop are installed by the loop itself when it comes back.
        """
        check_host(self.config)
        self.off_loop = threading.get_ident() != self.context.loop_thread_id
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
            self._start_events()
        except AgentStartError:
            self.close()
            raise
        except Exception as error:
            self.close()
            raise AgentStartError(f"{type(error).__name__}: {error}") from error
        registry.add(self)
        logger.info(
            "inspector agent listening on %s:%d (pid %d)", self.host, self.port, os.getpid()
        )

    def _start_monitor(self) -> None:
        host = self.config.host
        if self.config.port == 0:
            port = 0  # bound by the server itself: no window for another process to take it
        else:
            self.slot = PortSlot.acquire(self.config.port, _runtime_dir_or_none(self.context))
            port = self.slot.port
            if not port_is_free(host, port):
                raise AgentStartError(f"port {port} on {host} is already in use")
        webui_port = self.config.webui_port
        if webui_port and self.slot is not None:
            webui_port += self.slot.index  # one per worker, as the termui and metrics ports
        monitor = guarded_monitor_class()(
            self.loop,
            host=host,
            termui_port=port,
            webui_port=webui_port,
            read_only=self.config.read_only,
            events=_AgentEvents(self),
            on_refused=self.context.record_action_refused,
        )
        monitor.inspector_agent = self
        monitor.start()
        monitor._event_loop_thread_id = self.context.loop_thread_id  # start() took ours
        error = monitor.startup_error
        if error is not None:
            if isinstance(error, OSError) and monitor.termui is None:
                raise AgentStartError(f"port {port} on {host} is already in use: {error}")
            raise AgentStartError(f"the agent's listeners did not start: {error}")
        self.monitor = monitor
        self.port = monitor.termui.port
        self.webui_port = monitor.webui_port or 0
        if self.slot is None:
            self.slot = PortSlot(0, self.port)

    def _install_probes(self) -> None:
        now, later = self._make_probes(), []
        if self.off_loop:
            later = [p for p in now if getattr(p, "name", "") not in _OFF_LOOP_PROBES]
            now = [p for p in now if p not in later]
        self.probes = self._install(now)
        if later:
            self.context.waiting_for_loop = tuple(getattr(p, "name", "") for p in later)
            self.loop.call_soon_threadsafe(self._install_on_loop, later)

    def _install(self, probes: list[Probe]) -> tuple[Probe, ...]:
        installed: list[Probe] = []
        for probe in probes:
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
        return tuple(installed)

    def _install_on_loop(self, probes: list[Probe]) -> None:
        """The loop-bound probes of an agent started off the loop, on the loop. Never raises."""
        try:
            with self._close_lock:
                if not self._closed:
                    self.probes = self.probes + self._install(probes)
        except Exception as error:  # never raise into the app's loop
            self.context.record_error(f"deferred probe install: {error!r}")
        finally:
            self.context.waiting_for_loop = ()

    def _make_probes(self) -> list[Probe]:
        watchdog = _OffLoopWatchdog() if self.off_loop else Watchdog()
        probes: list[Probe] = [watchdog]
        try:
            from inspector.agent.tasks import TasksProbe

            tasks = TasksProbe()
            tasks.sweep_with(watchdog)  # one periodic thread for the agent, not two
            probes.append(tasks)
        except Exception as error:
            self.context.record_error(f"tasks probe unavailable: {error!r}")
        if not self.config.lifecycle:
            return probes
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
            cwd=current_dir(),
            uvicorn=package_version("uvicorn"),
            app=self.config.app,
            loop=self.watchdog.implementation if self.watchdog else None,
            agent_version=__version__,
            worker=worker_index(self.slot.index if self.slot else 0),
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

    def _start_events(self) -> None:
        if self.config.log_events == "off" and not self.config.otel:
            return
        try:
            from inspector.agent.events import start_for

            self._events = start_for(self)
        except Exception as error:  # logs and OpenTelemetry are optional, like metrics
            self.context.record_error(f"events unavailable: {error!r}")

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

    def paced_seconds(self) -> float:
        """How long answers were held back by the CPU budget, in all."""
        return self.budget.paused_seconds

    @property
    def slot_index(self) -> int:
        """This agent's place among the workers of one server (0 for a single process)."""
        return self.slot.index if self.slot is not None else 0

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
        registry.discard(self)
        if self.registration_path is not None:
            try:
                self.registration_path.unlink()
            except OSError:
                pass
        events, self._events = self._events, None
        if events is not None:
            events.close()  # never raises; writes what is left first
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


class _OffLoopWatchdog(Watchdog):
    """The watchdog of an agent started away from the loop's thread: its thread watches at
    once, so a loop blocked right now is seen as a stall and sampled; the heartbeat that shows
    the loop runs is armed by the loop itself, when it next runs callbacks."""

    def install(self, context: AgentContext) -> None:
        self.bind(context)
        self._thread = threading.Thread(target=self._run, name="inspector-watchdog", daemon=True)
        self._thread.start()
        context.loop.call_soon_threadsafe(self._arm)

    def _arm(self) -> None:
        context = self._context
        if self._closed or context is None:
            return
        try:
            self._handle = context.loop.call_later(self._interval, self._on_heartbeat)
        except Exception as error:  # never raise into the app's loop
            context.record_error(f"watchdog heartbeat: {error!r}")


class _AgentEvents(ServerEvents):
    """The termui server's reports, charged to the agent's budget and counted in its health."""

    def __init__(self, agent: Agent) -> None:
        self._budget = agent.budget
        self._context = agent.context

    def pace(self) -> None:
        self._budget.pace()

    def client_dropped(self, reason: str) -> None:
        self._context.record_client_dropped(reason)

    def client_refused(self) -> None:
        self._context.record_client_refused()


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


def live_agents() -> list[Agent]:
    """The agents started in this process and not closed yet (usually one)."""
    return [agent for agent in registry.live_agents() if isinstance(agent, Agent)]


def start_agent(
    loop: asyncio.AbstractEventLoop | None = None,
    config: AgentConfig | None = None,
    *,
    loop_thread_id: int | None = None,
) -> Agent:
    """Start an agent for `loop`; call it on the loop's thread while the loop runs, or from
    another thread naming the loop's in `loop_thread_id` (see `Agent.start`).

    Returns the started Agent (`.port` is the termui port it listens on); raises
    AgentStartError with a one-line reason when it cannot start.
    """
    agent = Agent(loop or asyncio.get_running_loop(), config, loop_thread_id=loop_thread_id)
    agent.start()
    return agent
