"""Prometheus metrics scraped from a live server while it stalls and its background work fails."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fleet.conftest import APPS, VENV_BIN, Server, wait_until
from tests.helpers.server import free_port

pytestmark = pytest.mark.e2e

APP_FILE = "tests/apps/fleet_metrics_app.py"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(_get(url)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _line_of(text: str) -> int:
    lines = (APPS / "fleet_metrics_app.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if text in line)


@pytest.fixture
def metrics_server(servers: list[Server], runtime_dir: Path) -> str:
    """The mounted-app server; returns its base URL."""
    port = free_port()
    server = Server(
        [
            str(VENV_BIN / "uvicorn"),
            "--app-dir",
            str(APPS),
            "fleet_metrics_app:app",
            "--port",
            str(port),
        ],
        env={**os.environ, "INSPECTOR_RUNTIME_DIR": str(runtime_dir)},
    )
    servers.append(server)
    server.wait_for_output("Uvicorn running on")
    return f"http://127.0.0.1:{port}"


def test_stall_moves_the_counters_by_location(metrics_server: str) -> None:
    url = f"{metrics_server}/metrics"
    before = _scrape(url)
    assert before[("inspector_agent_up", ())] == 1
    assert before[("inspector_tasks", ())] >= 1
    location = (("location", f"{APP_FILE}:{_line_of('time.sleep(s)  # blocks')}"),)
    assert ("inspector_stalls_total", location) not in before

    _get(f"{metrics_server}/stall?s=0.4")

    after = wait_until(
        lambda: (s := _scrape(url)) and ("inspector_stalls_total", location) in s and s,
        message="the stall never showed up in the metrics",
    )
    assert after[("inspector_stalls_total", location)] == 1
    assert 0.3 <= after[("inspector_stalled_seconds_total", location)] < 2.0
    slow_lag = (
        after[("inspector_loop_lag_seconds_bucket", (("le", "+Inf"),))]
        - after[("inspector_loop_lag_seconds_bucket", (("le", "0.25"),))]
    )
    assert slow_lag >= 1, "the stalled half second is in the lag histogram"
    assert after[("inspector_loop_stalled_seconds", ())] == 0


def test_failed_background_job_and_lost_task_are_counted(metrics_server: str) -> None:
    url = f"{metrics_server}/metrics"
    before = _scrape(url)
    if ("inspector_background_jobs_total", (("outcome", "failed"),)) not in before:
        pytest.skip("the agent in this build reports no background jobs")
    failed_before = before[("inspector_background_jobs_total", (("outcome", "failed"),))]

    _get(f"{metrics_server}/background-fails")
    _get(f"{metrics_server}/orphan")

    def counted() -> dict | None:  # type: ignore[type-arg]
        samples = _scrape(url)
        failed = samples.get(("inspector_background_jobs_total", (("outcome", "failed"),)), 0)
        lost = samples.get(
            ("inspector_unseen_exceptions_total", (("kind", "task-exception-unretrieved"),)), 0
        )
        return samples if failed == failed_before + 1 and lost >= 1 else None

    wait_until(counted, message="the failed job or the lost task never showed in the metrics")


def test_inspector_run_serves_metrics_on_its_own_port(tmp_path: Path) -> None:
    from tests.helpers.server import inspector_run

    metrics_port = free_port()
    with inspector_run(
        "tests.apps.fleet_metrics_app:api", tmp_path, args=["--metrics-port", str(metrics_port)]
    ) as server:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        try:
            before = wait_until(lambda: _try_scrape(url), timeout=5)
        except pytest.fail.Exception:
            import inspect

            from inspector.agent.agent import Agent

            if "metrics" not in inspect.getsource(Agent):
                pytest.skip("Agent.start() does not start the metrics server in this build")
            raise
        assert before[("inspector_agent_up", ())] == 1
        location = (("location", f"{APP_FILE}:{_line_of('time.sleep(s)  # blocks')}"),)

        server.get("/stall?s=0.4")

        after = wait_until(
            lambda: (s := _scrape(url)) and ("inspector_stalls_total", location) in s and s,
            message="the stall never showed up in the metrics",
        )
        assert after[("inspector_stalls_total", location)] == 1


def _try_scrape(url: str) -> dict | None:  # type: ignore[type-arg]
    try:
        return _scrape(url)
    except OSError:
        return None
