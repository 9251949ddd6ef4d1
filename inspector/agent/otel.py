"""The agent's measurements through OpenTelemetry, and each stall on the request's span.

For teams whose monitoring speaks OTLP rather than Prometheus (`AgentConfig.otel`,
`inspector run --otel`). The metrics are the Prometheus ones (`metrics.Measurements`, read by
the same `Reader`) as observable instruments of the global meter provider (or one given), read
at collection time; the loop lag and the stall durations are histograms recorded on the agent's
events thread. Nothing is recorded per request.

Each stall becomes an event ("inspector.stall") on the span that is current in the task the loop
was running when the watchdog saw it: that task's context is read from the watchdog thread (a
copy, so the running task is not disturbed) while the stall is still going on, so the request's
span is still open. When the span is still recording as the stall ends, a second event
("inspector.stall.end") gives the stall's full duration. No span is ever created.

opentelemetry-api is imported only here, only when asked for (`pip install
'uvicorn-inspector[otel]'`); the app (or `opentelemetry-instrument`) brings the SDK and exporter.
"""

from __future__ import annotations

import contextvars
import gc
from collections.abc import Callable, Iterator
from typing import Any, Final, Literal, NamedTuple, Protocol

from inspector import __version__
from inspector.agent.metrics import (
    BACKGROUND_OUTCOMES,
    LAG_BUCKETS,
    STALL_BUCKETS,
    Measurements,
    Reader,
    short_path,
)
from inspector.agent.probe import AgentConfig, AgentContext
from inspector.agent.registry import LiveAgent
from inspector.agent.watchdog import Watchdog
from inspector.model import Stall

METER_NAME: Final = "inspector"
STALL_EVENT: Final = "inspector.stall"
STALL_END_EVENT: Final = "inspector.stall.end"
READING_MAX_AGE: Final = 1.0
"""Seconds one reading serves every observable callback of the same collection."""
INSTALL_HINT: Final = (
    "OpenTelemetry needs the opentelemetry-api package: pip install 'uvicorn-inspector[otel]'"
)


Reading = list[tuple[float, dict[str, str]]]


class Instrument(NamedTuple):
    """One observable instrument: what it is called and how it reads a `Measurements`."""

    kind: Literal["gauge", "counter"]
    name: str
    unit: str
    text: str
    read: Callable[[Measurements], Reading]


INSTRUMENTS: Final[tuple[Instrument, ...]] = (
    Instrument(
        "gauge",
        "inspector.loop.stalled_for",
        "s",
        "How long the event loop has been stalled right now (0 when it runs)",
        lambda m: [(m.stalled_for, {})],
    ),
    Instrument(
        "counter",
        "inspector.loop.stalls",
        "{stall}",
        "Event-loop stalls (finished)",
        lambda m: [(m.stalls, {})],
    ),
    Instrument(
        "counter",
        "inspector.loop.stalled_time",
        "s",
        "Seconds the event loop was stalled",
        lambda m: [(m.stalled_seconds, {})],
    ),
    Instrument(
        "gauge",
        "inspector.tasks",
        "{task}",
        "Live asyncio tasks on the app loop",
        lambda m: [] if m.tasks is None else [(m.tasks, {})],
    ),
    Instrument(
        "gauge",
        "inspector.requests.in_flight",
        "{request}",
        "Requests being served",
        lambda m: [] if m.requests_in_flight is None else [(m.requests_in_flight, {})],
    ),
    Instrument(
        "gauge",
        "inspector.requests.in_flight.oldest",
        "s",
        "Age of the oldest HTTP request in flight, by route template",
        lambda m: [
            (age, {"http.route": route})
            for route, age in sorted((m.oldest_in_flight or {}).items())
        ],
    ),
    Instrument(
        "gauge",
        "inspector.threadpool.tokens.borrowed",
        "{token}",
        "anyio threadpool tokens in use",
        lambda m: [] if m.threadpool is None else [(m.threadpool[0], {})],
    ),
    Instrument(
        "gauge",
        "inspector.threadpool.tokens.capacity",
        "{token}",
        "anyio threadpool tokens in all",
        lambda m: [] if m.threadpool is None else [(m.threadpool[1], {})],
    ),
    Instrument(
        "gauge",
        "inspector.threadpool.tokens.waiting",
        "{task}",
        "tasks waiting for an anyio threadpool token",
        lambda m: [] if m.threadpool is None else [(m.threadpool[2], {})],
    ),
    Instrument(
        "counter",
        "inspector.background.jobs",
        "{job}",
        "Finished background jobs, by outcome",
        lambda m: (
            []
            if m.background is None
            else [
                (m.background.get(outcome, 0), {"outcome": outcome})
                for outcome in BACKGROUND_OUTCOMES
            ]
        ),
    ),
    Instrument(
        "counter",
        "inspector.exceptions.unseen",
        "{exception}",
        "Exceptions nobody saw, by kind",
        lambda m: (
            []
            if m.exceptions is None
            else [(count, {"kind": kind}) for kind, count in sorted(m.exceptions.items())]
        ),
    ),
    Instrument(
        "counter",
        "inspector.agent.errors",
        "{error}",
        "Errors inside the agent itself",
        lambda m: [(m.agent_errors, {})],
    ),
)


class OtelUnavailable(RuntimeError):
    """opentelemetry-api is missing."""


class OtelAgent(LiveAgent, Protocol):
    @property
    def watchdog(self) -> Watchdog | None: ...


def _api() -> tuple[Any, Any]:
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        raise OtelUnavailable(INSTALL_HINT) from None
    return metrics, trace


def task_context(task: Any) -> contextvars.Context | None:
    """The context a task runs its steps in, read from another thread.

    `Task.get_context()` on Python >= 3.12; before, the C task keeps it in a field that is not
    exposed, but it is the first context its garbage-collector traversal visits.
    """
    get_context = getattr(task, "get_context", None)
    if get_context is not None:
        context: contextvars.Context = get_context()
        return context
    own = getattr(task, "_context", None)  # the pure-Python Task
    if isinstance(own, contextvars.Context):
        return own
    for referent in gc.get_referents(task):
        if isinstance(referent, contextvars.Context):
            return referent
    return None


class OtelExporter:
    """The observable instruments, the two histograms and the stall span events of one agent."""

    def __init__(
        self,
        agent: LiveAgent,
        meter_provider: Any = None,
        watchdog: Watchdog | None = None,
    ) -> None:
        metrics, trace = _api()
        self._trace = trace
        self._context: AgentContext = agent.context
        self._config: AgentConfig = agent.config
        self._watchdog = watchdog
        self._reader = Reader(agent)
        self._lag_seen = 0.0
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter(METER_NAME, __version__)
        self._observation = metrics.Observation
        self._worker: dict[str, str] = {}
        self._lag = _histogram(
            meter,
            "inspector.loop.lag",
            "s",
            "Event-loop heartbeat lag, worst of each 0.5 s",
            LAG_BUCKETS,
        )
        self._stall_durations = _histogram(
            meter,
            "inspector.loop.stall.duration",
            "s",
            "Event-loop stalls by duration",
            STALL_BUCKETS,
        )
        for instrument in INSTRUMENTS:
            create = (
                meter.create_observable_gauge
                if instrument.kind == "gauge"
                else meter.create_observable_counter
            )
            create(
                instrument.name,
                callbacks=[self._observe(instrument.read)],
                unit=instrument.unit,
                description=instrument.text,
            )

    # --- metrics -----------------------------------------------------------------------------

    def _observe(self, read: Any) -> Any:
        def callback(options: Any) -> Iterator[Any]:
            try:
                measured = self._reader.read(max_age=READING_MAX_AGE)
                if measured is None:
                    return
                self._note_worker(measured)
                for value, attributes in read(measured):
                    yield self._observation(value, {**attributes, **self._worker})
            except Exception as error:  # a collection must never fail for the agent
                self._context.record_error(f"otel: {error!r}")

        return callback

    def _note_worker(self, measured: Measurements) -> None:
        if measured.worker is not None:
            self._worker = {"worker": str(measured.worker)}

    def tick(self) -> None:
        """Record the lag points the watchdog added since the last tick (events thread)."""
        watchdog = self._watchdog
        if watchdog is None:
            return
        for at, lag in watchdog.loop_stats().lag_series:
            if at > self._lag_seen:
                self._lag_seen = at
                self._lag.record(lag, self._worker)

    # --- spans -------------------------------------------------------------------------------

    def span_of(self, task: Any) -> Any:
        """The recording span current in `task` (watchdog thread, the loop stalled)."""
        context = task_context(task)
        if context is None:
            return None
        span = context.copy().run(self._trace.get_current_span)
        return span if span.is_recording() else None

    def stall_began(self, stall: Stall, span: Any) -> None:
        attributes: dict[str, Any] = {
            "inspector.stall.id": stall.id,
            "inspector.stall.seen_after_s": round(stall.duration, 3),
            "inspector.stall.threshold_s": self._config.stall_threshold,
        }
        attributes.update(_code_attributes(stall))
        if stall.task_name:
            attributes["inspector.task"] = stall.task_name
        at = int(stall.started_at * 1e9)
        opened = getattr(span, "start_time", None)  # the SDK's spans know when they began
        if isinstance(opened, int):
            at = max(at, opened)  # the stall's start is an estimate, to half a heartbeat
        span.add_event(STALL_EVENT, attributes, timestamp=at)

    def stall_ended(self, stall: Stall, span: Any) -> None:
        self._stall_durations.record(stall.duration, self._worker)
        if span is not None and span.is_recording():
            span.add_event(
                STALL_END_EVENT,
                {"inspector.stall.id": stall.id, "inspector.stall.duration_s": stall.duration},
                timestamp=int((stall.started_at + stall.duration) * 1e9),
            )

    def close(self) -> None:
        """Observable instruments cannot be removed from a meter: they report the last reading's
        agent as gone (nothing) from now on."""
        self._reader = _Closed()  # type: ignore[assignment]


class _Closed:
    def read(self, max_age: float = 0.0) -> None:
        return None


def _histogram(meter: Any, name: str, unit: str, text: str, bounds: tuple[float, ...]) -> Any:
    try:
        return meter.create_histogram(
            name, unit=unit, description=text, explicit_bucket_boundaries_advisory=list(bounds)
        )
    except TypeError:  # opentelemetry-api < 1.23 takes no advice
        return meter.create_histogram(name, unit=unit, description=text)


def _code_attributes(stall: Stall) -> dict[str, Any]:
    from inspector.agent.frames import innermost_application_frame

    for sample in stall.samples:
        frame = innermost_application_frame(sample.frames)
        if frame is not None:
            return {
                "code.filepath": short_path(frame.file),
                "code.lineno": frame.line,
                "code.function": frame.function,
            }
    return {}


def start_for(agent: OtelAgent, meter_provider: Any = None) -> OtelExporter:
    """The exporter for `agent` (the global meter provider unless one is given).

    Raises OtelUnavailable when opentelemetry-api is missing.
    """
    return OtelExporter(agent, meter_provider, agent.watchdog)
