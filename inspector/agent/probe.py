"""The seams between the agent's core and its probes.

A probe owns one kind of fact (requests, background jobs, the threadpool, exceptions) and keeps it
in a bounded structure. The agent installs each probe on the app loop's thread, asks each for its
part of a snapshot from the agent's own thread, and closes it at shutdown. A probe never raises
into the app: it reports its own errors through `AgentContext.record_error`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from inspector.agent.budget import DEFAULT_SHARE
from inspector.model import AgentHealth, Frame

LogEvents = Literal["off", "text", "json", "logging"]


@dataclass(frozen=True)
class AgentConfig:
    """How the agent runs. Every field has a safe default."""

    host: str = "127.0.0.1"
    port: int = 20101
    """aiomonitor's termui port; 0 picks a free port."""
    allow_remote: bool = False
    """Binding anything but loopback is refused unless this is set."""
    stall_threshold: float = 0.1
    """Seconds without a heartbeat that count as a stall."""
    heartbeat_interval: float = 0.02
    read_only: bool = False
    """Refuse every action through every listener: cancelling a task, sending a signal."""
    webui_port: int | None = None
    """Serve aiomonitor's web UI on this port (0 picks one); None, the default, leaves it off."""
    lifecycle: bool = True
    """Track the request lifecycle: requests, background jobs, the threadpool, unseen exceptions.

    Off, nothing runs per request (no middleware, no task factory): tasks, stacks, stalls and
    loop lag are still reported."""
    trace_exceptions: bool = False
    """Python >= 3.12: report exceptions raised and swallowed in application code (needs
    `lifecycle`)."""
    app: str | None = None
    """The app's import string, for registration and display."""
    register: bool = True
    """Write a registration file in the per-user runtime directory."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port (needs prometheus_client)."""
    metrics_host: str | None = None
    """Address the metrics port listens on; None is `host`. Non-loopback needs `allow_remote`."""
    log_events: LogEvents = "off"
    """Log each stall, unseen exception and failed background job (logger "inspector.events"):
    "text" or "json" lines on stderr, "logging" through the app's own logging setup."""
    otel: bool = False
    """Report the metrics through OpenTelemetry's global meter and add each stall as an event to
    the current request's span (needs opentelemetry-api)."""
    max_history: int = 200
    """Bound of each history (stalls, finished requests, background jobs, exceptions)."""
    request_detail_rate: int | None = 200
    """Requests per second recorded in full (status, bytes, history, what they started); above
    it one in N is, N set each second, and the others are listed while in flight and counted.
    None records every request."""
    cpu_share: float = DEFAULT_SHARE
    """Fraction of one core the agent's thread may use answering clients; past it, answers wait."""


@dataclass(frozen=True)
class TaskLink:
    """What a task is doing for the app: the request it serves or the background job it runs."""

    request_id: int | None = None
    request_label: str | None = None
    """"GET /export"."""
    background_label: str | None = None
    """The background job's function name."""
    created_at: Frame | None = None
    """The application line that created the task, when the agent saw it created."""


class TaskLinker(Protocol):
    """Answers "which request or background job is this task working for?"."""

    def link_for(self, task: asyncio.Task[Any]) -> TaskLink | None: ...


@dataclass
class AgentContext:
    """Shared by the agent core and every probe. Created once per agent."""

    loop: asyncio.AbstractEventLoop
    loop_thread_id: int
    config: AgentConfig
    clock: Callable[[], float] = time.time
    linkers: list[TaskLinker] = field(default_factory=list)
    waiting_for_loop: tuple[str, ...] = ()
    """Probes an agent started off the loop installs when the loop next runs (not yet)."""
    _errors: int = 0
    _recent_errors: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    _dropped: int = 0
    _clients_dropped: int = 0
    _clients_refused: int = 0
    _actions_refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def link_for(self, task: asyncio.Task[Any] | None) -> TaskLink | None:
        """Ask each linker in turn; never raises."""
        if task is None:
            return None
        for linker in self.linkers:
            try:
                link = linker.link_for(task)
            except Exception as error:  # a probe bug must not break a snapshot
                self.record_error(f"link_for: {error!r}")
                continue
            if link is not None:
                return link
        return None

    def record_error(self, message: str) -> None:
        """Count an error of the agent's own; the last few are reported in AgentHealth."""
        with self._lock:
            self._errors += 1
            self._recent_errors.append(message[:500])

    def record_dropped(self, count: int = 1) -> None:
        with self._lock:
            self._dropped += count

    def record_client_dropped(self, reason: str) -> None:
        """A client of the agent's port broke a bound (or stopped reading) and was cut off."""
        with self._lock:
            self._clients_dropped += 1
            self._recent_errors.append(f"a client was disconnected: it {reason}"[:500])

    def record_client_refused(self) -> None:
        """A client was turned away because the agent already served as many as it may."""
        with self._lock:
            self._clients_refused += 1

    def record_action_refused(self) -> None:
        """A read-only agent refused a command that acts on the server."""
        with self._lock:
            self._actions_refused += 1

    def health(
        self, probes: tuple[str, ...], collect_seconds: float, paced_seconds: float = 0.0
    ) -> AgentHealth:
        with self._lock:
            return AgentHealth(
                errors=self._errors,
                recent_errors=tuple(self._recent_errors),
                dropped_events=self._dropped,
                collect_seconds=collect_seconds,
                probes=probes,
                read_only=self.config.read_only,
                paced_seconds=paced_seconds,
                clients_dropped=self._clients_dropped,
                clients_refused=self._clients_refused,
                actions_refused=self._actions_refused,
                waiting_for_loop=self.waiting_for_loop,
            )


@dataclass(frozen=True)
class CollectOptions:
    """What a client asked for in one snapshot request."""

    with_stacks: bool = True
    max_tasks: int | None = None
    """Cap on the number of tasks reported (the oldest are kept); None reports all."""


class Probe(Protocol):
    """One kind of fact, collected in the server and reported in snapshots."""

    name: str

    def install(self, context: AgentContext) -> None:
        """Start observing. Called once, on the app loop's thread, while the loop runs."""

    def collect(self, context: AgentContext, options: CollectOptions) -> Mapping[str, Any]:
        """This probe's part of a snapshot: `Snapshot` field names to values.

        Called from the agent's thread, possibly while the app loop is blocked, so it must only
        read (copy) state and never wait on the app loop for long.
        """
        ...

    def close(self) -> None:
        """Stop observing and undo every patch. Called once; must not raise."""
