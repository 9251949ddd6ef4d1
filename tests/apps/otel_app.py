"""A FastAPI app traced and metered by the OpenTelemetry SDK in memory, for `inspector run --otel`.

Every request runs in a span of its own (a middleware stands in for opentelemetry-instrumentation-
asgi). ``GET /stall?s=N`` blocks the loop inside its span; ``GET /otel`` answers with the finished
spans' events and the metrics the in-memory reader collects (the reader runs in a worker thread,
as an exporter's would).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

spans = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(tracer_provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
tracer = trace.get_tracer("otel_app")

api = FastAPI()


@api.middleware("http")
async def traced(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    if request.url.path == "/otel":
        return await call_next(request)
    with tracer.start_as_current_span(f"{request.method} {request.url.path}"):
        return await call_next(request)


@api.get("/stall")
async def stall(s: float = 0.3) -> dict[str, float]:
    time.sleep(s)  # blocks the event loop inside the request's span
    await asyncio.sleep(0.3)  # the span is still open when the stall ends
    return {"slept": s}


@api.get("/otel")
async def otel() -> dict[str, Any]:
    data = await asyncio.to_thread(reader.get_metrics_data)
    collected: dict[str, Any] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                collected[metric.name] = [
                    {
                        "attributes": dict(point.attributes or {}),
                        "value": getattr(point, "value", None),
                        "count": getattr(point, "count", None),
                    }
                    for point in metric.data.data_points
                ]
    return {
        "spans": [
            {
                "name": span.name,
                "trace": f"{span.context.trace_id:032x}" if span.context else None,
                "events": [{"name": e.name, **dict(e.attributes or {})} for e in span.events],
            }
            for span in spans.get_finished_spans()
        ],
        "metrics": collected,
    }
