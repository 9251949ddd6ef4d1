"""The benchmark report: Markdown tables ready for the README, and the raw data as JSON."""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.inject import InjectRow, summarize
from benchmarks.memory import MemoryResult
from benchmarks.request_cost import MODES, CostRow
from benchmarks.snapshot import SnapshotRow
from benchmarks.stalls import StallRow
from benchmarks.throughput import ThroughputResults
from benchmarks.tui import TuiResult

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _num(value: float | None, fmt: str = ",.0f") -> str:
    return "–" if value is None else format(value, fmt)


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _ratio_range(summary: dict[str, Any]) -> str:
    """ "0.93× (0.88–1.02)": the median per-round ratio and the spread of the rounds."""
    text = _ratio(summary["rps_ratio"])
    spread = summary.get("rps_ratio_range")
    if spread and summary.get("rounds", 0) > 1:
        text += f" ({spread[0]:.2f}–{spread[1]:.2f})"
    return text


def throughput_markdown(results: ThroughputResults) -> str:
    lines = [
        f"### Overhead (wrk -t1 -c50, {results.seconds:g} s per run, {results.rounds} round(s), "
        "median of per-round ratios to plain uvicorn, min–max over rounds in brackets)",
        "",
    ]
    unavailable: dict[str, str] = {}
    for loop_set in results.loop_sets:
        lines += [f"**{loop_set.name}**", ""]
        head = "| configuration |"
        rule = "|---|"
        for endpoint in results.endpoints:
            head += f" {endpoint.key} rps | ratio | p99 ms | p99 ratio |"
            rule += "---:|---:|---:|---:|"
        lines += [head, rule]
        for config in results.configs:
            row = f"| {config.label} |"
            for endpoint in results.endpoints:
                summary = results.summary(config, loop_set, endpoint)
                if "unavailable" in summary:
                    reason = str(summary["unavailable"])
                    unavailable.setdefault(f"{config.label} ({loop_set.name})", reason)
                    row += " n/a | | | |"
                    continue
                row += (
                    f" {_num(summary['rps'])} | {_ratio_range(summary)} |"
                    f" {_num(summary['p99_ms'], '.1f')} | {_ratio(summary['p99_ratio'])} |"
                )
            lines.append(row)
        lines.append("")
    lines.append("Endpoints: " + "; ".join(f"{e.key} = {e.label}" for e in results.endpoints) + ".")
    if unavailable:
        by_reason: dict[str, list[str]] = {}
        for label, reason in unavailable.items():
            by_reason.setdefault(reason, []).append(label)
        lines += ["", "n/a:"]
        lines += [f"- {'; '.join(labels)}: {reason}" for reason, labels in by_reason.items()]
    lines += [f"Note: {note}" for note in results.notes]
    return "\n".join(lines)


def inject_markdown(rows: list[InjectRow], seconds: float) -> str:
    rounds = max((row.round + 1 for row in rows), default=0)
    lines = [
        "### Inject into a running server (plain uvicorn, `inspector inject PID`; wrk -t1 -c50 "
        f"on GET /, {seconds:g} s per run, {rounds} round(s); ratios to the same process "
        "before the injection, median of rounds, min–max in brackets)",
        "",
        "| placement | loop | inject → first snapshot | command | before rps | injected rps "
        "| ratio | after --detach | detach | wrk errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for summary in summarize(rows):
        head = f"| {summary['placement']} | {summary['loop_set']} |"
        if "unavailable" in summary:
            lines.append(f"{head} n/a ({summary['unavailable']}) | | | | | | | |")
            continue
        lines.append(
            f"{head} {_seconds_range(summary['first_snapshot_s'], summary['first_snapshot_range'])}"
            f" | {_num(summary['inject_s'], '.2f')} s | {_num(summary['before_rps'])} |"
            f" {_num(summary['injected_rps'])} |"
            f" {_spread(summary['injected_ratio'], summary['injected_ratio_range'])} |"
            f" {_spread(summary['detached_ratio'], summary['detached_ratio_range'])} |"
            f" {_num(summary['detach_s'], '.2f')} s | {summary['errors']} |"
        )
    lines += [
        "",
        '"inject → first snapshot": from starting the command to the first full snapshot a '
        'client received (the loop idle between wrk runs); "command": the command alone. "after '
        '--detach": throughput once the agent is detached, as a ratio to before.',
    ]
    return "\n".join(lines)


def _seconds_range(median: float | None, spread: tuple[float, float] | None) -> str:
    text = f"{_num(median, '.2f')} s"
    if spread and spread[0] != spread[1]:
        text += f" ({spread[0]:.2f}–{spread[1]:.2f})"
    return text


def _spread(ratio: float | None, spread: tuple[float, float] | None) -> str:
    text = _ratio(ratio)
    if spread and spread[0] != spread[1]:
        text += f" ({spread[0]:.2f}–{spread[1]:.2f})"
    return text


def snapshot_markdown(rows: list[SnapshotRow], loop_set: str) -> str:
    lines = [
        f"### Snapshot round trip ({loop_set}, real client, reused connection)",
        "",
        "| tasks parked | tasks reported | first snapshot | full snapshot (median) | max | "
        "without stacks | collect in-process | as JSON |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.unavailable:
            lines.append(f"| {row.spawned:,} | n/a ({row.unavailable}) | | | | | | |")
            continue
        lines.append(
            f"| {row.spawned:,} | {_num(row.tasks)} | {_num(row.first_ms, '.1f')} ms |"
            f" {_num(row.rtt_ms, '.1f')} ms |"
            f" {_num(row.rtt_ms_max, '.1f')} ms | {_num(row.rtt_no_stacks_ms, '.1f')} ms |"
            f" {_num(row.collect_ms, '.1f')} ms | {_num(row.json_kb, ',.0f')} KB |"
        )
    lines += [
        "",
        "Each timed snapshot is built afresh (requests are spaced past the agent's sharing "
        'window). "first snapshot": the first after the tasks were spawned, which describes every '
        "task from scratch; later ones reuse what is known of tasks that have not run since. "
        '"as JSON": the decoded snapshot written out as plain JSON (the wire form is smaller).',
    ]
    return "\n".join(lines)


def stalls_markdown(rows: list[StallRow]) -> str:
    lines = [
        "### Stall detection (`time.sleep` in `async def`, agent threshold 100 ms)",
        "",
        "| loop | block | detected | measured (median) | error (median) | blocking line located |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[str, float], list[StallRow]] = {}
    for row in rows:
        groups.setdefault((row.loop_set, row.block_s), []).append(row)
    for (loop_set, block), group in groups.items():
        if group[0].unavailable:
            lines.append(f"| {loop_set} | {block:g} s | n/a ({group[0].unavailable}) | | | |")
            continue
        found = [row for row in group if row.detected]
        measured = statistics.median(r.measured_s or 0.0 for r in found) if found else None
        error = statistics.median(r.error_ms or 0.0 for r in found) if found else None
        located = sum(1 for row in found if row.located)
        lines.append(
            f"| {loop_set} | {block:g} s | {len(found)}/{len(group)} | "
            f"{_num(measured, '.3f')} s | {_num(error, '+.0f')} ms | {located}/{len(group)} |"
        )
    return "\n".join(lines)


def memory_markdown(result: MemoryResult, reference: MemoryResult | None = None) -> str:
    text = _memory_block(result)
    if reference is not None:
        text += "\n\nReference, same traffic without the agent:\n\n" + _memory_block(reference)
    return text


def _memory_block(result: MemoryResult) -> str:
    lines = [f"### Memory under load ({result.config}, {result.loop_set})", ""]
    if result.unavailable and not result.points:
        return "\n".join(lines + [f"n/a ({result.unavailable})"])
    lines += ["| requests | RSS |", "|---:|---:|"]
    step = max(1, len(result.points) // 12)
    shown = result.points[::step]
    if result.points and shown[-1] != result.points[-1]:
        shown.append(result.points[-1])
    lines += [f"| {n:,} | {mb:.1f} MB |" for n, mb in shown]
    lines.append("")
    if result.slope_mb_per_100k is not None:
        verdict = "flat" if result.flat else "**growing**"
        lines.append(
            f"Slope over the second half: {result.slope_mb_per_100k:+.2f} MB per 100k requests; "
            f"projected RSS at 1M requests: {result.projected_mb_at_1m:.1f} MB ({verdict}). "
            f"wrk errors: {result.errors}."
        )
    else:
        lines.append("Too few samples for a slope: run longer (the default or --long mode).")
    if result.unavailable:
        lines.append(f"Stopped early: {result.unavailable}")
    return "\n".join(lines)


def request_cost_markdown(rows: list[CostRow], unavailable: str | None = None) -> str:
    lines = [
        "### Cost per request, counted (valgrind: instructions and L1 cache misses, in-process)",
        "",
    ]
    if unavailable:
        return "\n".join(lines + [f"n/a ({unavailable})"])
    lines += [
        "| endpoint | configuration | instructions | ratio | L1 misses | ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.endpoint} | {MODES[row.mode]} | {row.instructions:,.0f} | "
            f"{_ratio(row.instructions_ratio)} | {row.l1_misses:,.0f} | "
            f"{_ratio(row.l1_misses_ratio)} |"
        )
    lines += [
        "",
        "Per request, averaged over 2,000, the ASGI app called directly (no sockets, no HTTP "
        "parsing: a served request costs more, so the agent's share of it is smaller).",
    ]
    return "\n".join(lines)


def tui_markdown(result: TuiResult) -> str:
    lines = ["### Live UI: applying a 10,000-task update", ""]
    if result.unavailable:
        lines.append(f"n/a ({result.unavailable})")
    if result.output:
        lines += ["```", result.output, "```"]
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_json(data: dict[str, Any], path: Path | None = None) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = path or RESULTS_DIR / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(_plain(data), indent=1, default=str) + "\n")
    return path


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
