"""A real Prometheus scrapes every worker of a live server with the documented static config and
the shipped alert rules: each worker is a target with its `worker` label, and one long stall
fires InspectorEventLoopStall."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.processes import stop_process_group
from tests.helpers.server import free_port, free_port_run, inspector_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _api(port: int, path: str, **query: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["data"]


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except OSError as error:  # Prometheus not up yet
            last = error
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout} s (last: {last!r})")


def test_prometheus_scrapes_each_worker_and_one_long_stall_fires_the_alert(
    tmp_path: Path,
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus server is not installed (apt-get install prometheus)")
    base = free_port_run(2)
    config = (DEPLOY / "prometheus.yml").read_text()
    config = config.replace("scrape_interval: 15s", "scrape_interval: 1s")
    config = config.replace("evaluation_interval: 15s", "evaluation_interval: 1s")
    targets = '["app-1:9100", "app-1:9101", "app-2:9100", "app-2:9101"]'
    assert targets in config
    config = config.replace(targets, f'["127.0.0.1:{base}", "127.0.0.1:{base + 1}"]')
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(DEPLOY / "inspector-rules.yml", tmp_path / "inspector-rules.yml")
    web = free_port()
    with inspector_run(
        "tests.apps.fleet_metrics_app:api",
        tmp_path,
        workers=2,
        args=["--metrics-port", str(base)],
    ) as server:
        prometheus = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{web}",
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            up = _wait(
                lambda: (
                    len(found := _api(web, "query", query="inspector_agent_up == 1")["result"]) == 2
                    and found
                ),
                timeout=30,
                what="both workers scraped",
            )
            assert {series["metric"]["worker"] for series in up} == {"0", "1"}
            assert {series["metric"]["instance"] for series in up} == {
                f"127.0.0.1:{base}",
                f"127.0.0.1:{base + 1}",
            }
            time.sleep(2)  # a few scrapes of the counters at 0 first
            server.get("/stall?s=5.5", timeout=30)
            alerts = _wait(
                lambda: [
                    alert
                    for alert in _api(web, "alerts")["alerts"]
                    if alert["labels"]["alertname"] == "InspectorEventLoopStall"
                    and alert["state"] == "firing"
                ],
                timeout=20,
                what="InspectorEventLoopStall firing",
            )
            assert {alert["labels"]["worker"] for alert in alerts} <= {"0", "1"}
        finally:
            stop_process_group(prometheus)
