"""OpenTelemetry: the agent's measurements through a meter, and each stall as an event on the span
of the request it stalled, checked against the SDK's in-memory reader and span exporter."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the dev extras bring opentelemetry-sdk")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from inspector.agent.agent import Agent, start_agent  # noqa: E402
from inspector.agent.events import EventFeed  # noqa: E402
from inspector.agent.metrics import registry_for  # noqa: E402
from inspector.agent.otel import STALL_END_EVENT, STALL_EVENT, OtelExporter  # noqa: E402
from inspector.agent.probe import AgentConfig  # noqa: E402
from tests.helpers.server import inspector_run  # noqa: E402

THIS_FILE = "tests/agent/test_otel.py"


def _line_of(text: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if line.rstrip().endswith(text))


async def _until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


class Rig:
    """An agent with an OTel exporter on an explicit meter provider, and a tracer of its own."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.reader = InMemoryMetricReader()
        self.spans = InMemorySpanExporter()
        tracing = TracerProvider()
        tracing.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer = tracing.get_tracer("test")
        self.exporter = OtelExporter(
            agent, MeterProvider(metric_readers=[self.reader]), agent.watchdog
        )
        self.feed = EventFeed(
            agent.context, agent.probes, spans=self.exporter, watchdog=agent.watchdog
        )
        assert agent.watchdog is not None
        agent.watchdog.listeners.append(self.feed)
        self.feed.start()

    async def metrics(self) -> dict[str, list[Any]]:
        data = await asyncio.to_thread(self.reader.get_metrics_data)
        found: dict[str, list[Any]] = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = list(metric.data.data_points)
        return found

    def close(self) -> None:
        self.feed.close()
        self.agent.close()


@pytest.fixture
async def rig() -> Any:
    agent = start_agent(config=AgentConfig(port=0, register=False))
    rig = Rig(agent)
    yield rig
    rig.close()


async def test_a_stall_is_an_event_on_the_span_of_the_request_it_stalled(rig: Rig) -> None:
    await asyncio.sleep(0.1)
    with rig.tracer.start_as_current_span("GET /export"):
        time.sleep(0.35)  # blocks the loop inside the span
        await asyncio.sleep(0.3)  # the span is still open when the stall ends
    [span] = rig.spans.get_finished_spans()
    events = {event.name: dict(event.attributes or {}) for event in span.events}
    began, ended = events[STALL_EVENT], events[STALL_END_EVENT]
    assert began["code.filepath"] == THIS_FILE
    assert began["code.lineno"] == _line_of("# blocks the loop inside the span")
    assert (
        began["code.function"] == "test_a_stall_is_an_event_on_the_span_of_the_request_it_stalled"
    )
    assert began["inspector.stall.id"] == ended["inspector.stall.id"]
    assert 0.3 <= ended["inspector.stall.duration_s"] < 1.0
    stall_event = next(event for event in span.events if event.name == STALL_EVENT)
    assert span.start_time <= stall_event.timestamp <= span.end_time


async def test_a_stall_outside_any_span_adds_nothing_and_breaks_nothing(rig: Rig) -> None:
    await asyncio.sleep(0.1)
    time.sleep(0.3)
    await asyncio.sleep(0.2)
    with rig.tracer.start_as_current_span("GET /after"):
        await asyncio.sleep(0.05)
    [span] = rig.spans.get_finished_spans()
    assert span.events == ()
    measured = await rig.metrics()
    assert measured["inspector.loop.stalls"][0].value == 1
    assert rig.agent.context.health((), 0.0).errors == 0


async def test_the_meter_reports_what_prometheus_reports(rig: Rig) -> None:
    await asyncio.sleep(0.1)
    time.sleep(0.3)
    await asyncio.sleep(1.3)  # a poll of the events thread records the lag points
    measured = await _until_metrics(rig, lambda m: m["inspector.loop.stall.duration"][0].count)
    assert measured["inspector.loop.stalls"][0].value == 1
    assert 0.25 <= measured["inspector.loop.stalled_time"][0].value < 1.0
    [durations] = measured["inspector.loop.stall.duration"]
    assert durations.count == 1 and 0.25 <= durations.sum < 1.0
    assert measured["inspector.loop.lag"][0].count >= 1
    assert measured["inspector.tasks"][0].value >= 1
    outcomes = {p.attributes["outcome"]: p.value for p in measured["inspector.background.jobs"]}
    assert outcomes == dict.fromkeys(("done", "failed", "dropped", "skipped", "cancelled"), 0)
    kinds = {p.attributes["kind"] for p in measured["inspector.exceptions.unseen"]}
    assert "task-exception-unretrieved" in kinds
    registry = registry_for(rig.agent)
    stalls = await asyncio.to_thread(registry.get_sample_value, "inspector_stalls_total")
    assert stalls == measured["inspector.loop.stalls"][0].value


async def _until_metrics(rig: Rig, condition: Callable[[dict[str, Any]], Any]) -> Any:
    deadline = time.monotonic() + 10
    while True:
        measured = await rig.metrics()
        try:
            if condition(measured):
                return measured
        except (KeyError, IndexError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never matched: {sorted(measured)}")
        await asyncio.sleep(0.2)


@pytest.mark.e2e
def test_inspector_run_otel_meters_the_server_and_marks_the_stalled_requests_span(
    tmp_path: Path,
) -> None:
    with inspector_run("tests.apps.otel_app:api", tmp_path, args=["--otel"]) as server:
        server.get("/stall?s=0.3")
        deadline = time.monotonic() + 15
        while True:
            report = json.loads(server.get("/otel"))
            stalls = report["metrics"].get("inspector.loop.stalls", [])
            if stalls and stalls[0]["value"] >= 1:
                break
            assert time.monotonic() < deadline, report
            time.sleep(0.2)
    # The event is on the span current where the loop stalled: the request's own, or one inside
    # it (FastAPI traces its endpoint by itself when OpenTelemetry is installed).
    marked = [span for span in report["spans"] if span["events"]]
    [span] = marked
    [began] = [event for event in span["events"] if event["name"] == STALL_EVENT]
    assert began["code.filepath"] == "tests/apps/otel_app.py"
    assert began["code.function"] == "stall"
    assert any(event["name"] == STALL_END_EVENT for event in span["events"])
    requests = [s for s in report["spans"] if s["name"] == "GET /stall"]
    assert requests and all(request["trace"] == span["trace"] for request in requests)
    assert report["metrics"]["inspector.requests.in_flight"][0]["value"] >= 1  # /otel itself
