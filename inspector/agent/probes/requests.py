"""The requests probe: activates the middleware's tracker and reports requests and route latency.

The parts live apart: the per-request record in `records`, the live state and its rationing in
`tracker`, the middleware in `middleware`, latency per route in `routes`. This module installs
them into an agent and answers which request a task works for.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from typing import Any

from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions, TaskLink
from inspector.agent.probes import tracker as tracking
from inspector.agent.probes.current import current_task_on
from inspector.agent.probes.disconnects import DisconnectTimes
from inspector.agent.probes.logged_tracebacks import LoggedTracebacks
from inspector.agent.probes.records import JobRecord
from inspector.agent.probes.tasklinks import RequestTaskTable
from inspector.agent.probes.tracker import RequestTracker, request_now


class RequestLinker:
    """Answers which request (and background job) a task is working for."""

    def __init__(self, tracker: RequestTracker, tasks: RequestTaskTable | None) -> None:
        self._tracker = tracker
        self._tasks = tasks

    def link_for(self, task: asyncio.Task[Any]) -> TaskLink | None:
        record = self._tracker.in_flight_for(task)
        job: JobRecord | None = None
        if record is not None:
            job = record.running_job
        else:
            if self._tasks is not None:
                found = self._tasks.lookup(task)
                if found is not None:
                    record, job = found
        if record is None:
            light = self._tracker.light_for(task)
            if light is None:
                return None
            return TaskLink(request_id=light[0], request_label=light[1])
        return TaskLink(
            request_id=record.id,
            request_label=record.label,
            background_label=job.function if job is not None else None,
        )


class RequestsProbe:
    """Activates the request middleware and reports requests and per-route latency."""

    name = "requests"

    def __init__(
        self, config: AgentConfig, tracker: RequestTracker, tasks: RequestTaskTable | None
    ) -> None:
        self._config = config
        self.tracker = tracker
        self._tasks = tasks
        tracker.tasks = tasks
        self._linker = RequestLinker(tracker, tasks)
        self._context: AgentContext | None = None
        self._lookup_patch: _EndpointErrorHook | None = None
        self._disconnects: DisconnectTimes | None = None
        self._logged = LoggedTracebacks()

    def install(self, context: AgentContext) -> None:
        self._context = context
        self.tracker.context = context
        self.tracker.clock = context.clock
        self.tracker.current_task = current_task_on(context.loop)
        self.tracker.ration_detail(self._config.request_detail_rate)
        if self._tasks is not None:
            try:
                self._tasks.install(context.loop)
            except Exception as error:
                context.record_error(f"requests: task factory: {error!r}")
        context.linkers.append(self._linker)
        self._lookup_patch = _EndpointErrorHook.install()
        self._disconnects = DisconnectTimes(context.record_error)
        self._disconnects.install()
        self._logged.install()
        tracking.activate(self.tracker)

    def collect(self, context: AgentContext, options: CollectOptions) -> Mapping[str, Any]:
        return self.tracker.snapshot()

    def close(self) -> None:
        try:
            tracking.deactivate(self.tracker)
            if self._lookup_patch is not None:
                self._lookup_patch.close()
                self._lookup_patch = None
            if self._disconnects is not None:
                self._disconnects.close()
                self._disconnects = None
            self._logged.close()
            if self._tasks is not None:
                self._tasks.close()
            context = self._context
            if context is not None and self._linker in context.linkers:
                context.linkers.remove(self._linker)
        except Exception as error:  # close must not raise
            if self._context is not None:
                self._context.record_error(f"requests: close: {error!r}")


class _EndpointErrorHook:
    """Notes the exception an endpoint raised even when an exception handler turned it into a
    response (an HTTPException becomes a 404 and never reaches the middleware).

    Starlette looks the handler up through `starlette._exception_handler._lookup_exception_handler`
    (a module global read at call time) for every exception an app raises, so wrapping it sees
    exactly those exceptions and costs nothing on requests that do not raise.
    """

    def __init__(self, module: Any, original: Callable[..., Any]) -> None:
        self._module = module
        self._original = original

        def lookup(handlers: Any, exc: Exception) -> Any:
            record = request_now()
            if record is not None:
                record.note_error(exc)
            return original(handlers, exc)

        self.wrapper = lookup

    @classmethod
    def install(cls) -> _EndpointErrorHook | None:
        module = sys.modules.get("starlette._exception_handler")
        original = getattr(module, "_lookup_exception_handler", None)
        if module is None or not callable(original):
            return None
        hook = cls(module, original)
        module._lookup_exception_handler = hook.wrapper  # type: ignore[attr-defined]
        return hook

    def close(self) -> None:
        if getattr(self._module, "_lookup_exception_handler", None) is self.wrapper:
            self._module._lookup_exception_handler = self._original
