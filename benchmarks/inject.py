"""`inspector inject` into a plain uvicorn server: how long until the first snapshot, and what
the injected agent costs the server's throughput.

Each round starts plain uvicorn (no agent), measures it under wrk, injects the agent with the
real command (`python -m inspector inject PID`), times the command and the first snapshot after
it, measures again, detaches (`inject --detach`) and measures a third time. Ratios are taken
within the round, on the same server process: injected / before and detached / before. Run
pinned (server on one core, wrk and the command on the other) and unpinned, as users run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.probes import agent_client_unavailable
from benchmarks.servers import (
    ENV_UNPINNED,
    HOST,
    LOAD_CPU,
    ROOT,
    Config,
    LoopSet,
    ServerError,
    pinned,
    server_pid,
    start_server,
)
from benchmarks.wrk import HELLO, WrkResult, run_wrk, wrk_missing

PLACEMENTS = ("pinned", "unpinned")
INJECT_TIMEOUT = 60.0


@dataclass(frozen=True)
class InjectRow:
    placement: str
    loop_set: str
    round: int
    inject_s: float | None = None
    """The `inspector inject` command, start to exit."""
    first_snapshot_s: float | None = None
    """From the command's start to the first full snapshot received."""
    detach_s: float | None = None
    before_rps: float | None = None
    injected_rps: float | None = None
    detached_rps: float | None = None
    errors: int = 0
    """wrk's socket errors and non-2xx responses over the three runs."""
    unavailable: str | None = None

    @property
    def injected_ratio(self) -> float | None:
        return _ratio(self.injected_rps, self.before_rps)

    @property
    def detached_ratio(self) -> float | None:
        return _ratio(self.detached_rps, self.before_rps)


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def run_inject_bench(
    plain: Config,
    loop_sets: Sequence[LoopSet],
    *,
    rounds: int,
    seconds: float,
    warmup: float,
    log: Callable[[str], None],
) -> list[InjectRow]:
    rows: list[InjectRow] = []
    problem = wrk_missing() or agent_client_unavailable() or _no_debugger()
    for placement in PLACEMENTS:
        with _placement(placement):
            for loop_set in loop_sets:
                reason = problem or loop_set.unavailable()
                if reason:
                    rows.append(InjectRow(placement, loop_set.name, 0, unavailable=reason))
                    continue
                for number in range(rounds):
                    log(f"  {placement} {loop_set.name}: round {number + 1}/{rounds}")
                    row = _round(plain, loop_set, placement, number, seconds, warmup)
                    log(f"    {_describe(row)}")
                    rows.append(row)
    return rows


def _no_debugger() -> str | None:
    """Why `inspector inject` cannot run into a server of this Python here, if it cannot."""
    if sys.version_info >= (3, 14):
        return None
    from inspector.commands.inject_debugger import gdb_known_bad, installed

    found = installed()
    if not found or (found == ["gdb"] and gdb_known_bad()):
        return "no debugger that can call into a process here (apt-get install lldb)"
    return None


@contextlib.contextmanager
def _placement(placement: str) -> Iterator[None]:
    """Every process started inside runs pinned or unpinned (`servers.pinned` reads it)."""
    before = os.environ.get(ENV_UNPINNED)
    if placement == "unpinned":
        os.environ[ENV_UNPINNED] = "1"
    else:
        os.environ.pop(ENV_UNPINNED, None)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_UNPINNED, None)
        else:
            os.environ[ENV_UNPINNED] = before


def _round(
    plain: Config, loop_set: LoopSet, placement: str, number: int, seconds: float, warmup: float
) -> InjectRow:
    try:
        server = start_server(plain, loop_set)
    except ServerError as error:
        return InjectRow(placement, loop_set.name, number, unavailable=str(error))
    try:
        run_wrk(server.port, HELLO, warmup)
        before = run_wrk(server.port, HELLO, seconds)
        pid = server_pid(server)
        started = time.monotonic()
        injected = _inspector("inject", str(pid))
        inject_s = time.monotonic() - started
        address = re.search(r" at (\S+):(\d+) ", injected)
        if address is None:
            raise RuntimeError(f"inspector inject: {injected.strip()[-200:]}")
        asyncio.run(_first_snapshot(address.group(1), int(address.group(2))))
        first_snapshot_s = time.monotonic() - started
        during = run_wrk(server.port, HELLO, seconds)
        started = time.monotonic()
        _inspector("inject", "--detach", str(pid))
        detach_s = time.monotonic() - started
        after = run_wrk(server.port, HELLO, seconds)
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        return InjectRow(placement, loop_set.name, number, unavailable=reason)
    finally:
        server.stop()
    return InjectRow(
        placement,
        loop_set.name,
        number,
        inject_s=inject_s,
        first_snapshot_s=first_snapshot_s,
        detach_s=detach_s,
        before_rps=before.rps,
        injected_rps=during.rps,
        detached_rps=after.rps,
        errors=_errors(before, during, after),
    )


def _errors(*results: WrkResult) -> int:
    return sum(result.errors for result in results)


def _inspector(*args: str) -> str:
    """Run the CLI as a person would (on the load's core when pinned); its stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    runtime = os.path.join(tempfile.gettempdir(), f"inspector-bench-{os.getuid()}")
    env.setdefault("INSPECTOR_RUNTIME_DIR", runtime)  # where start_server's servers register
    out = subprocess.run(
        pinned([sys.executable, "-m", "inspector", *args], LOAD_CPU),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=INJECT_TIMEOUT,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"inspector {args[0]}: {out.stderr.strip()[-300:]}")
    return out.stdout


async def _first_snapshot(host: str, port: int) -> None:
    from inspector.client.agent_source import AgentSource

    source = AgentSource(host if host != "0.0.0.0" else HOST, port, command_timeout=30.0)
    try:
        await source.connect()
        await source.snapshot(with_stacks=True)
    finally:
        await source.close()


def _describe(row: InjectRow) -> str:
    if row.unavailable:
        return f"n/a: {row.unavailable}"
    return (
        f"inject {row.inject_s:.2f} s, first snapshot {row.first_snapshot_s:.2f} s; "
        f"{row.before_rps:,.0f} → {row.injected_rps:,.0f} → {row.detached_rps:,.0f} rps"
    )


def summarize(rows: Sequence[InjectRow]) -> list[dict[str, Any]]:
    """Per (placement, loop): medians over rounds, and the spread of the per-round ratios."""
    groups: dict[tuple[str, str], list[InjectRow]] = {}
    for row in rows:
        groups.setdefault((row.placement, row.loop_set), []).append(row)
    summaries: list[dict[str, Any]] = []
    for (placement, loop_set), group in groups.items():
        done = [row for row in group if not row.unavailable]
        if not done:
            reason = group[0].unavailable or "no result"
            summaries.append({"placement": placement, "loop_set": loop_set, "unavailable": reason})
            continue
        summaries.append(
            {
                "placement": placement,
                "loop_set": loop_set,
                "rounds": len(done),
                "inject_s": _median(r.inject_s for r in done),
                "first_snapshot_s": _median(r.first_snapshot_s for r in done),
                "first_snapshot_range": _range(r.first_snapshot_s for r in done),
                "detach_s": _median(r.detach_s for r in done),
                "before_rps": _median(r.before_rps for r in done),
                "injected_rps": _median(r.injected_rps for r in done),
                "injected_ratio": _median(r.injected_ratio for r in done),
                "injected_ratio_range": _range(r.injected_ratio for r in done),
                "detached_ratio": _median(r.detached_ratio for r in done),
                "detached_ratio_range": _range(r.detached_ratio for r in done),
                "errors": sum(r.errors for r in done),
            }
        )
    return summaries


def _median(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _range(values: Any) -> tuple[float, float] | None:
    known = [v for v in values if v is not None]
    return (min(known), max(known)) if known else None
