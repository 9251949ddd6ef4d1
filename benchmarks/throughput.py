"""Throughput and p99 latency of each configuration, relative to plain uvicorn.

Method (the one the design notes used for aiomonitor): each round starts every configuration in
turn, in an order rotated from round to round, server pinned to one core and wrk to the other;
a configuration's ratio is the median over rounds of (its rps / plain uvicorn's rps in the same
round, same loop, same endpoint). Medians of per-round ratios cancel most of the drift of a
shared, noisy machine; they do not make a 2-core machine quiet.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.servers import (
    HOST,
    LOAD_CPU,
    ROOT,
    Config,
    LoopSet,
    Server,
    ServerError,
    pinned,
    start_server,
)
from benchmarks.wrk import HELLO, REALISTIC, Endpoint, WrkResult, run_wrk, wrk_missing


@dataclass
class Cell:
    """One (configuration, loop set, endpoint): results per round, or why there are none."""

    results: dict[int, WrkResult] = field(default_factory=dict)
    unavailable: str | None = None
    poller: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ThroughputResults:
    configs: list[Config]
    loop_sets: list[LoopSet]
    endpoints: list[Endpoint]
    rounds: int
    seconds: float
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def cell(self, config: str, loop_set: str, endpoint: str) -> Cell:
        return self.cells.setdefault((config, loop_set, endpoint), Cell())

    def summary(self, config: Config, loop_set: LoopSet, endpoint: Endpoint) -> dict[str, Any]:
        """Median rps and p99 over rounds, and median per-round ratios to the baseline."""
        cell = self.cell(config.key, loop_set.name, endpoint.key)
        base = self.cell(config.baseline, loop_set.name, endpoint.key)
        if not cell.results:
            return {"unavailable": cell.unavailable or "no result"}
        rps = statistics.median(r.rps for r in cell.results.values())
        p99 = statistics.median(r.p99_ms for r in cell.results.values())
        rps_ratios = [
            cell.results[n].rps / base.results[n].rps
            for n in cell.results
            if n in base.results and base.results[n].rps > 0
        ]
        p99_ratios = [
            cell.results[n].p99_ms / base.results[n].p99_ms
            for n in cell.results
            if n in base.results and base.results[n].p99_ms > 0
        ]
        return {
            "rps": rps,
            "p99_ms": p99,
            "rps_ratio": statistics.median(rps_ratios) if rps_ratios else None,
            "rps_ratio_range": (min(rps_ratios), max(rps_ratios)) if rps_ratios else None,
            "p99_ratio": statistics.median(p99_ratios) if p99_ratios else None,
            "errors": sum(r.errors for r in cell.results.values()),
            "rounds": len(cell.results),
            "poller": cell.poller,
        }


def rotated(items: Sequence[Config], offset: int) -> list[Config]:
    if not items:
        return []
    offset %= len(items)
    return list(items[offset:]) + list(items[:offset])


def run_throughput(
    configs: Sequence[Config],
    loop_sets: Sequence[LoopSet],
    *,
    rounds: int,
    seconds: float,
    warmup: float,
    log: Callable[[str], None],
    endpoints: Sequence[Endpoint] = (HELLO, REALISTIC),
) -> ThroughputResults:
    results = ThroughputResults(list(configs), list(loop_sets), list(endpoints), rounds, seconds)
    missing = wrk_missing()
    if missing:
        for config in configs:
            for loop_set in loop_sets:
                for endpoint in endpoints:
                    results.cell(config.key, loop_set.name, endpoint.key).unavailable = missing
        return results
    poller_problem = _poller_unavailable()
    for round_number in range(rounds):
        for loop_set in loop_sets:
            for config in rotated(configs, round_number):
                reason = config.blocked or loop_set.unavailable()
                if config.polled_hz and not reason:
                    reason = poller_problem
                if reason:
                    for endpoint in endpoints:
                        results.cell(config.key, loop_set.name, endpoint.key).unavailable = reason
                    continue
                log(f"  round {round_number + 1}/{rounds} {loop_set.name}: {config.label}")
                _measure(results, config, loop_set, round_number, seconds, warmup, endpoints, log)
    return results


def _measure(
    results: ThroughputResults,
    config: Config,
    loop_set: LoopSet,
    round_number: int,
    seconds: float,
    warmup: float,
    endpoints: Sequence[Endpoint],
    log: Callable[[str], None],
) -> None:
    try:
        server = start_server(config, loop_set)
    except ServerError as error:
        log(f"    n/a: {error}")
        for endpoint in endpoints:
            results.cell(config.key, loop_set.name, endpoint.key).unavailable = str(error)
        return
    poller: subprocess.Popen[str] | None = None
    try:
        run_wrk(server.port, HELLO, warmup)
        if config.polled_hz:
            poller = start_poller(server, config.polled_hz)
            time.sleep(1.0)  # connected and polling before the measurement starts
        for endpoint in endpoints:
            result = run_wrk(server.port, endpoint, seconds)
            results.cell(config.key, loop_set.name, endpoint.key).results[round_number] = result
            log(f"    {endpoint.key}: {result.rps:,.0f} rps, p99 {result.p99_ms:.1f} ms")
        if poller is not None:
            summary = stop_poller(poller)
            for endpoint in endpoints:
                results.cell(config.key, loop_set.name, endpoint.key).poller.append(summary)
            log(f"    poller: {summary}")
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
        log(f"    failed: {error}")
        for endpoint in endpoints:
            cell = results.cell(config.key, loop_set.name, endpoint.key)
            cell.unavailable = cell.unavailable or str(error).splitlines()[0]
    finally:
        if poller is not None and poller.poll() is None:
            stop_poller(poller)
        server.stop()


def _poller_unavailable() -> str | None:
    try:
        from inspector.client.agent_source import AgentSource  # noqa: F401
    except ImportError as error:
        return f"the agent client is not available ({error})"
    return None


def start_poller(
    server: Server, hz: float, clients: int = 1, stacks: bool = True
) -> subprocess.Popen[str]:
    assert server.agent_port is not None
    argv = [
        sys.executable,
        "-m",
        "benchmarks.poller",
        f"{HOST}:{server.agent_port}",
        "--hz",
        str(hz),
        "--clients",
        str(clients),
    ]
    if not stacks:
        argv.append("--no-stacks")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        pinned(argv, LOAD_CPU),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stop_poller(poller: subprocess.Popen[str]) -> dict[str, Any]:
    if poller.poll() is None:
        os.killpg(poller.pid, signal.SIGTERM)
    try:
        out, err = poller.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(poller.pid, signal.SIGKILL)
        out, err = poller.communicate(timeout=5)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        return {"errors": 1, "first_error": (err.strip().splitlines() or ["no output"])[-1]}
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary
