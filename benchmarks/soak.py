"""Faults soak: many clients polling the agent while the server is under load.

    python -m benchmarks.soak [--clients 20] [--hz 10] [--seconds 60] [--loop asyncio|uvloop]
                              [--unpinned]

Serves the bench app under the agent, measures the server's p99 under wrk alone (baseline),
then again while CLIENTS real clients poll full snapshots at HZ each for SECONDS. Passes when
the clients saw no errors, the server's p99 stayed within 2x of the baseline, and the server's
RSS stayed bounded (the soak's second half within 5% of its first). Prints the figures and
exits 1 on a failure. Not part of the test suite: it takes over a minute and wants a quiet
machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from typing import Any

from benchmarks.servers import (
    ENV_UNPINNED,
    LOOP_SETS,
    ServerError,
    configurations,
    rss_bytes,
    start_server,
)
from benchmarks.throughput import start_poller, stop_poller
from benchmarks.wrk import MIXED, WrkResult, run_wrk, wrk_missing

MB = 1024 * 1024
P99_LIMIT = 2.0
RSS_GROWTH_LIMIT = 0.05


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--processes", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--unpinned",
        action="store_true",
        help="let the OS place the server, wrk and the clients (as users run it) instead of "
        "pinning the server to core 0 and the rest to core 1",
    )
    args = parser.parse_args(argv)
    if args.unpinned:
        os.environ[ENV_UNPINNED] = "1"  # read by every process start below
    missing = wrk_missing()
    if missing:
        print(f"soak: {missing}", file=sys.stderr)
        return 2
    loop_set = next(s for s in LOOP_SETS if s.loop == args.loop)
    agent = next(c for c in configurations("unused") if c.key == "agent-idle")
    try:
        server = start_server(agent, loop_set)
    except ServerError as error:
        print(f"soak: the agent's server did not start: {error}", file=sys.stderr)
        return 2
    try:
        return _soak(server, args)
    finally:
        server.stop()


def _soak(server: Any, args: argparse.Namespace) -> int:
    pid = server.process.pid
    run_wrk(server.port, MIXED, 2)  # warm-up
    baseline = run_wrk(server.port, MIXED, 10)
    print(f"baseline (no clients): {_fmt(baseline)}")
    rss_start = rss_bytes(pid)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample_rss() -> None:
        started = time.monotonic()
        while not stop.wait(5.0):
            try:
                samples.append((time.monotonic() - started, rss_bytes(pid)))
            except Exception:  # noqa: BLE001 - the server went away; the checks below say so
                return

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    per_process = _split(args.clients, args.processes)
    pollers: list[subprocess.Popen[str]] = [
        start_poller(server, args.hz, clients=n) for n in per_process if n
    ]
    try:
        time.sleep(1.0)
        loaded = run_wrk(server.port, MIXED, args.seconds)
    finally:
        summaries = [stop_poller(p) for p in pollers]
        stop.set()
        sampler.join(10)
    rss_end = rss_bytes(pid)
    snapshots = sum(int(s.get("snapshots") or 0) for s in summaries)
    errors = sum(int(s.get("errors") or 0) for s in summaries)
    first_error = next((s.get("first_error") for s in summaries if s.get("first_error")), None)
    p99_ratio = loaded.p99_ms / baseline.p99_ms if baseline.p99_ms else float("inf")
    # Bounded = no growth while the clients keep polling: the first samples include the
    # one-time cost of 20 connections (buffers, sessions); compare the soak's two halves.
    during = [rss for _, rss in samples] or [rss_end]
    first_half = max(during[: max(1, len(during) // 2)])
    growth = (max(during[len(during) // 2 :] + [rss_end]) - first_half) / first_half
    print(f"with {args.clients} clients at {args.hz:g} Hz for {args.seconds:g} s: {_fmt(loaded)}")
    print(
        f"clients: {snapshots:,} snapshots ({snapshots / args.seconds:.0f}/s), {errors} errors"
        + (f" (first: {first_error})" if first_error else "")
    )
    rtts = [s for s in summaries if s.get("rtt_ms_p50") is not None]
    if rtts:
        print(
            "snapshot round trip: p50 "
            + ", ".join(f"{s['rtt_ms_p50']:.0f}" for s in rtts)
            + " ms, p99 "
            + ", ".join(f"{s['rtt_ms_p99']:.0f}" for s in rtts)
            + " ms (per client process)"
        )
    print(
        "agent RSS: "
        + " → ".join(f"{rss / MB:.1f}" for _, rss in [(0.0, rss_start), *samples, (0.0, rss_end)])
        + " MB"
    )
    checks = [
        ("no client errors", errors == 0, f"{errors} errors"),
        (
            f"server p99 within {P99_LIMIT:g}x of baseline",
            p99_ratio <= P99_LIMIT,
            f"{loaded.p99_ms:.1f} ms vs {baseline.p99_ms:.1f} ms = {p99_ratio:.2f}x",
        ),
        (
            f"RSS bounded (second half of the soak within {RSS_GROWTH_LIMIT:.0%} of the first)",
            growth < RSS_GROWTH_LIMIT,
            f"{first_half / MB:.1f} MB → {rss_end / MB:.1f} MB ({growth:+.1%}); "
            f"{rss_start / MB:.1f} MB before the clients connected",
        ),
    ]
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _fmt(result: WrkResult) -> str:
    return (
        f"{result.rps:,.0f} rps, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"{result.errors} errors"
    )


if __name__ == "__main__":
    sys.exit(main())
