"""Prometheus metrics from the agent, for fleets where nobody watches a terminal.

Opt-in: `AgentConfig.metrics_port` (`inspector run --metrics-port PORT`) serves them on their own
port from a daemon thread, or `metrics_app()` is an ASGI app to mount on the server itself.
Nothing is counted per request or per task: a custom collector builds one snapshot (without
stacks) when Prometheus scrapes, and turns the agent's bounded histories into counters that only
grow. Label values are bounded: stall locations beyond `MAX_LOCATIONS` are counted as "other".

prometheus_client is imported only here and only when metrics are asked for; without it, one
clear error says what to install.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import typing
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Final

from inspector.agent.probe import CollectOptions
from inspector.agent.registry import LiveAgent, running_agent
from inspector.model import ExceptionKind, Snapshot

logger = logging.getLogger("inspector.agent")

PREFIX: Final = "inspector"
LAG_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_LOCATIONS: Final = 20
"""Distinct stall locations exported; later ones are folded into location="other"."""
OTHER: Final = "other"
UNKNOWN: Final = "unknown"
"""Stalls that left the agent's history before a scrape saw them, or had no application frame."""
MAX_REMEMBERED: Final = 4096
BACKGROUND_OUTCOMES: Final = ("done", "failed", "dropped", "skipped", "cancelled")
INSTALL_HINT: Final = (
    "Prometheus metrics need the prometheus_client package: "
    "pip install 'uvicorn-inspector[metrics]'"
)


class MetricsUnavailable(RuntimeError):
    """prometheus_client is missing, or the metrics port could not be bound."""


def _prometheus() -> Any:
    try:
        import prometheus_client  # noqa: F401
        from prometheus_client import core
    except ImportError:
        raise MetricsUnavailable(INSTALL_HINT) from None
    return core


# --- turning bounded histories into counters -------------------------------------------------


class _Remembered:
    """A bounded set of ids already counted (oldest forgotten first)."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._items: OrderedDict[int, int] = OrderedDict()
        self._limit = limit

    def get(self, key: int) -> int | None:
        return self._items.get(key)

    def put(self, key: int, value: int = 1) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)


class Accumulator:
    """Cumulative counts derived from successive snapshots; safe to call from any thread.

    Histories are bounded, so each scrape adds only what it has not seen: stalls by id, finished
    background jobs by id, folded exception events by the growth of their `count`. Stall totals
    always match the watchdog's own totals; what left the history unseen is put under "unknown".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lag_counts = [0] * (len(LAG_BUCKETS) + 1)
        self.lag_sum = 0.0
        self._lag_seen_until = 0.0
        self.stalls: dict[str, int] = {}
        self.stalled_seconds: dict[str, float] = {}
        self._stall_last_id = 0
        self._stall_total = 0
        self._stall_seconds_total = 0.0
        self.background: dict[str, int] = dict.fromkeys(BACKGROUND_OUTCOMES, 0)
        self._background_seen = _Remembered()
        self.exceptions: dict[str, int] = dict.fromkeys(typing.get_args(ExceptionKind), 0)
        self._exception_seen = _Remembered()

    def add(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._add_lag(snapshot)
            self._add_stalls(snapshot)
            self._add_background(snapshot)
            self._add_exceptions(snapshot)

    def _add_lag(self, snapshot: Snapshot) -> None:
        if snapshot.loop is None:
            return
        for at, lag in snapshot.loop.lag_series:
            if at <= self._lag_seen_until:
                continue
            self._lag_seen_until = at
            self.lag_sum += lag
            index = next((i for i, bound in enumerate(LAG_BUCKETS) if lag <= bound), None)
            self.lag_counts[len(LAG_BUCKETS) if index is None else index] += 1

    def _add_stalls(self, snapshot: Snapshot) -> None:
        counted = 0
        counted_seconds = 0.0
        for stall in snapshot.stalls:
            if stall.ongoing or stall.id <= self._stall_last_id:
                continue
            self._stall_last_id = stall.id
            location = self._location_label(stall_location(stall))
            self.stalls[location] = self.stalls.get(location, 0) + 1
            self.stalled_seconds[location] = (
                self.stalled_seconds.get(location, 0.0) + stall.duration
            )
            counted += 1
            counted_seconds += stall.duration
        if snapshot.loop is None:
            return
        # Stalls that came and left the bounded history between two scrapes.
        missed = snapshot.loop.total_stalls - self._stall_total - counted
        missed_seconds = (
            snapshot.loop.total_stalled_seconds - self._stall_seconds_total - counted_seconds
        )
        if missed > 0:
            self.stalls[UNKNOWN] = self.stalls.get(UNKNOWN, 0) + missed
            self.stalled_seconds[UNKNOWN] = self.stalled_seconds.get(UNKNOWN, 0.0) + max(
                0.0, missed_seconds
            )
        self._stall_total = max(self._stall_total + counted, snapshot.loop.total_stalls)
        self._stall_seconds_total = max(
            self._stall_seconds_total + counted_seconds, snapshot.loop.total_stalled_seconds
        )

    def _location_label(self, location: str | None) -> str:
        if location is None:
            return UNKNOWN
        if location in self.stalls or len(self.stalls) < MAX_LOCATIONS:
            return location
        return OTHER

    def _add_background(self, snapshot: Snapshot) -> None:
        for job in snapshot.background:
            if job.state not in self.background or self._background_seen.get(job.id):
                continue
            self._background_seen.put(job.id)
            self.background[job.state] += 1

    def _add_exceptions(self, snapshot: Snapshot) -> None:
        for event in snapshot.exceptions:
            before = self._exception_seen.get(event.id) or 0
            if event.count > before:
                self.exceptions[event.kind] = (
                    self.exceptions.get(event.kind, 0) + event.count - before
                )
                self._exception_seen.put(event.id, event.count)

    def copy(self) -> dict[str, Any]:
        with self._lock:
            return {
                "lag_counts": list(self.lag_counts),
                "lag_sum": self.lag_sum,
                "stalls": dict(self.stalls),
                "stalled_seconds": dict(self.stalled_seconds),
                "background": dict(self.background),
                "exceptions": dict(self.exceptions),
            }


def stall_location(stall: Any) -> str | None:
    """file:line of the innermost application frame of a stall's first stack sample."""
    from inspector.agent.frames import innermost_application_frame

    for sample in stall.samples:
        frame = innermost_application_frame(sample.frames)
        if frame is not None:
            return f"{_short_path(frame.file)}:{frame.line}"
    return None


def _short_path(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


# --- the collector ---------------------------------------------------------------------------


class InspectorCollector:
    """A prometheus_client collector that reads the agent's state at scrape time."""

    def __init__(self, agent: LiveAgent | None = None) -> None:
        self._agent = agent
        self._accumulator = Accumulator()

    def _current_agent(self) -> LiveAgent | None:
        agent = self._agent
        if agent is not None and not agent.closed:
            return agent
        return running_agent()

    def collect(self) -> Iterator[Any]:
        core = _prometheus()
        agent = self._current_agent()
        up = core.GaugeMetricFamily(
            f"{PREFIX}_agent_up", "1 when the inspector agent is running in this process"
        )
        if agent is None:
            up.add_metric([], 0)
            yield up
            return
        snapshot = agent.snapshots.build(CollectOptions(with_stacks=False))
        self._accumulator.add(snapshot)
        totals = self._accumulator.copy()
        up.add_metric([], 1)
        yield up
        yield from _snapshot_metrics(core, snapshot, totals)


def _snapshot_metrics(core: Any, snapshot: Snapshot, totals: dict[str, Any]) -> Iterator[Any]:
    info = core.InfoMetricFamily(f"{PREFIX}_agent", "The inspected process")
    info.add_metric(
        [],
        {
            "pid": str(snapshot.process.pid),
            "app": snapshot.process.app or "",
            "version": snapshot.process.agent_version or "",
            "worker": "" if snapshot.process.worker is None else str(snapshot.process.worker),
        },
    )
    yield info

    lag = core.HistogramMetricFamily(
        f"{PREFIX}_loop_lag_seconds",
        "Event-loop heartbeat lag, the worst of each half second",
    )
    cumulative, buckets = 0, []
    for bound, count in zip((*LAG_BUCKETS, float("inf")), totals["lag_counts"], strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    lag.add_metric([], buckets, sum_value=totals["lag_sum"])
    yield lag

    stalled_now = core.GaugeMetricFamily(
        f"{PREFIX}_loop_stalled_seconds",
        "How long the event loop has been stalled right now (0 when it runs)",
    )
    stalled_now.add_metric([], (snapshot.loop.stalled_for or 0.0) if snapshot.loop else 0.0)
    yield stalled_now

    stalls = core.CounterMetricFamily(
        f"{PREFIX}_stalls", "Event-loop stalls, by innermost application frame", labels=["location"]
    )
    for location, count in sorted(totals["stalls"].items()):
        stalls.add_metric([location], count)
    yield stalls
    stalled = core.CounterMetricFamily(
        f"{PREFIX}_stalled_seconds",
        "Seconds the event loop was stalled, by innermost application frame",
        labels=["location"],
    )
    for location, seconds in sorted(totals["stalled_seconds"].items()):
        stalled.add_metric([location], seconds)
    yield stalled

    if "tasks" in snapshot.capabilities:
        tasks = core.GaugeMetricFamily(f"{PREFIX}_tasks", "Live asyncio tasks on the app loop")
        tasks.add_metric([], len(snapshot.tasks))
        yield tasks
    if "requests" in snapshot.capabilities:
        requests = core.GaugeMetricFamily(f"{PREFIX}_requests_in_flight", "Requests being served")
        requests.add_metric([], len(snapshot.requests))
        yield requests
    if snapshot.threadpool is not None:
        pool = snapshot.threadpool
        for name, value, text in (
            ("borrowed", pool.borrowed, "anyio threadpool tokens in use"),
            ("total", pool.total, "anyio threadpool tokens available in all"),
            ("waiting", pool.waiting, "tasks waiting for an anyio threadpool token"),
        ):
            gauge = core.GaugeMetricFamily(f"{PREFIX}_threadpool_tokens_{name}", text)
            gauge.add_metric([], value)
            yield gauge
    if "background" in snapshot.capabilities:
        jobs = core.CounterMetricFamily(
            f"{PREFIX}_background_jobs", "Finished background jobs, by outcome", labels=["outcome"]
        )
        for outcome, count in totals["background"].items():
            jobs.add_metric([outcome], count)
        yield jobs
    if "exceptions" in snapshot.capabilities:
        unseen = core.CounterMetricFamily(
            f"{PREFIX}_unseen_exceptions", "Exceptions nobody saw, by kind", labels=["kind"]
        )
        for kind, count in sorted(totals["exceptions"].items()):
            unseen.add_metric([kind], count)
        yield unseen
    errors = core.CounterMetricFamily(f"{PREFIX}_agent_errors", "Errors inside the agent itself")
    errors.add_metric([], snapshot.health.errors)
    yield errors


def registry_for(agent: LiveAgent | None = None) -> Any:
    """A registry holding only the inspector collector (never the global default one)."""
    _prometheus()
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(InspectorCollector(agent))
    return registry


# --- serving ---------------------------------------------------------------------------------


class MetricsServer:
    """The /metrics HTTP server on its own daemon thread; `close()` stops it."""

    def __init__(self, httpd: Any, thread: threading.Thread | None) -> None:
        self._httpd = httpd
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._httpd.server_port)

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        try:
            httpd.shutdown()
            httpd.server_close()
        except Exception:
            pass


def serve(agent: LiveAgent, port: int, host: str | None = None) -> MetricsServer:
    """Serve the agent's metrics on host:port (the agent's host by default); port 0 picks one.

    Raises MetricsUnavailable with one line (missing package, port in use).
    """
    _prometheus()
    from prometheus_client import start_http_server

    address = host or agent.config.host
    try:
        started = start_http_server(port, addr=address, registry=registry_for(agent))
    except OSError as error:
        raise MetricsUnavailable(f"cannot serve metrics on {address}:{port}: {error}") from None
    if not isinstance(started, tuple):  # prometheus_client < 0.19 returns nothing
        raise MetricsUnavailable("prometheus_client >= 0.20 is needed to serve metrics")
    httpd, thread = started
    return MetricsServer(httpd, thread)


def start_for(agent: LiveAgent) -> MetricsServer | None:
    """What `Agent.start()` calls when `config.metrics_port` is set; never raises.

    Each worker of `--workers N` serves on metrics_port + its agent slot (0, 1, ...), so that
    workers never share a port.
    """
    base = agent.config.metrics_port
    if base is None:
        return None
    port = base + agent.slot_index if base else 0
    try:
        server = serve(agent, port)
    except MetricsUnavailable as error:
        agent.context.record_error(str(error))
        logger.warning("inspector agent: %s", error)
        return None
    logger.info("inspector metrics on http://%s:%d/metrics", agent.config.host, server.port)
    return server


class MetricsApp:
    """An ASGI app answering GET with the metrics (a class, so routers treat it as ASGI)."""

    def __init__(self, agent: LiveAgent | None = None) -> None:
        self._registry = registry_for(agent)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain")
            return
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        # In a worker thread: some probes read state on the app loop, which must stay free.
        body = await asyncio.to_thread(generate_latest, self._registry)
        await _respond(send, 200, body if scope["method"] == "GET" else b"", CONTENT_TYPE_LATEST)


def metrics_app(agent: LiveAgent | None = None) -> MetricsApp:
    """The metrics as an ASGI app: ``app.add_route("/metrics", metrics_app())`` (Starlette,
    FastAPI) or ``app.mount("/metrics", metrics_app())`` (then scrape ``/metrics/``).

    Without `agent`, it reports the agent running in this process (started later by
    `instrument()` is fine); `inspector_agent_up` is 0 while there is none.
    """
    return MetricsApp(agent)


async def _respond(send: Any, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
