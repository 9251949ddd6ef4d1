"""Latency per route, computed at snapshot time from the finished requests.

Finishing a request is one append to the tracker's history; the statistics are worked out only
when a client asks, over the last `STATS_WINDOW` (or more) requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from inspector.agent.probes.records import FinishedRequest
from inspector.model import RouteStats

MAX_ROUTES: Final = 256
"""Distinct (method, route) keys reported in latency statistics."""
STATS_WINDOW: Final = 1000
"""Finished requests the per-route latency statistics are computed over (at least)."""
NO_ROUTE: Final = "(no route)"


def route_stats(entries: Sequence[FinishedRequest]) -> tuple[RouteStats, ...]:
    """Latency per (method, route) over finished-request entries (see `RequestTracker.finish`)."""
    groups: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for entry in entries:
        failed = entry.error is not None or (entry.status or 0) >= 500
        key = (entry.method, entry.route or NO_ROUTE)
        groups.setdefault(key, []).append((entry.duration, failed))
    result = []
    for (method, route), samples in groups.items():
        durations = sorted(duration for duration, _ in samples)
        result.append(
            RouteStats(
                route=route,
                method=method,
                count=len(durations),
                errors=sum(1 for _, failed in samples if failed),
                p50=_percentile(durations, 0.50),
                p95=_percentile(durations, 0.95),
                max=durations[-1],
            )
        )
    result.sort(key=lambda stats: (stats.route, stats.method))
    return tuple(result[:MAX_ROUTES])


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]
