"""Stall detection: block the loop for a known time and check what the agent reports.

For each block length: was a stall recorded, how far is its measured duration from the real
one, and does its stack sample point at the blocking line of the bench app (`# bench: stall`)?
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.probes import agent_client_unavailable, connect_agent, http_call
from benchmarks.servers import ROOT, Config, LoopSet, ServerError, start_server

BENCH_APP = ROOT / "benchmarks" / "apps" / "bench_app.py"


def stall_line(path: Path = BENCH_APP) -> int:
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if text.rstrip().endswith("# bench: stall"):
            return number
    raise LookupError("no `# bench: stall` marker in the bench app")


@dataclass(frozen=True)
class StallRow:
    loop_set: str
    block_s: float
    trial: int
    detected: bool | None = None
    measured_s: float | None = None
    error_ms: float | None = None
    located: bool | None = None
    located_at: str | None = None
    unavailable: str | None = None


def run_stall_bench(
    config: Config,
    loop_set: LoopSet,
    blocks: Sequence[float],
    trials: int,
    log: Callable[[str], None],
) -> list[StallRow]:
    problem = config.blocked or loop_set.unavailable() or agent_client_unavailable()
    if problem:
        return [StallRow(loop_set.name, b, 0, unavailable=problem) for b in blocks]
    try:
        server = start_server(config, loop_set)
    except ServerError as error:
        return [StallRow(loop_set.name, b, 0, unavailable=str(error)) for b in blocks]
    try:
        assert server.agent_port is not None
        return asyncio.run(_measure(server.port, server.agent_port, loop_set, blocks, trials, log))
    finally:
        server.stop()


async def _measure(
    http_port: int,
    agent_port: int,
    loop_set: LoopSet,
    blocks: Sequence[float],
    trials: int,
    log: Callable[[str], None],
) -> list[StallRow]:
    line = stall_line()
    rows = []
    source = await connect_agent(agent_port)
    try:
        await asyncio.sleep(0.5)  # let start-up stalls (imports, first requests) settle
        for trial in range(trials):
            for block in blocks:
                row = await _one_block(source, http_port, loop_set.name, block, trial, line)
                rows.append(row)
                log(f"  {loop_set.name} block {block:g} s: {row}")
    finally:
        await source.close()
    return rows


async def _one_block(
    source: Any, http_port: int, loop_set: str, block: float, trial: int, line: int
) -> StallRow:
    before = {stall.id for stall in (await source.snapshot()).stalls}
    await asyncio.to_thread(http_call, "GET", http_port, f"/block?seconds={block}", block + 30)
    deadline = time.monotonic() + 3.0
    new: list[Any] = []
    while time.monotonic() < deadline:
        snapshot = await source.snapshot()
        new = [s for s in snapshot.stalls if s.id not in before and not s.ongoing]
        if new:
            break
        await asyncio.sleep(0.1)
    if not new:
        return StallRow(loop_set, block, trial, detected=False)
    stall = max(new, key=lambda s: s.duration)
    frames = [
        frame
        for sample in stall.samples
        for frame in sample.frames
        if Path(frame.file).name == BENCH_APP.name
    ]
    located_at = f"{BENCH_APP.name}:{frames[-1].line}" if frames else None
    return StallRow(
        loop_set,
        block,
        trial,
        detected=True,
        measured_s=stall.duration,
        error_ms=(stall.duration - block) * 1000,
        located=any(frame.line == line for frame in frames),
        located_at=located_at,
    )
