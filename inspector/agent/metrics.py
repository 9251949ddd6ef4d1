"""Prometheus metrics from the agent, for fleets where nobody watches a terminal.

Opt-in: `AgentConfig.metrics_port` (`inspector run --metrics-port PORT`) serves them on their own
port from a daemon thread, or `metrics_app()` is an ASGI app to mount on the server itself.
Nothing is counted per request or per task: when Prometheus scrapes, a `Reader` builds one
snapshot (without stacks) and turns the agent's bounded histories into counters that only grow.
`Measurements` is that reading, shared with the OpenTelemetry exporter (`otel.py`), so both
report the same numbers.

Every label has a bounded set of values that does not grow with code or traffic: counters are
labelled only by outcome or kind (known in advance, so each starts at 0) and the one gauge
labelled by route uses route templates, at most `MAX_ROUTES` of them. Where a stall happened
(`file:line`) changes with every deploy, so it goes to the logs (`events.py`), never to a label.

Several workers (`--workers N`) each serve on metrics_port + their worker index and label every
series with `worker`. prometheus_client's multiprocess mode does not fit: it aggregates only
metrics kept in its own objects, while these are read from each worker's agent at scrape time.

prometheus_client is imported only here and only when metrics are asked for; without it, one
clear error says what to install.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import typing
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from inspector.addresses import is_loopback
from inspector.agent.probe import AgentConfig, CollectOptions
from inspector.agent.registry import LiveAgent, running_agent
from inspector.model import ExceptionKind, Snapshot, Stall

logger = logging.getLogger("inspector.agent")

PREFIX: Final = "inspector"
LAG_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STALL_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Stall durations, seconds: an alert on one long stall reads the buckets above its bound."""
MAX_ROUTES: Final = 30
"""Distinct route templates labelled; later ones are folded into route="other"."""
OTHER: Final = "other"
UNMATCHED: Final = "unmatched"
"""The route label of a request no route matched (yet)."""
MAX_REMEMBERED: Final = 4096
BACKGROUND_OUTCOMES: Final = ("done", "failed", "dropped", "skipped", "cancelled")
EXCEPTION_KINDS: Final[tuple[str, ...]] = typing.get_args(ExceptionKind)
AGENT_UP: Final = "1 when the inspector agent is running in this process"
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


def metrics_host(config: AgentConfig) -> str:
    """Where metrics are served: `metrics_host`, else the agent's host; the loopback rule holds.

    Raises MetricsUnavailable for a non-loopback address without `allow_remote`: the metrics
    name the app's routes and its failures, which is not for everyone who can reach the pod.
    """
    host = config.metrics_host or config.host
    if not is_loopback(host) and not config.allow_remote:
        raise MetricsUnavailable(
            f"refusing to serve metrics on {host}: not a loopback address (pass --allow-remote, "
            "or allow_remote=True, to do it anyway)"
        )
    return host


# --- turning bounded histories into counters -------------------------------------------------


class Remembered:
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


def _bucket(bounds: tuple[float, ...], value: float) -> int:
    """Index of the first bound `value` fits under; len(bounds) for +Inf."""
    return next((i for i, bound in enumerate(bounds) if value <= bound), len(bounds))


class Accumulator:
    """Cumulative counts derived from successive snapshots; safe to call from any thread.

    Histories are bounded, so each reading adds only what it has not seen: stalls by id,
    finished background jobs by id, folded exception events by the growth of their `count`.
    Stall totals always match the watchdog's own totals; stalls that came and went between two
    readings without being seen are put in the histogram bucket of their mean duration.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lag_counts = [0] * (len(LAG_BUCKETS) + 1)
        self.lag_sum = 0.0
        self._lag_seen_until = 0.0
        self.stalls = 0
        self.stalled_seconds = 0.0
        self.stall_counts = [0] * (len(STALL_BUCKETS) + 1)
        self._stall_last_id = 0
        self.background: dict[str, int] = dict.fromkeys(BACKGROUND_OUTCOMES, 0)
        self._background_seen = Remembered()
        self.exceptions: dict[str, int] = dict.fromkeys(EXCEPTION_KINDS, 0)
        self._exception_seen = Remembered()

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
            self.lag_counts[_bucket(LAG_BUCKETS, lag)] += 1

    def _add_stalls(self, snapshot: Snapshot) -> None:
        counted = 0
        counted_seconds = 0.0
        for stall in snapshot.stalls:
            if stall.ongoing or stall.id <= self._stall_last_id:
                continue
            self._stall_last_id = stall.id
            self.stall_counts[_bucket(STALL_BUCKETS, stall.duration)] += 1
            counted += 1
            counted_seconds += stall.duration
        self.stalls += counted
        self.stalled_seconds += counted_seconds
        if snapshot.loop is None:
            return
        missed = snapshot.loop.total_stalls - self.stalls
        if missed > 0:
            missed_seconds = max(0.0, snapshot.loop.total_stalled_seconds - self.stalled_seconds)
            self.stall_counts[_bucket(STALL_BUCKETS, missed_seconds / missed)] += missed
            self.stalls += missed
            self.stalled_seconds += missed_seconds

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


def stall_location(stall: Stall) -> str | None:
    """file:line of the innermost application frame where the stall spent most of its time
    (the sample seen most often; the first one among equals)."""
    from inspector.agent.frames import innermost_application_frame

    samples = sorted(stall.samples, key=lambda sample: -sample.count)
    for sample in samples:
        frame = innermost_application_frame(sample.frames)
        if frame is not None:
            return f"{short_path(frame.file)}:{frame.line}"
    return None


def short_path(path: str) -> str:
    """`path` relative to the working directory when it is under it (as people name files)."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


# --- one reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurements:
    """Everything the agent exports at one moment, for Prometheus and OpenTelemetry alike.

    Counters are cumulative since the `Reader` was made. A field is None when the probe that
    measures it is not running (`--no-lifecycle`, no anyio), so that it is left out rather than
    reported as 0.
    """

    taken_at: float
    worker: int | None
    info: dict[str, str]
    lag_counts: tuple[int, ...]
    """Per `LAG_BUCKETS` bound, then +Inf; not cumulative."""
    lag_sum: float
    stalled_for: float
    stalls: int
    stalled_seconds: float
    stall_counts: tuple[int, ...]
    """Per `STALL_BUCKETS` bound, then +Inf; not cumulative."""
    agent_errors: int
    tasks: int | None = None
    requests_in_flight: int | None = None
    oldest_in_flight: dict[str, float] | None = None
    """Route template → age in seconds of its oldest HTTP request in flight."""
    threadpool: tuple[int, int, int] | None = None
    """(borrowed, capacity, waiting) of anyio's thread limiter."""
    background: dict[str, int] | None = None
    exceptions: dict[str, int] | None = None
    lag_points: tuple[tuple[float, float], ...] = field(default=(), repr=False)
    """The lag points (wall time, seconds) this reading saw first."""


class Reader:
    """Reads one agent's measurements on demand, from any thread (scrape or collection time).

    Without an agent it reports the one running in this process, so a `/metrics` route mounted
    before the agent started works; `read()` is None while there is none.
    """

    def __init__(self, agent: LiveAgent | None = None, worker: int | None = None) -> None:
        self._agent = agent
        self._worker = worker
        """The worker index to report, when the agent's own is not the one (`start_for`)."""
        self._accumulator = Accumulator()
        self._routes: set[str] = set()
        self._lock = threading.Lock()
        self._last: Measurements | None = None
        self._last_at = float("-inf")

    def agent(self) -> LiveAgent | None:
        agent = self._agent
        if agent is not None and not agent.closed:
            return agent
        return running_agent()

    def read(self, max_age: float = 0.0) -> Measurements | None:
        """A new reading, or the last one when it is at most `max_age` seconds old."""
        agent = self.agent()
        if agent is None:
            return None
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last_at <= max_age:
                return self._last
            snapshot = agent.snapshots.build(CollectOptions(with_stacks=False))
            lag_seen = self._accumulator._lag_seen_until
            self._accumulator.add(snapshot)
            self._last = self._measure(snapshot, lag_seen)
            self._last_at = now
            return self._last

    def _route_label(self, route: str | None) -> str:
        if route is None:
            return UNMATCHED
        if route in self._routes:
            return route
        if len(self._routes) < MAX_ROUTES:
            self._routes.add(route)
            return route
        return OTHER

    def _measure(self, snapshot: Snapshot, lag_seen: float) -> Measurements:
        totals = self._accumulator
        process = snapshot.process
        loop = snapshot.loop
        capabilities = snapshot.capabilities
        oldest: dict[str, float] | None = None
        if "requests" in capabilities:
            oldest = {}
            for request in snapshot.requests:
                if request.scheme != "http":
                    continue  # a websocket is open for as long as it is used
                age = max(0.0, snapshot.taken_at - request.started_at)
                label = self._route_label(request.route)
                oldest[label] = max(oldest.get(label, 0.0), age)
        pool = snapshot.threadpool
        worker = self._worker if self._worker is not None else process.worker
        return Measurements(
            taken_at=snapshot.taken_at,
            worker=worker,
            info={
                "pid": str(process.pid),
                "app": process.app or "",
                "version": process.agent_version or "",
                "worker": "" if worker is None else str(worker),
            },
            lag_counts=tuple(totals.lag_counts),
            lag_sum=totals.lag_sum,
            stalled_for=(loop.stalled_for or 0.0) if loop is not None else 0.0,
            stalls=totals.stalls,
            stalled_seconds=totals.stalled_seconds,
            stall_counts=tuple(totals.stall_counts),
            agent_errors=snapshot.health.errors,
            tasks=len(snapshot.tasks) if "tasks" in capabilities else None,
            requests_in_flight=len(snapshot.requests) if "requests" in capabilities else None,
            oldest_in_flight=oldest,
            threadpool=(pool.borrowed, pool.total, pool.waiting) if pool is not None else None,
            background=dict(totals.background) if "background" in capabilities else None,
            exceptions=dict(totals.exceptions) if "exceptions" in capabilities else None,
            lag_points=tuple(p for p in loop.lag_series if p[0] > lag_seen) if loop else (),
        )


# --- the Prometheus collector ------------------------------------------------------------------


class InspectorCollector:
    """A prometheus_client collector that reads the agent's state at scrape time."""

    def __init__(self, agent: LiveAgent | None = None, worker: int | None = None) -> None:
        self._reader = Reader(agent, worker)

    def collect(self) -> Iterator[Any]:
        core = _prometheus()
        measured = self._reader.read()
        if measured is None:
            up = core.GaugeMetricFamily(f"{PREFIX}_agent_up", AGENT_UP)
            up.add_metric([], 0)
            yield up
            return
        yield from prometheus_families(core, measured)


def _cumulative(bounds: tuple[float, ...], counts: tuple[int, ...]) -> list[tuple[str, int]]:
    buckets, running = [], 0
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
    return buckets


def prometheus_families(core: Any, m: Measurements) -> Iterator[Any]:
    """The metric families of one reading, each series labelled with `worker` in a worker."""
    worker_names = ["worker"] if m.worker is not None else []
    worker_values = [str(m.worker)] if m.worker is not None else []

    def family(kind: str, name: str, text: str, labels: tuple[str, ...] = ()) -> Any:
        cls = getattr(core, f"{kind}MetricFamily")
        return cls(f"{PREFIX}_{name}", text, labels=[*worker_names, *labels])

    def add(metric: Any, value: float, *labels: str) -> Any:
        metric.add_metric([*worker_values, *labels], value)
        return metric

    yield add(family("Gauge", "agent_up", AGENT_UP), 1)
    info = core.InfoMetricFamily(f"{PREFIX}_agent", "The inspected process")
    info.add_metric([], m.info)
    yield info

    lag = family("Histogram", "loop_lag_seconds", "Event-loop heartbeat lag, worst of each 0.5 s")
    lag.add_metric(worker_values, _cumulative(LAG_BUCKETS, m.lag_counts), sum_value=m.lag_sum)
    yield lag
    yield add(
        family(
            "Gauge",
            "loop_stalled_seconds",
            "How long the event loop has been stalled right now (0 when it runs)",
        ),
        m.stalled_for,
    )
    durations = family(
        "Histogram", "stall_duration_seconds", "Event-loop stalls by duration (finished stalls)"
    )
    durations.add_metric(
        worker_values, _cumulative(STALL_BUCKETS, m.stall_counts), sum_value=m.stalled_seconds
    )
    yield durations
    yield add(family("Counter", "stalls", "Event-loop stalls (finished)"), m.stalls)
    yield add(
        family("Counter", "stalled_seconds", "Seconds the event loop was stalled"),
        m.stalled_seconds,
    )
    if m.tasks is not None:
        yield add(family("Gauge", "tasks", "Live asyncio tasks on the app loop"), m.tasks)
    if m.requests_in_flight is not None:
        yield add(
            family("Gauge", "requests_in_flight", "Requests being served"), m.requests_in_flight
        )
    if m.oldest_in_flight is not None:
        oldest = family(
            "Gauge",
            "requests_in_flight_oldest_seconds",
            "Age of the oldest HTTP request in flight, by route template",
            ("route",),
        )
        for route, age in sorted(m.oldest_in_flight.items()):
            add(oldest, age, route)
        yield oldest
    if m.threadpool is not None:
        for name, value, text in zip(
            ("borrowed", "capacity", "waiting"),
            m.threadpool,
            (
                "anyio threadpool tokens in use",
                "anyio threadpool tokens in all (the limiter's total_tokens)",
                "tasks waiting for an anyio threadpool token",
            ),
            strict=True,
        ):
            yield add(family("Gauge", f"threadpool_tokens_{name}", text), value)
    if m.background is not None:
        jobs = family(
            "Counter", "background_jobs", "Finished background jobs, by outcome", ("outcome",)
        )
        for outcome in BACKGROUND_OUTCOMES:
            add(jobs, m.background.get(outcome, 0), outcome)
        yield jobs
    if m.exceptions is not None:
        unseen = family("Counter", "unseen_exceptions", "Exceptions nobody saw, by kind", ("kind",))
        for kind, count in sorted(m.exceptions.items()):
            add(unseen, count, kind)
        yield unseen
    yield add(family("Counter", "agent_errors", "Errors inside the agent itself"), m.agent_errors)


def registry_for(
    agent: LiveAgent | None = None, *, standard: bool = True, worker: int | None = None
) -> Any:
    """A registry of its own (never the global default one) holding the inspector collector and,
    with `standard`, prometheus_client's process_* and python_* collectors."""
    _prometheus()
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )

    registry = CollectorRegistry(auto_describe=False)
    registry.register(InspectorCollector(agent, worker))
    if standard:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


# --- serving ---------------------------------------------------------------------------------


class MetricsServer:
    """The /metrics HTTP server on its own daemon thread; `close()` stops it."""

    def __init__(self, httpd: Any, thread: threading.Thread | None, host: str = "") -> None:
        self._httpd = httpd
        self._thread = thread
        self._port = int(httpd.server_port)
        self.host = host
        self.slot: Any = None
        """A port slot of its own, when the agent had none to share (`--inspect-port 0`)."""

    @property
    def port(self) -> int:
        return self._port

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            try:
                httpd.shutdown()
                httpd.server_close()
            except Exception:
                pass
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release()


def serve(
    agent: LiveAgent, port: int, host: str | None = None, worker: int | None = None
) -> MetricsServer:
    """Serve the agent's metrics on host:port (the configured metrics host by default); port 0
    picks one.

    Raises MetricsUnavailable with one line (missing package, refused address, port in use).
    """
    _prometheus()
    from prometheus_client import start_http_server

    address = host or metrics_host(agent.config)
    try:
        registry = registry_for(agent, worker=worker)
        started = start_http_server(port, addr=address, registry=registry)
    except OSError as error:
        raise MetricsUnavailable(f"cannot serve metrics on {address}:{port}: {error}") from None
    if not isinstance(started, tuple):  # prometheus_client < 0.19 returns nothing
        raise MetricsUnavailable("prometheus_client >= 0.20 is needed to serve metrics")
    httpd, thread = started
    return MetricsServer(httpd, thread, address)


def start_for(agent: LiveAgent) -> MetricsServer | None:
    """What `Agent.start()` calls when `config.metrics_port` is set; never raises.

    Each worker of `--workers N` serves on metrics_port + its worker index (the agent's port
    slot), so that workers never share a port and a scrape config can list them all.
    """
    base = agent.config.metrics_port
    if base is None:
        return None
    slot = worker = None
    try:
        index = agent.slot_index
        if base and agent.config.port == 0:
            # The agent took no slot (its port came from the OS): workers need one each, and
            # the slot is then the worker index to label the series with.
            from inspector.agent.process import worker_index

            slot = _own_slot(agent, base)
            index = slot.index
            worker = worker_index(index)
        server = serve(agent, base + index if base else 0, worker=worker)
    except Exception as error:  # metrics are optional: report and go on
        if slot is not None:
            slot.release()
        agent.context.record_error(f"metrics: {error}")
        logger.warning("inspector agent: %s", error)
        return None
    server.slot = slot
    logger.info("inspector metrics on http://%s:%d/metrics", server.host, server.port)
    return server


def _own_slot(agent: LiveAgent, base: int) -> Any:
    from inspector.agent.ports import PortSlot
    from inspector.registration import runtime_dir

    try:
        directory = runtime_dir()
    except OSError:
        directory = None
    return PortSlot.acquire(base, directory)


class MetricsApp:
    """An ASGI app answering GET with the metrics (a class, so routers treat it as ASGI)."""

    def __init__(self, agent: LiveAgent | None = None, *, standard: bool = True) -> None:
        self._registry = registry_for(agent, standard=standard)
        self._agent = agent
        self._warned = False

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

        self._warn_once_in_a_worker()
        # In a worker thread: some probes read state on the app loop, which must stay free.
        body = await asyncio.to_thread(generate_latest, self._registry)
        await _respond(send, 200, body if scope["method"] == "GET" else b"", CONTENT_TYPE_LATEST)

    def _warn_once_in_a_worker(self) -> None:
        if self._warned:
            return
        agent = self._agent if self._agent is not None else running_agent()
        if agent is None:
            return
        self._warned = True
        from inspector.agent.process import worker_index

        worker = worker_index(agent.slot_index)
        if worker is not None:
            logger.warning(
                "inspector: /metrics in worker %d answers for that worker only, and each scrape "
                "reaches any worker: serve them with --metrics-port (worker i on port + i)",
                worker,
            )


def metrics_app(agent: LiveAgent | None = None, *, standard: bool = True) -> MetricsApp:
    """The metrics as an ASGI app: ``app.add_route("/metrics", metrics_app())`` (Starlette,
    FastAPI) or ``app.mount("/metrics", metrics_app())`` (then scrape ``/metrics/``).

    Without `agent`, it reports the agent running in this process (started later by
    `instrument()` is fine); `inspector_agent_up` is 0 while there is none. `standard=False`
    leaves out the process_* and python_* series (when the app already exports them).
    """
    return MetricsApp(agent, standard=standard)


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
