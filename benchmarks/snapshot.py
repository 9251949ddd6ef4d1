"""Snapshot round trip against the number of live tasks.

The bench app parks N tasks on one Event, three coroutines deep (`POST /spawn?n=N`); the real
client (`AgentSource`) then asks for snapshots on one reused connection, as the live UI does.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.probes import agent_client_unavailable, connect_agent, http_call
from benchmarks.servers import Config, LoopSet, ServerError, start_server
from inspector import codec
from inspector.agent.snapshot import SNAPSHOT_TTL


@dataclass(frozen=True)
class SnapshotRow:
    spawned: int
    tasks: int | None = None
    first_ms: float | None = None
    rtt_ms: float | None = None
    rtt_ms_max: float | None = None
    rtt_no_stacks_ms: float | None = None
    collect_ms: float | None = None
    json_kb: float | None = None
    unavailable: str | None = None


def run_snapshot_bench(
    config: Config,
    loop_set: LoopSet,
    sizes: Sequence[int],
    repeats: int,
    log: Callable[[str], None],
) -> list[SnapshotRow]:
    problem = config.blocked or agent_client_unavailable()
    if problem:
        return [SnapshotRow(n, unavailable=problem) for n in sizes]
    try:
        server = start_server(config, loop_set)
    except ServerError as error:
        return [SnapshotRow(n, unavailable=str(error)) for n in sizes]
    try:
        assert server.agent_port is not None
        return asyncio.run(_measure(server.port, server.agent_port, sizes, repeats, log))
    finally:
        server.stop()


async def _measure(
    http_port: int, agent_port: int, sizes: Sequence[int], repeats: int, log: Callable[[str], None]
) -> list[SnapshotRow]:
    rows = []
    source = await connect_agent(agent_port)
    try:
        for n in sizes:
            await asyncio.to_thread(http_call, "POST", http_port, f"/spawn?n={n}", 120)
            try:
                # Large sizes take seconds per snapshot: fewer repeats keep the run bounded.
                rows.append(await _one_size(source, n, repeats if n <= 10_000 else min(repeats, 3)))
            except Exception as error:  # noqa: BLE001 - one failed size is a row that says why
                rows.append(SnapshotRow(n, unavailable=f"{type(error).__name__}: {error}"))
            finally:
                await asyncio.to_thread(http_call, "POST", http_port, "/release", 120)
            log(f"  {n:>6} tasks: {rows[-1]}")
    finally:
        await source.close()
    return rows


async def _one_size(source: Any, n: int, repeats: int) -> SnapshotRow:
    started = time.perf_counter()
    await source.snapshot()  # the first one describes every task from scratch
    first = time.perf_counter() - started
    with_stacks, without, collect = [], [], []
    snapshot = None
    for _ in range(repeats):
        # Past the window in which the agent serves one built snapshot to every client asking:
        # each answer timed here is built, encoded and decoded afresh.
        await asyncio.sleep(SNAPSHOT_TTL * 1.5)
        started = time.perf_counter()
        snapshot = await source.snapshot()
        with_stacks.append(time.perf_counter() - started)
        collect.append(snapshot.health.collect_seconds)
        await asyncio.sleep(SNAPSHOT_TTL * 1.5)
        started = time.perf_counter()
        await source.snapshot(with_stacks=False)
        without.append(time.perf_counter() - started)
    assert snapshot is not None
    size = len(json.dumps(codec.to_json_dict(snapshot), separators=(",", ":")))
    return SnapshotRow(
        spawned=n,
        tasks=len(snapshot.tasks),
        first_ms=first * 1000,
        rtt_ms=statistics.median(with_stacks) * 1000,
        rtt_ms_max=max(with_stacks) * 1000,
        rtt_no_stacks_ms=statistics.median(without) * 1000,
        collect_ms=statistics.median(collect) * 1000,
        json_kb=size / 1024,
    )
