"""The request-lifecycle probes: requests, background work, the threadpool, exceptions.

`default_probes(config)` builds them wired to one another (a failed background task is also an
exception event; a borrower of a thread token is named by its request). `wrap_asgi(app)` wraps an
ASGI app in the request middleware, which passes everything through until the requests probe is
installed.
"""

from __future__ import annotations

from typing import Any

from inspector.agent.probe import AgentConfig, Probe
from inspector.agent.probes.background import BackgroundJobs, BackgroundProbe
from inspector.agent.probes.exceptions import ExceptionLog, ExceptionsProbe
from inspector.agent.probes.middleware import InspectorMiddleware
from inspector.agent.probes.requests import RequestsProbe
from inspector.agent.probes.tasklinks import RequestTaskTable
from inspector.agent.probes.threadpool import ThreadpoolProbe
from inspector.agent.probes.tracker import RequestTracker

__all__ = ["default_probes", "wrap_asgi", "InspectorMiddleware"]


def default_probes(config: AgentConfig) -> list[Probe]:
    """The lifecycle probes for one agent, in install order."""
    tracker = RequestTracker(config.max_history)
    tasks = RequestTaskTable()
    log = ExceptionLog(config.max_history)
    jobs = BackgroundJobs(config.max_history)
    probes: list[Probe] = [
        RequestsProbe(config, tracker, tasks),
        BackgroundProbe(config, jobs, log, tracker),
        ThreadpoolProbe(config, busy=tracker.by_thread),
        ExceptionsProbe(config, log, tasks, jobs, tracker),
    ]
    if config.trace_exceptions:
        # On Python < 3.12 its install reports, in the agent's health, that it cannot run.
        from inspector.agent.probes.swallowed import SwallowedExceptionsProbe

        probes.append(SwallowedExceptionsProbe(config, log))
    return probes


def wrap_asgi(app: Any) -> Any:
    """`app` wrapped in the request middleware (once: wrapping twice returns the same object)."""
    if isinstance(app, InspectorMiddleware):
        return app
    return InspectorMiddleware(app)
