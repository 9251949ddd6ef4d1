"""The agent's memory under sustained traffic: RSS must stay flat.

wrk drives GET / and GET /bg (one background task each) in chunks; after each chunk the server's
RSS is read. The slope is fitted over the second half of the run (the first half includes the
allocator's and the histories' warm-up) and extrapolated to one million requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.servers import Config, LoopSet, ServerError, rss_bytes, server_pid, start_server
from benchmarks.wrk import MIXED, run_wrk, wrk_missing

MB = 1024 * 1024
FLAT_MB_PER_MILLION = 5.0
"""Growth below this (extrapolated to 1M requests) counts as flat."""


@dataclass
class MemoryResult:
    config: str
    loop_set: str
    target: int
    points: list[tuple[int, float]] = field(default_factory=list)
    """(requests so far, RSS MB)."""
    slope_mb_per_100k: float | None = None
    projected_mb_at_1m: float | None = None
    flat: bool | None = None
    errors: int = 0
    unavailable: str | None = None


def run_memory_bench(
    config: Config,
    loop_set: LoopSet,
    target: int,
    chunk_seconds: float,
    log: Callable[[str], None],
) -> MemoryResult:
    result = MemoryResult(config.label, loop_set.name, target)
    problem = config.blocked or loop_set.unavailable() or wrk_missing()
    if problem:
        result.unavailable = problem
        return result
    try:
        server = start_server(config, loop_set)
    except ServerError as error:
        result.unavailable = str(error)
        return result
    try:
        pid = server_pid(server)
        total = 0
        result.points.append((0, rss_bytes(pid) / MB))
        while total < target:
            run = run_wrk(server.port, MIXED, chunk_seconds)
            total += run.requests
            result.errors += run.errors
            result.points.append((total, rss_bytes(pid) / MB))
            log(f"  {total:>9,} requests: RSS {result.points[-1][1]:.1f} MB")
    except (RuntimeError, ValueError) as error:
        result.unavailable = str(error).splitlines()[0]
    finally:
        server.stop()
    _fit(result)
    return result


def _fit(result: MemoryResult) -> None:
    half = result.points[len(result.points) // 2 :]
    if len(half) < 4:
        return  # too few points for a slope worth printing
    xs = [float(n) for n, _ in half]
    ys = [mb for _, mb in half]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = covariance / var  # MB per request
    last_n, last_mb = result.points[-1]
    result.slope_mb_per_100k = slope * 100_000
    result.projected_mb_at_1m = last_mb + slope * max(0, 1_000_000 - last_n)
    result.flat = slope * 1_000_000 < FLAT_MB_PER_MILLION
