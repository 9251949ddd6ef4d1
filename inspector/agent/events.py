"""Stalls, unseen exceptions and failed background jobs as log lines (and span events).

Teams that never open a terminal read logs. With `AgentConfig.log_events` on, the agent writes
one record per stall, per unseen exception and per failed background job to the logger
"inspector.events", each on one line with structured fields (`extra`: kind, severity, location
"file:line", request). These are the agent's own facts: the diagnosis (`doctor`'s findings) is
client-side code the agent must not load, so a record says "the loop stalled 2.3 s at
app.py:42", not which rule that breaks.

Nothing here runs on the app's loop. Stalls come from the watchdog (`StallListener`) as they
begin and end; unseen exceptions and failed jobs are read from their probes' bounded histories
once a second. Each is put in a bounded queue without waiting, and one daemon thread formats and
emits them, so a slow handler (a full pipe, a log shipper on the network) holds up only that
thread. A token bucket bounds the records; past it, events are counted and one record later says
how many were left out. The records come from a logger under "inspector", which the exceptions
probe never counts as the app's errors, and carry no exc_info: logging them cannot feed back
into what is logged.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final, Literal, Protocol

from inspector.agent.metrics import Remembered, short_path, stall_location
from inspector.agent.otel import OtelAgent, OtelUnavailable
from inspector.agent.probe import AgentContext, Probe
from inspector.agent.watchdog import Watchdog
from inspector.durations import duration
from inspector.escape import printable
from inspector.model import ExceptionEvent, ExceptionInfo, Frame, ProcessInfo, Stall

EVENTS_LOGGER: Final = "inspector.events"
POLL_INTERVAL: Final = 1.0
"""Seconds between two reads of the exception and background-job histories."""
QUEUE_LIMIT: Final = 1000
"""Events waiting for the writer thread; past it new ones are dropped (and counted)."""
LOG_RATE: Final = 1.0
"""Records a second, sustained."""
LOG_BURST: Final = 20
"""Records at once after a quiet spell."""
ERROR_STALL: Final = 1.0
"""A stall this long or longer is logged at ERROR, shorter ones at WARNING."""
ONGOING_STALL: Final = 5.0
"""A stall still going on after this many seconds gets a record at once (a loop that never
comes back would otherwise never be logged), and its usual record when it ends."""
CLOSE_WAIT: Final = 1.0

Kind = Literal["stall", "unseen-exception", "background-failed", "suppressed"]
Severity = Literal["warning", "error"]


@dataclass(frozen=True)
class AgentEvent:
    """One fact worth a log line."""

    kind: Kind
    severity: Severity
    message: str
    at: float
    """Wall clock, seconds."""
    location: str | None = None
    """file:line of the application code involved."""
    request: str | None = None
    """"GET /export": the request it happened in."""
    fields: dict[str, Any] = field(default_factory=dict)
    """More structured fields: stall_seconds, exception, exception_kind, occurrences, job..."""


# --- turning the agent's records into events -------------------------------------------------


def _where(frame: Frame | None) -> str | None:
    return f"{short_path(frame.file)}:{frame.line}" if frame is not None else None


def _error_text(error: ExceptionInfo | None) -> str:
    if error is None:
        return "an exception"
    return f"{error.type}: {error.message}" if error.message else error.type


def _suffix(location: str | None, request: str | None) -> str:
    text = f" at {location}" if location else ""
    return text + (f" ({request})" if request else "")


def stall_event(stall: Stall) -> AgentEvent:
    location = stall_location(stall)
    request = stall.request_label or (
        f"background job {stall.background_label}" if stall.background_label else None
    )
    fields: dict[str, Any] = {"stall_seconds": round(stall.duration, 3)}
    if stall.ongoing:
        fields["ongoing"] = True
    if stall.task_name:
        fields["task"] = stall.task_name
    still = " so far, and still is" if stall.ongoing else ""
    how_long = f"for {duration(stall.duration)}{still}"
    return AgentEvent(
        kind="stall",
        severity="error" if stall.duration >= ERROR_STALL else "warning",
        message=f"event loop stalled {how_long}{_suffix(location, request)}",
        at=stall.started_at,
        location=location,
        request=request,
        fields=fields,
    )


def exception_event(event: ExceptionEvent, occurrences: int) -> AgentEvent:
    location = _where(event.location)
    times = f" ({occurrences} times)" if occurrences > 1 else ""
    fields: dict[str, Any] = {
        "exception": _error_text(event.error),
        "exception_kind": event.kind,
        "occurrences": occurrences,
    }
    if event.task_name:
        fields["task"] = event.task_name
    return AgentEvent(
        kind="unseen-exception",
        severity="error",
        message=f"unseen exception, {event.kind}: {_error_text(event.error)}{times}"
        + _suffix(location, event.request_label),
        at=event.at,
        location=location,
        request=event.request_label,
        fields=fields,
    )


def job_failed_event(job: Any) -> AgentEvent:
    """A failed background job (a probe's job record: function, error, call_site, ...)."""
    from inspector.agent.frames import innermost_application_frame

    error: ExceptionInfo | None = job.error
    frame = innermost_application_frame(error.traceback) if error is not None else None
    location = _where(frame or job.call_site)
    request: str | None = job.request_label
    return AgentEvent(
        kind="background-failed",
        severity="error",
        message=f"background job {job.function} failed: {_error_text(error)}"
        + _suffix(location, request),
        at=job.finished_at or time.time(),
        location=location,
        request=request,
        fields={"job": job.function, "exception": _error_text(error)},
    )


# --- the log records -------------------------------------------------------------------------


class TokenBucket:
    """At most `burst` at once and `rate` a second after that."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


_FIELDS_FIRST: Final = ("kind", "severity", "location", "request")
_RESERVED: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """`time LEVEL inspector: message kind=... severity=... location=... request="..."`."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_iso(record.created), record.levelname, "inspector:", record.getMessage()]
        for name in (*_FIELDS_FIRST, *getattr(record, "inspector_fields", ())):
            value = getattr(record, name, None)
            if value is None:
                continue
            text = str(value)
            if not text or any(c in text for c in ' "='):
                text = json.dumps(text)
            parts.append(f"{name}={text}")
        return printable(" ".join(parts))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and every structured field."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*_FIELDS_FIRST, *getattr(record, "inspector_fields", ())):
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        return json.dumps(data, default=str)


class EventLog:
    """Writes events as log records, rate-limited; "text"/"json" add a stderr handler of ours."""

    def __init__(
        self,
        mode: str,
        process: ProcessInfo | None = None,
        *,
        stream: Any = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.logger = logging.getLogger(EVENTS_LOGGER)
        self._bucket = bucket or TokenBucket(LOG_RATE, LOG_BURST)
        self._suppressed = 0
        self._common: dict[str, Any] = {}
        if process is not None and process.worker is not None:
            self._common["worker"] = process.worker
        self._handler: logging.Handler | None = None
        self._propagate = self.logger.propagate
        self._level = self.logger.level
        if mode in ("text", "json"):
            handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
            handler.setFormatter(JsonFormatter() if mode == "json" else TextFormatter())
            self.logger.addHandler(handler)
            self.logger.propagate = False  # ours is the line: the app's handlers would repeat it
            if self._level == logging.NOTSET:
                self.logger.setLevel(logging.WARNING)  # whatever level the app gives the root
            self._handler = handler

    def emit(self, event: AgentEvent) -> None:
        if not self._bucket.take():
            self._suppressed += 1
            return
        self._flush_suppressed()
        self._write(event)

    def tick(self) -> None:
        """Say how many events the rate limit left out, once it allows a record again."""
        if self._suppressed and self._bucket.take():
            self._flush_suppressed()

    def _flush_suppressed(self) -> None:
        count, self._suppressed = self._suppressed, 0
        if count:
            self._write(
                AgentEvent(
                    kind="suppressed",
                    severity="warning",
                    message=f"{count} more events were not logged (at most {LOG_BURST} at once "
                    f"and {LOG_RATE:g} a second)",
                    at=time.time(),
                    fields={"occurrences": count},
                )
            )

    def _write(self, event: AgentEvent) -> None:
        extra: dict[str, Any] = {
            "kind": event.kind,
            "severity": event.severity,
            "location": event.location,
            "request": printable(event.request) if event.request else None,
        }
        names = []
        for name, value in {**event.fields, **self._common}.items():
            if name in _RESERVED or name in extra:
                continue
            extra[name] = printable(value) if isinstance(value, str) else value
            names.append(name)
        extra["inspector_fields"] = tuple(names)
        level = logging.ERROR if event.severity == "error" else logging.WARNING
        self.logger.log(level, "%s", printable(event.message), extra=extra)

    def close(self) -> None:
        handler, self._handler = self._handler, None
        if handler is not None:
            self.logger.removeHandler(handler)
            self.logger.propagate = self._propagate
            self.logger.setLevel(self._level)


# --- the feed ----------------------------------------------------------------------------------


class SpanSink(Protocol):
    """Where stalls meet the request's trace (`otel.OtelExporter`)."""

    def span_of(self, task: Any) -> Any:
        """The recording span current in `task`, or None. Called on the watchdog thread."""

    def stall_began(self, stall: Stall, span: Any) -> None: ...

    def stall_ended(self, stall: Stall, span: Any) -> None: ...

    def tick(self) -> None: ...

    def close(self) -> None: ...


class FeedAgent(OtelAgent, Protocol):
    """What the feed uses of an agent."""

    @property
    def probes(self) -> tuple[Probe, ...]: ...

    def process_info(self) -> ProcessInfo: ...


Item = tuple[str, Any, Any]


class EventFeed:
    """The agent's events, from the watchdog and the probes to the log and the spans."""

    def __init__(
        self,
        context: AgentContext,
        probes: Iterable[Probe],
        *,
        log: EventLog | None = None,
        spans: SpanSink | None = None,
        watchdog: Watchdog | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._context = context
        self._watchdog = watchdog
        self._ongoing_logged = 0
        self._exceptions: Any = None
        self._background: Any = None
        for probe in probes:
            name = getattr(probe, "name", "")
            if name == "exceptions":
                self._exceptions = getattr(probe, "log", None)
            elif name == "background":
                self._background = getattr(probe, "jobs", None)
        self.log = log
        self.spans = spans
        self._poll_interval = poll_interval
        self._queue: deque[Item] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._exceptions_seen = Remembered()
        self._jobs_seen = Remembered()
        self._open_spans: dict[int, Any] = {}
        self._thread: threading.Thread | None = None

    # --- the watchdog's side (its thread, its lock held): queue and return ---------------------

    def stall_began(self, stall: Stall, task: Any) -> None:
        spans = self.spans
        if spans is None or task is None:
            return
        span = spans.span_of(task)
        if span is not None:
            self._put(("began", stall, span))

    def stall_ended(self, stall: Stall) -> None:
        self._put(("ended", stall, None))

    def _put(self, item: Item) -> None:
        if len(self._queue) >= QUEUE_LIMIT:
            self._context.record_dropped()
            return
        self._queue.append(item)
        self._wake.set()

    # --- the writer thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inspector-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_poll = time.monotonic() + self._poll_interval
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_poll - time.monotonic()))
            self._wake.clear()
            self.drain()
            if time.monotonic() >= next_poll:
                self.poll()
                next_poll = time.monotonic() + self._poll_interval
        self.drain()
        self.poll()

    def drain(self) -> None:
        """Handle what the watchdog queued (the writer thread, or a test)."""
        while True:
            try:
                what, stall, span = self._queue.popleft()
            except IndexError:
                return
            self._guarded(self._handle_stall, what, stall, span)

    def _handle_stall(self, what: str, stall: Stall, span: Any) -> None:
        spans = self.spans
        if what == "began":
            self._open_spans[stall.id] = span
            if spans is not None:
                spans.stall_began(stall, span)
            return
        span = self._open_spans.pop(stall.id, None)
        if spans is not None:
            spans.stall_ended(stall, span)
        if self.log is not None:
            self.log.emit(stall_event(stall))

    def poll(self) -> None:
        """Read what is new in the exception and background histories (the writer thread)."""
        if self.log is not None:
            self._guarded(self._poll_ongoing_stall)
            self._guarded(self._poll_exceptions)
            self._guarded(self._poll_jobs)
            self._guarded(self.log.tick)
        if self.spans is not None:
            self._guarded(self.spans.tick)

    def _poll_ongoing_stall(self) -> None:
        watchdog = self._watchdog
        if watchdog is None or self.log is None:
            return
        stalled_for = watchdog.loop_stats().stalled_for
        if stalled_for is None or stalled_for < ONGOING_STALL:
            return
        stalls = watchdog.stalls()
        current = stalls[-1] if stalls and stalls[-1].ongoing else None
        if current is not None and current.id != self._ongoing_logged:
            self._ongoing_logged = current.id
            self.log.emit(stall_event(current))

    def _poll_exceptions(self) -> None:
        if self._exceptions is None or self.log is None:
            return
        events: tuple[ExceptionEvent, ...] = self._exceptions.events()
        for event in events:
            before = self._exceptions_seen.get(event.id) or 0
            if event.count <= before:
                continue
            self._exceptions_seen.put(event.id, event.count)
            if event.kind != "background-failed":  # logged with its job, from the jobs
                self.log.emit(exception_event(event, event.count - before))

    def _poll_jobs(self) -> None:
        if self._background is None or self.log is None:
            return
        records: tuple[Any, ...] = ()
        for _ in range(5):  # the loop thread may append while we copy
            try:
                records = tuple(self._background.history)
                break
            except RuntimeError:
                continue
        for job in records:
            if job.state != "failed" or self._jobs_seen.get(job.id):
                continue
            self._jobs_seen.put(job.id)
            self.log.emit(job_failed_event(job))

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception as error:  # a bug here must never reach the app
            self._context.record_error(f"events: {getattr(step, '__name__', step)}: {error!r}")

    def close(self) -> None:
        """Write what is left (within about a second) and stop. Never raises."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=CLOSE_WAIT)
        watchdog = self._watchdog
        if watchdog is not None and self in watchdog.listeners:
            watchdog.listeners.remove(self)
        for sink in (self.spans, self.log):
            if sink is not None:
                self._guarded(sink.close)


def start_for(agent: FeedAgent) -> EventFeed | None:
    """What `Agent.start()` calls when events are logged or OpenTelemetry is on; never raises."""
    config = agent.config
    context = agent.context
    log = spans = None
    try:
        if config.log_events != "off":
            log = EventLog(config.log_events, agent.process_info())
        if config.otel:
            from inspector.agent.otel import start_for as start_otel

            try:
                spans = start_otel(agent)
            except OtelUnavailable as error:
                context.record_error(str(error))
                logging.getLogger("inspector.agent").warning("inspector agent: %s", error)
        if log is None and spans is None:
            return None
        watchdog = agent.watchdog
        feed = EventFeed(context, agent.probes, log=log, spans=spans, watchdog=watchdog)
        if watchdog is not None:
            watchdog.listeners.append(feed)
        feed.start()
        return feed
    except Exception as error:
        context.record_error(f"events unavailable: {error!r}")
        for sink in (log, spans):
            if sink is not None:
                try:
                    sink.close()
                except Exception:
                    pass
        return None
