"""A client that polls an agent for snapshots at a fixed rate, as the live UI does.

    python -m benchmarks.poller HOST:PORT [--hz 1] [--clients 1] [--no-stacks] [--seconds S]

Runs until SIGTERM/SIGINT (or --seconds), then prints one JSON line: snapshots taken, errors,
and round-trip percentiles. Uses the real client (`inspector.client.agent_source.AgentSource`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field


@dataclass
class PollStats:
    snapshots: int = 0
    errors: int = 0
    round_trips: list[float] = field(default_factory=list)
    first_error: str | None = None

    def summary(self) -> dict[str, object]:
        trips = sorted(self.round_trips)

        def pct(q: float) -> float | None:
            return (
                round(trips[min(len(trips) - 1, int(q * len(trips)))] * 1000, 2) if trips else None
            )

        return {
            "snapshots": self.snapshots,
            "errors": self.errors,
            "first_error": self.first_error,
            "rtt_ms_p50": round(statistics.median(trips) * 1000, 2) if trips else None,
            "rtt_ms_p99": pct(0.99),
            "rtt_ms_max": round(trips[-1] * 1000, 2) if trips else None,
        }


async def poll(
    host: str, port: int, hz: float, stats: PollStats, stop: asyncio.Event, stacks: bool
) -> None:
    from inspector.client.agent_source import AgentSource

    source = AgentSource(host, port, command_timeout=30)
    try:
        await source.connect()
        period = 1.0 / hz
        next_at = time.monotonic()
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await source.snapshot(with_stacks=stacks)
            except Exception as error:  # noqa: BLE001 - counted and reported, the poll goes on
                stats.errors += 1
                stats.first_error = stats.first_error or f"{type(error).__name__}: {error}"
                await asyncio.sleep(0.2)
                await source.close()
                await source.connect()
            else:
                stats.snapshots += 1
                stats.round_trips.append(time.perf_counter() - started)
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()
                continue
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
    except Exception as error:  # noqa: BLE001 - a failed connect is an error in the summary
        stats.errors += 1
        stats.first_error = stats.first_error or f"{type(error).__name__}: {error}"
    finally:
        await source.close()


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    host, _, port = args.address.rpartition(":")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.seconds:
        loop.call_later(args.seconds, stop.set)
    all_stats = [PollStats() for _ in range(args.clients)]
    await asyncio.gather(
        *(
            poll(host or "127.0.0.1", int(port), args.hz, s, stop, not args.no_stacks)
            for s in all_stats
        )
    )
    merged = PollStats()
    for s in all_stats:
        merged.snapshots += s.snapshots
        merged.errors += s.errors
        merged.round_trips += s.round_trips
        merged.first_error = merged.first_error or s.first_error
    return merged.summary()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.poller")
    parser.add_argument("address", help="HOST:PORT of the agent")
    parser.add_argument("--hz", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--no-stacks", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    summary = asyncio.run(main_async(args))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
