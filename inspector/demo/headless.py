"""`inspector demo --headless`: run the traffic for a while, then print the `doctor` report.

The snapshot is taken while the last threadpool burst is still in flight and before the
traffic's connections close, so the report shows the server as a person attaching right then
would see it: the stalls and failures from its histories, the hangs and the saturation live.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from inspector.demo.expected import (
    DEMO_APP_FILE,
    Match,
    expected_for,
    healthy_violations,
    marker_lines,
    match_findings,
)
from inspector.demo.server import HOST, DemoServer
from inspector.demo.traffic import DemoClient, TrafficStats, Trigger, drive
from inspector.errors import ExitStatus
from inspector.escape import printable

if TYPE_CHECKING:
    from inspector.client.source import Source
    from inspector.diagnose.findings import Finding
    from inspector.model import Snapshot


@dataclass(frozen=True)
class HeadlessOptions:
    duration: float
    as_json: bool
    check: bool
    stuck_after: float = 5.0


async def run_headless(
    server: DemoServer,
    options: HeadlessOptions,
    out: TextIO,
    progress: Callable[[str], None],
) -> int:
    """Drive the demo, diagnose one snapshot, print the report; returns the exit status."""
    stats = TrafficStats()
    client = DemoClient(HOST, server.http_port, stats)
    started = time.monotonic()

    def announce(trigger: Trigger) -> None:
        progress(f"  {time.monotonic() - started:5.1f} s  {trigger.name}")

    source = await _connect(server.agent_address)  # before the traffic: fail early
    try:
        progress(f"sending traffic for {options.duration:g} s…")
        try:
            await drive(client, asyncio.Event(), duration=options.duration, on_trigger=announce)
            snapshot = await source.snapshot()
        finally:
            await client.close()
    finally:
        await source.close()
    progress(f"traffic: {stats.summary()}")
    findings = _diagnose(snapshot, options.stuck_after)
    if options.as_json:
        document = {
            "target": server.agent_address,
            "taken_at": snapshot.taken_at,
            "findings": [finding.to_json_dict() for finding in findings],
        }
        out.write(json.dumps(document, ensure_ascii=False, indent=1) + "\n")
    else:
        out.write(_render(findings, snapshot, server, out))
    out.flush()
    if not options.check:
        return ExitStatus.OK
    return _check(findings, server, progress)


async def _connect(address: str) -> Source:
    from inspector.client.target import open_source

    source = open_source(address, None)
    try:
        await source.connect()
    except BaseException:
        await source.close()
        raise
    return source


def _diagnose(snapshot: Snapshot, stuck_after: float) -> list[Finding]:
    from inspector.diagnose import diagnose

    return diagnose(snapshot, stuck_after=stuck_after)


def _render(
    findings: Sequence[Finding], snapshot: Snapshot, server: DemoServer, out: TextIO
) -> str:
    from inspector.render.findings import render_findings, use_color

    header = (
        f"inspector demo — {server.url}, agent {server.agent_address}, "
        f"pid {snapshot.process.pid}, snapshot at "
        f"{time.strftime('%H:%M:%S', time.localtime(snapshot.taken_at))}"
    )
    notes = []
    if not server.trace_exceptions:
        notes.append(
            "swallowed exceptions (POST /coupons/apply) are reported on Python >= 3.12 only "
            "(--trace-exceptions)"
        )
    return render_findings(
        findings, color=use_color(out), header=header, notes=notes, cwd=snapshot.process.cwd
    )


def _check(findings: Sequence[Finding], server: DemoServer, progress: Callable[[str], None]) -> int:
    """Compare the findings with the demo's table; say what is missing."""
    documents = [finding.to_json_dict() for finding in findings]
    python = (3, 12) if server.trace_exceptions else (3, 11)
    matches = match_findings(documents, expected_for(python), marker_lines())
    violations = healthy_violations(documents)
    progress(check_summary(matches, violations))
    missing = [m for m in matches if m.finding is None]
    return ExitStatus.FINDINGS if missing or violations else ExitStatus.OK


def check_summary(matches: Sequence[Match], violations: Sequence[Mapping[str, Any]]) -> str:
    """One line per expected failure: found where, or missing."""
    lines = ["check against the demo's expected findings:"]
    for match in matches:
        entry = match.expected
        if match.finding is None:
            lines.append(f"  MISSING  {entry.name:<24} {'/'.join(entry.kinds)} ({entry.endpoint})")
            continue
        location = match.finding.get("location") or {}
        where = f"{DEMO_APP_FILE}:{location.get('line')}" if location else "(no location)"
        lines.append(
            f"  ok       {entry.name:<24} {printable(str(match.finding['kind']))} at {where}"
        )
    for finding in violations:
        named = printable(f"{finding.get('kind')} names {finding.get('request')}")
        lines.append(f"  HEALTHY  {named}")
    found = sum(1 for m in matches if m.finding is not None)
    lines.append(f"  {found}/{len(matches)} found, {len(violations)} on healthy endpoints")
    return "\n".join(lines)
