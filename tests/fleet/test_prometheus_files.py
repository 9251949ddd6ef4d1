"""The monitoring files in deploy/: the alert rules pass their promtool unit tests, the scrape
configs are valid, and the Grafana dashboard loads and asks only for metrics the agent serves."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from inspector.agent import AgentConfig, start_agent

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "inspector-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "inspector-rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "uvicorn-inspector.json"
METRIC = re.compile(r"\b(?:inspector|process|python)_[a-z_]+\b")
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": ".+", "$instance": ".+"}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian/Ubuntu: apt-get install prometheus)")
    return subprocess.run(
        [found, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def test_the_alert_rules_pass_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_rule_tests_cover_every_alert() -> None:
    alerts = set(re.findall(r"^\s*- alert: (\w+)", RULES.read_text(), re.MULTILINE))
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert alerts == tested
    for needed in (
        "InspectorEventLoopStall",
        "InspectorEventLoopBlocked",
        "InspectorThreadpoolSaturated",
        "InspectorBackgroundJobsFailing",
        "InspectorUnseenExceptions",
        "InspectorRequestStuck",
    ):
        assert needed in alerts


def test_the_scrape_configs_are_valid(tmp_path: Path) -> None:
    directory = DEPLOY / "prometheus"
    checked = promtool("check", "config", "prometheus.yml", cwd=directory)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    kubernetes = promtool("check", "config", "prometheus-kubernetes.yml", cwd=directory)
    if "kubernetes_sd_configs not found" in kubernetes.stdout + kubernetes.stderr:
        # Debian builds promtool without Kubernetes discovery: check the rest of the file (the
        # relabelling above all) with static targets in its place.
        text = (directory / "prometheus-kubernetes.yml").read_text()
        text = text.replace(
            "kubernetes_sd_configs:\n      - role: pod",
            'static_configs:\n      - targets: ["pod:9100"]',
        )
        assert "kubernetes_sd_configs" not in text
        (tmp_path / "prometheus.yml").write_text(text)
        shutil.copy(RULES, tmp_path / RULES.name)
        kubernetes = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert kubernetes.returncode == 0, kubernetes.stdout + kubernetes.stderr


def test_the_kubernetes_examples_name_the_same_worker_ports() -> None:
    yaml = pytest.importorskip("yaml")
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yml").read_text())
    monitor = yaml.safe_load((DEPLOY / "kubernetes" / "podmonitor.yml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    base = int(env["INSPECTOR_METRICS_PORT"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    workers = int(container["command"][container["command"].index("--workers") + 1])
    for index in range(workers):
        assert ports[f"inspector-metrics-{index}"] == base + index
    endpoints = {endpoint["port"] for endpoint in monitor["spec"]["podMetricsEndpoints"]}
    assert endpoints == {f"inspector-metrics-{index}" for index in range(workers)}
    scrape = (DEPLOY / "prometheus" / "prometheus-kubernetes.yml").read_text()
    pattern = re.search(r"regex: (\S+)", scrape)
    assert pattern is not None
    assert all(re.fullmatch(pattern.group(1), name) for name in endpoints)


@pytest.fixture(scope="module")
def served_names() -> set[str]:
    """Every series name an agent with the lifecycle probes serves, with the suffixes
    Prometheus stores (_total, _bucket, _count, _sum, _info)."""
    pytest.importorskip("prometheus_client")
    from inspector.agent.metrics import registry_for

    async def collect() -> set[str]:
        agent = start_agent(config=AgentConfig(port=0, register=False))
        try:
            registry = registry_for(agent)
            families = await asyncio.to_thread(lambda: list(registry.collect()))
        finally:
            agent.close()
        names = set()
        for family in families:
            names.add(family.name)
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_count", "_sum"),
                "info": ("_info",),
            }.get(family.type, ())
            names.update(family.name + suffix for suffix in suffixes)
            names.update(sample.name for sample in family.samples)
        return names

    return asyncio.run(collect())


def _expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            found.append((panel["title"], target["expr"]))
    return found


def test_the_dashboard_loads_and_shows_what_it_promises() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    shown = " ".join(expr for _, expr in _expressions(dashboard))
    for metric in (
        "inspector_loop_lag_seconds_bucket",
        "inspector_stall_duration_seconds_bucket",
        "inspector_requests_in_flight",
        "inspector_threadpool_tokens_borrowed",
        "inspector_background_jobs_total",
        "inspector_unseen_exceptions_total",
    ):
        assert metric in shown


def test_every_expression_names_served_metrics_and_parses(
    served_names: set[str], tmp_path: Path
) -> None:
    expressions = _expressions(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    rule_text = RULES.read_text()
    for title, expr in [*expressions, ("rules", rule_text)]:
        unknown = set(METRIC.findall(expr)) - served_names
        assert not unknown, f"{title}: {sorted(unknown)} is not served by the agent"
    # promtool parses each panel's query as a recording rule.
    rules: list[str] = []
    for index, (_, expr) in enumerate(expressions):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append(f"      - record: panel_{index}\n        expr: {json.dumps(expr)}\n")
    path = tmp_path / "panels.yml"
    path.write_text("groups:\n  - name: panels\n    rules:\n" + "".join(rules))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
