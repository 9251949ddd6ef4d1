"""The agent's events as log records: one line per stall, unseen exception and failed background
job, structured, rate-limited, never on the app's loop and never counted as the app's errors."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inspector.agent.agent import Agent, start_agent
from inspector.agent.events import (
    EVENTS_LOGGER,
    LOG_BURST,
    AgentEvent,
    EventLog,
    TokenBucket,
    stall_event,
)
from inspector.agent.probe import AgentConfig, CollectOptions
from inspector.agent.settings import SettingError, config_from_environment
from inspector.model import Frame, StackSample, Stall
from tests.helpers.server import inspector_run

THIS_FILE = "tests/agent/test_events.py"


def _line_of(text: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(
        i for i, line in enumerate(lines, start=1) if text in line and "_line_of" not in line
    )


def _stall(duration: float = 0.4, request: str | None = "GET /export/7") -> Stall:
    frame = Frame(file=str(Path(__file__).resolve()), line=12, function="handler")
    return Stall(
        id=1,
        started_at=time.time() - duration,
        duration=duration,
        ongoing=False,
        samples=(StackSample(offset=0.1, frames=(frame,)),),
        task_name="Task-3",
        request_label=request,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def events_logger() -> Iterator[logging.Logger]:
    """The events logger, left as it was found."""
    logger = logging.getLogger(EVENTS_LOGGER)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


def test_a_stall_is_one_json_line_with_its_structured_fields(events_logger: logging.Logger) -> None:
    stream = io.StringIO()
    log = EventLog("json", stream=stream)
    try:
        log.emit(stall_event(_stall(request="GET /export/7\n\x1b[31mforged")))
    finally:
        log.close()
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["logger"] == "inspector.events" and record["level"] == "WARNING"
    assert record["kind"] == "stall" and record["severity"] == "warning"
    assert record["location"].endswith(f"{THIS_FILE}:12")
    assert record["request"].startswith("GET /export/7") and "\x1b" not in record["request"]
    assert record["stall_seconds"] == 0.4 and record["task"] == "Task-3"
    assert "event loop stalled for 400 ms at" in record["message"]
    assert events_logger.handlers == [] or all(
        not isinstance(h, logging.StreamHandler) or h.stream is not stream
        for h in events_logger.handlers
    ), "close() takes its handler away"


def test_text_lines_carry_the_fields_after_the_message(events_logger: logging.Logger) -> None:
    stream = io.StringIO()
    log = EventLog("text", stream=stream)
    try:
        log.emit(stall_event(_stall(duration=2.5)))
    finally:
        log.close()
    [line] = stream.getvalue().splitlines()
    assert " ERROR inspector: event loop stalled for 2.5 s at " in line
    assert "kind=stall severity=error location=" in line
    assert 'request="GET /export/7"' in line and "stall_seconds=2.5" in line


def test_logging_mode_hands_records_with_extra_fields_to_the_apps_logging(
    events_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog("logging")
    with caplog.at_level(logging.WARNING, logger=EVENTS_LOGGER):
        log.emit(stall_event(_stall()))
    log.close()
    [record] = [r for r in caplog.records if r.name == EVENTS_LOGGER]
    assert record.kind == "stall"  # type: ignore[attr-defined]
    assert record.severity == "warning"  # type: ignore[attr-defined]
    assert record.location.endswith(f"{THIS_FILE}:12")  # type: ignore[attr-defined]
    assert record.request == "GET /export/7"  # type: ignore[attr-defined]
    assert record.exc_info is None


def test_records_past_the_rate_limit_are_counted_then_reported_once(
    events_logger: logging.Logger,
) -> None:
    stream = io.StringIO()
    clock = FakeClock()
    log = EventLog("json", stream=stream, bucket=TokenBucket(1.0, LOG_BURST, clock=clock))
    try:
        for _ in range(LOG_BURST + 30):
            log.emit(stall_event(_stall()))
        assert len(stream.getvalue().splitlines()) == LOG_BURST
        log.tick()  # no token yet: nothing
        assert len(stream.getvalue().splitlines()) == LOG_BURST
        clock.now += 1.0
        log.tick()
    finally:
        log.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == LOG_BURST + 1
    assert lines[-1]["kind"] == "suppressed" and lines[-1]["occurrences"] == 30


def test_the_environment_switches_event_logs_on() -> None:
    assert config_from_environment({"INSPECTOR_LOG_EVENTS": "json"}).log_events == "json"
    assert config_from_environment({"INSPECTOR_LOG_EVENTS": "1"}).log_events == "text"
    assert config_from_environment({}).log_events == "off"
    assert config_from_environment({"INSPECTOR_OTEL": "yes"}).otel is True
    host = config_from_environment({"INSPECTOR_METRICS_HOST": "0.0.0.0"}).metrics_host
    assert host == "0.0.0.0"
    with pytest.raises(SettingError, match="INSPECTOR_LOG_EVENTS"):
        config_from_environment({"INSPECTOR_LOG_EVENTS": "loud"})


async def _until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


async def _lost() -> None:
    raise LookupError("nobody awaits this task")  # the lost task's line


def _events(caplog: pytest.LogCaptureFixture, kind: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == EVENTS_LOGGER and r.kind == kind]  # type: ignore[attr-defined]


async def test_a_stall_and_a_lost_task_are_logged_once_each_and_never_as_app_errors(
    events_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=EVENTS_LOGGER)
    agent = start_agent(config=AgentConfig(port=0, register=False, log_events="logging"))
    try:
        await asyncio.sleep(0.1)
        time.sleep(0.35)  # blocks the loop: the stall's line
        asyncio.get_running_loop().create_task(_lost())
        await asyncio.sleep(0.05)
        gc.collect()
        await _until(lambda: _events(caplog, "stall") and _events(caplog, "unseen-exception"))
        await asyncio.sleep(1.2)  # one more poll: nothing is logged twice
        # Only the stall this test made (gc.collect() in a large test process can make another).
        blocked_at = f"{THIS_FILE}:{_line_of('the stall' + chr(39) + 's line')}"
        [stall] = [s for s in _events(caplog, "stall") if s.location == blocked_at]  # type: ignore[attr-defined]
        [lost] = _events(caplog, "unseen-exception")
        assert stall.levelno == logging.WARNING and stall.severity == "warning"  # type: ignore[attr-defined]
        assert lost.location == f"{THIS_FILE}:{_line_of('the lost task' + chr(39) + 's line')}"  # type: ignore[attr-defined]
        assert lost.levelno == logging.ERROR
        assert lost.exception_kind == "task-exception-unretrieved"  # type: ignore[attr-defined]
        assert "LookupError: nobody awaits this task" in lost.getMessage()
        snapshot = await asyncio.to_thread(agent.snapshots.build, CollectOptions(False))
        assert [event.kind for event in snapshot.exceptions] == ["task-exception-unretrieved"]
        assert snapshot.health.errors == 0, snapshot.health.recent_errors
    finally:
        agent.close()


async def test_a_slow_log_handler_never_holds_up_the_loop(
    events_logger: logging.Logger,
) -> None:
    class SlowHandler(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            time.sleep(0.5)  # a log shipper on a slow network
            self.records.append(record)

    slow = SlowHandler()
    events_logger.addHandler(slow)
    events_logger.setLevel(logging.WARNING)
    agent = start_agent(
        config=AgentConfig(port=0, register=False, log_events="logging", stall_threshold=0.05)
    )
    try:
        await asyncio.sleep(0.1)
        for _ in range(3):
            time.sleep(0.08)  # three short stalls, each a record for the slow handler
            await asyncio.sleep(0.02)
        worst = 0.0
        started = time.monotonic()
        while time.monotonic() - started < 1.0:  # while the handler sleeps on its thread
            before = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - before)
        assert worst < 0.25, f"the loop waited {worst:.3f} s for the 0.5 s handler"
        await _until(lambda: len(slow.records) >= 3)
        names = {thread.name for thread in threading.enumerate()}
        assert "inspector-events" in names
    finally:
        agent.close()
    assert "inspector-events" not in {t.name for t in threading.enumerate()}


def test_logging_off_starts_no_thread() -> None:
    async def run() -> None:
        agent = start_agent(config=AgentConfig(port=0, register=False))
        try:
            assert isinstance(agent, Agent)
            assert "inspector-events" not in {t.name for t in threading.enumerate()}
        finally:
            agent.close()

    asyncio.run(run())


def test_an_agent_event_names_its_fields() -> None:
    event = AgentEvent(kind="stall", severity="warning", message="m", at=0.0)
    assert event.fields == {} and event.location is None


@pytest.mark.e2e
def test_a_live_server_logs_json_lines_for_a_stall_a_failed_job_and_a_lost_task(
    tmp_path: Path,
) -> None:
    with inspector_run(
        "tests.apps.fleet_metrics_app:api", tmp_path, args=["--log-events", "json"]
    ) as server:
        server.get("/stall?s=0.3")
        server.get("/background-fails")
        server.get("/orphan")

        def logged() -> dict[str, dict[str, Any]] | None:
            found = {}
            for line in server.output().splitlines():
                if line.startswith("{") and '"logger": "inspector.events"' in line:
                    record = json.loads(line)
                    found[record["kind"]] = record
            wanted = {"stall", "background-failed", "unseen-exception"}
            return found if wanted <= set(found) else None

        deadline = time.monotonic() + 15
        found = logged()
        while found is None and time.monotonic() < deadline:
            time.sleep(0.1)
            found = logged()
        assert found is not None, server.output()[-3000:]
    app = "tests/apps/fleet_metrics_app.py"
    assert found["stall"]["location"].startswith(app + ":")
    assert found["stall"]["request"] == "GET /stall"
    job = found["background-failed"]
    assert job["job"] == "send_report" and job["request"] == "GET /background-fails"
    assert job["exception"].startswith("ConnectionError: mail server refused")
    assert job["location"].startswith(app + ":") and job["severity"] == "error"
    lost = found["unseen-exception"]
    assert lost["exception_kind"] == "task-exception-unretrieved"
    assert lost["exception"] == "LookupError: nobody awaits this task"
