"""The opt-in swallowed-exception tracer (sys.monitoring, Python >= 3.12)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
import threading

import pytest

from inspector.agent.probe import AgentConfig, AgentContext
from inspector.agent.probes import default_probes
from inspector.agent.probes.exceptions import ExceptionLog
from inspector.agent.probes.swallowed import SwallowedExceptionsProbe
from tests.apps import probes_swallowed

REPO = __file__.rsplit("/tests/", 1)[0]


def python312() -> str | None:
    """An interpreter >= 3.12 with the project installed: this one, or INSPECTOR_PYTHON312."""
    if sys.version_info >= (3, 12):
        return sys.executable
    return os.environ.get("INSPECTOR_PYTHON312") or None


def except_line(marker: str) -> int:
    lines = inspect.getsource(probes_swallowed).splitlines()
    return next(number for number, line in enumerate(lines, start=1) if marker in line)


def test_swallowed_exceptions_are_reported_at_their_except_line() -> None:
    python = python312()
    if python is None:
        pytest.skip("needs Python >= 3.12 (set INSPECTOR_PYTHON312)")
    result = subprocess.run(
        [python, "-m", "tests.apps.probes_swallowed"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == []
    assert len(report["ran"]) == 14  # every handler ran, the program's behaviour is unchanged
    reported = {(event["line"], event["type"]) for event in report["events"]}
    assert reported == {
        (except_line("# SWALLOWED pass"), "ValueError"),
        (except_line("# SWALLOWED default"), "KeyError"),
        (except_line("# SWALLOWED second clause"), "ZeroDivisionError"),
        (except_line("# SWALLOWED cancellation"), "CancelledError"),
        (except_line("# SWALLOWED suppress"), "ValueError"),
        (except_line("# SWALLOWED suppress by name"), "KeyError"),
    }
    pass_event = next(e for e in report["events"] if e["type"] == "ValueError")
    assert pass_event["function"] == "swallows_with_pass"
    assert pass_event["code"].startswith("except ValueError:")
    suppress_event = next(
        e for e in report["events"] if e["type"] == "KeyError" and "with" in e["code"]
    )
    assert suppress_event["function"] == "suppressed_by_name"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the tracer runs on this Python")
async def test_before_python_312_the_tracer_reports_that_it_cannot_run() -> None:
    config = AgentConfig(trace_exceptions=True)
    context = AgentContext(
        loop=asyncio.get_running_loop(), loop_thread_id=threading.get_ident(), config=config
    )
    probes = default_probes(config)
    tracer = next(p for p in probes if isinstance(p, SwallowedExceptionsProbe))
    tracer.install(context)
    tracer.close()
    assert any("Python >= 3.12" in error for error in context.health((), 0).recent_errors)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring needs Python >= 3.12")
async def test_the_tracer_gives_its_tool_id_back() -> None:
    config = AgentConfig(trace_exceptions=True)
    context = AgentContext(
        loop=asyncio.get_running_loop(), loop_thread_id=threading.get_ident(), config=config
    )
    before = [sys.monitoring.get_tool(i) for i in range(6)]  # type: ignore[attr-defined]
    tracer = SwallowedExceptionsProbe(config, ExceptionLog(10))
    tracer.install(context)
    assert "uvicorn-inspector" in [sys.monitoring.get_tool(i) for i in range(6)]  # type: ignore[attr-defined]
    tracer.close()
    assert [sys.monitoring.get_tool(i) for i in range(6)] == before  # type: ignore[attr-defined]
