"""Prometheus metrics scraped from live servers: promtool accepts them, they move when the server
stalls, loses a task or fails a background job, and every worker of a server is a target."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from inspector.cli import main as cli_main
from tests.fleet.conftest import APPS, VENV_BIN, Server, wait_until
from tests.helpers.server import free_port, free_port_run, inspector_run

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
FAILED = ("inspector_background_jobs_total", (("outcome", "failed"),))
LOST = ("inspector_unseen_exceptions_total", (("kind", "task-exception-unretrieved"),))


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _parse(text: str) -> Samples:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _scrape(url: str) -> Samples:
    return _parse(_get(url))


def _try_scrape(url: str) -> Samples | None:
    try:
        return _scrape(url)
    except OSError:
        return None


def _promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian/Ubuntu: apt-get install prometheus)")
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def metrics_server(servers: list[Server], runtime_dir: Path) -> str:
    """The app with metrics mounted at /metrics, served by plain uvicorn; its base URL."""
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


def test_counters_start_at_zero_and_a_stall_moves_them(metrics_server: str) -> None:
    url = f"{metrics_server}/metrics"
    before = _scrape(url)
    assert before[("inspector_agent_up", ())] == 1
    assert before[("inspector_tasks", ())] >= 1
    assert before[("inspector_stalls_total", ())] == 0, "no label: the counter exists from 0"
    assert before[FAILED] == 0 and before[LOST] == 0
    assert not any("location" in dict(labels) for _, labels in before), "no file:line labels"
    assert ("process_resident_memory_bytes", ()) in before
    assert any(name == "python_info" for name, _ in before)

    _get(f"{metrics_server}/stall?s=0.4")

    after = wait_until(
        lambda: (s := _scrape(url)) and s[("inspector_stalls_total", ())] >= 1 and s,
        message="the stall never showed up in the metrics",
    )
    assert after[("inspector_stalls_total", ())] == 1
    assert 0.3 <= after[("inspector_stalled_seconds_total", ())] < 2.0
    bucket = "inspector_stall_duration_seconds_bucket"
    assert after[(bucket, (("le", "0.25"),))] == 0
    assert after[(bucket, (("le", "0.5"),))] == 1
    assert after[("inspector_stall_duration_seconds_count", ())] == 1
    slow_lag = (
        after[("inspector_loop_lag_seconds_bucket", (("le", "+Inf"),))]
        - after[("inspector_loop_lag_seconds_bucket", (("le", "0.25"),))]
    )
    assert slow_lag >= 1, "the stalled half second is in the lag histogram"
    assert after[("inspector_loop_stalled_seconds", ())] == 0


def test_failed_background_job_and_lost_task_are_counted(metrics_server: str) -> None:
    url = f"{metrics_server}/metrics"
    before = _scrape(url)

    _get(f"{metrics_server}/background-fails")
    _get(f"{metrics_server}/orphan")

    def counted() -> Samples | None:
        samples = _scrape(url)
        failed = samples.get(FAILED, 0)
        return samples if failed == before[FAILED] + 1 and samples.get(LOST, 0) >= 1 else None

    wait_until(counted, message="the failed job or the lost task never showed in the metrics")


def test_a_live_scrape_passes_promtool_with_every_family_populated(tmp_path: Path) -> None:
    metrics_port = free_port()
    with inspector_run(
        "tests.apps.fleet_metrics_app:api", tmp_path, args=["--metrics-port", str(metrics_port)]
    ) as server:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        wait_until(lambda: _try_scrape(url), timeout=10, message="no metrics on the port")
        server.get("/stall?s=0.3")
        server.get("/background-fails")
        server.get("/orphan")
        wait_until(
            lambda: (
                (s := _scrape(url))
                and s[("inspector_stalls_total", ())] >= 1
                and s.get(FAILED, 0) >= 1
                and s.get(LOST, 0) >= 1
            ),
            message="the stall, the failed job or the lost task never showed",
        )
        text = _get(url)
    checked = _promtool_check(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


def test_a_request_in_flight_is_aged_by_route_template(tmp_path: Path) -> None:
    import threading

    metrics_port = free_port()
    with inspector_run(
        "tests.apps.fleet_metrics_app:api", tmp_path, args=["--metrics-port", str(metrics_port)]
    ) as server:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        wait_until(lambda: _try_scrape(url), timeout=10, message="no metrics on the port")
        slow = threading.Thread(target=server.get, args=("/slow/42?s=3",), daemon=True)
        slow.start()
        key = ("inspector_requests_in_flight_oldest_seconds", (("route", "/slow/{item}"),))
        seen = wait_until(
            lambda: (s := _scrape(url)) and s.get(key, 0) >= 0.5 and s,
            message="the slow request's age never showed, by its route template",
        )
        assert seen[("inspector_requests_in_flight", ())] >= 1
        slow.join(timeout=10)


@pytest.mark.parametrize(
    "inspect_port", [None, 0], ids=["agent-ports-in-slots", "agent-ports-free"]
)
def test_every_worker_serves_its_own_port_with_its_worker_label(
    tmp_path: Path, inspect_port: int | None
) -> None:
    base = free_port_run(2)
    with inspector_run(
        "tests.apps.fleet_metrics_app:api",
        tmp_path,
        workers=2,
        inspect_port=inspect_port,
        args=["--metrics-port", str(base)],
    ):
        workers = set()
        for port in (base, base + 1):
            samples = wait_until(
                lambda port=port: _try_scrape(f"http://127.0.0.1:{port}/metrics"),
                timeout=15,
                message=f"no metrics on {port}",
            )
            [(_, labels)] = [key for key in samples if key[0] == "inspector_stalls_total"]
            workers.add(dict(labels)["worker"])
            assert all("worker" in dict(labels) for name, labels in samples if "inspector_" in name)
        assert workers == {"0", "1"}


def test_the_metrics_host_is_chosen_and_loopback_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics_port = free_port("127.0.0.2")
    with inspector_run(
        "tests.apps.fleet_metrics_app:api",
        tmp_path,
        args=["--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.2"],
    ):
        samples = wait_until(
            lambda: _try_scrape(f"http://127.0.0.2:{metrics_port}/metrics"),
            timeout=10,
            message="no metrics on 127.0.0.2",
        )
        assert samples[("inspector_agent_up", ())] == 1
        with pytest.raises(urllib.error.URLError):
            _get(f"http://127.0.0.1:{metrics_port}/metrics")

    status = cli_main(["run", "main:app", "--metrics-port", "9100", "--metrics-host", "0.0.0.0"])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert "refusing to serve metrics on 0.0.0.0" in error and "--allow-remote" in error
    assert "\n" not in error
