"""Run the benchmarks and print a Markdown report (raw data in benchmarks/results/*.json).

    python -m benchmarks                 # everything, ~30 minutes on 2 cores
    python -m benchmarks --quick         # one short round of each, ~7 minutes
    python -m benchmarks --long          # memory over one million requests (+5 minutes)
    python -m benchmarks --only throughput,stalls

Sections: throughput (overhead of each configuration against plain uvicorn, on asyncio and
uvloop), inject (`inspector inject` into plain uvicorn: time to the first snapshot, throughput
injected and detached against before, pinned and unpinned), cost (instructions and cache misses
per request, counted by valgrind), snapshot (round trip at 10 to 50,000 tasks), stalls
(detection of 100 ms / 500 ms / 2 s blocks), memory (RSS over 100k requests, or 1M with --long),
tui (benchmarks/bench_tui.py), corpus (doctor on every app of tests/scenarios/: marked faults
named, healthy apps warned about, time from the first request to each finding). Needs wrk
(apt-get install -y wrk) for throughput, inject and memory, lldb or gdb for inject, valgrind for
cost; a configuration or section that cannot run here is reported as "n/a (reason)".
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SECTIONS = ("throughput", "inject", "cost", "snapshot", "stalls", "memory", "tui", "corpus")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="one short round of everything")
    parser.add_argument("--long", action="store_true", help="memory: one million requests")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--rounds", type=int, help="throughput rounds (default 3, quick 1)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (default 5, quick 2)")
    parser.add_argument(
        "--python312", help="a Python >= 3.12 with the project installed, for --trace-exceptions"
    )
    parser.add_argument(
        "--configs", help="throughput: comma-separated configuration keys (default: all)"
    )
    parser.add_argument(
        "--loops",
        help="comma-separated loops for throughput and inject: asyncio, uvloop (default: both)",
    )
    parser.add_argument("--json", type=Path, help="write the raw results here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sections = SECTIONS if not args.only else tuple(s.strip() for s in args.only.split(","))
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        print(
            f"benchmarks: unknown section {unknown[0]!r} (known: {', '.join(SECTIONS)})",
            file=sys.stderr,
        )
        return 2
    try:
        import fastapi  # noqa: F401
    except ImportError:
        print("benchmarks: FastAPI is needed: pip install -e '.[dev]'", file=sys.stderr)
        return 2

    from benchmarks import report
    from benchmarks.servers import LOOP_SETS, LoopSet, configurations, find_python312

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    seconds = args.seconds or (2.0 if quick else 5.0)
    python312 = find_python312(args.python312)
    configs = configurations(python312)
    by_key = {config.key: config for config in configs}
    agent = by_key["agent-idle"]
    asyncio_set, uvloop_set = LOOP_SETS
    data: dict[str, Any] = {"environment": report.environment(), "quick": quick}
    blocks: list[str] = []
    started = time.monotonic()

    def section(name: str, work: Callable[[], str]) -> None:
        if name not in sections:
            return
        log(f"== {name}")
        blocks.append(work())

    def throughput() -> str:
        from benchmarks.throughput import run_throughput

        chosen = configs
        if args.configs:
            keys = [key.strip() for key in args.configs.split(",")]
            chosen = [c for c in configs if c.key in keys or c.key == "plain"]
            chosen += [by_key[c.baseline] for c in chosen if by_key[c.baseline] not in chosen]
        loop_sets: tuple[LoopSet, ...] = LOOP_SETS
        if args.loops:
            loop_sets = tuple(s for s in LOOP_SETS if s.loop in args.loops.split(","))
        results = run_throughput(
            chosen,
            loop_sets,
            rounds=rounds,
            seconds=seconds,
            warmup=1.0 if quick else 2.0,
            log=log,
        )
        data["throughput"] = {
            f"{config.key} | {loop_set.name} | {endpoint.key}": results.summary(
                config, loop_set, endpoint
            )
            for config in results.configs
            for loop_set in results.loop_sets
            for endpoint in results.endpoints
        }
        return report.throughput_markdown(results)

    def inject() -> str:
        from benchmarks.inject import run_inject_bench

        loop_sets: tuple[LoopSet, ...] = LOOP_SETS
        if args.loops:
            loop_sets = tuple(s for s in LOOP_SETS if s.loop in args.loops.split(","))
        rows = run_inject_bench(
            by_key["plain"],
            loop_sets,
            rounds=rounds,
            seconds=seconds,
            warmup=1.0 if quick else 2.0,
            log=log,
        )
        data["inject"] = rows
        return report.inject_markdown(rows, seconds)

    def cost() -> str:
        from benchmarks.request_cost import run_request_cost, valgrind_missing

        missing = valgrind_missing()
        rows = [] if missing else run_request_cost(log)
        data["cost"] = rows
        return report.request_cost_markdown(rows, missing)

    def snapshot() -> str:
        from benchmarks.snapshot import run_snapshot_bench

        sizes = (10, 1_000, 10_000) if quick else (10, 1_000, 10_000, 50_000)
        rows = run_snapshot_bench(agent, asyncio_set, sizes, repeats=3 if quick else 7, log=log)
        data["snapshot"] = rows
        return report.snapshot_markdown(rows, asyncio_set.name)

    def stalls() -> str:
        from benchmarks.stalls import run_stall_bench

        rows = []
        for loop_set in (asyncio_set, uvloop_set):
            rows += run_stall_bench(
                agent, loop_set, (0.1, 0.5, 2.0), trials=1 if quick else 3, log=log
            )
        data["stalls"] = rows
        return report.stalls_markdown(rows)

    def memory() -> str:
        from benchmarks.memory import run_memory_bench

        target = 1_000_000 if args.long else (40_000 if quick else 100_000)
        chunk = 5.0 if args.long else (1.0 if quick else 2.0)
        result = run_memory_bench(agent, uvloop_set, target, chunk_seconds=chunk, log=log)
        log("  reference: plain uvicorn")
        reference = run_memory_bench(
            by_key["plain"], uvloop_set, target, chunk_seconds=chunk, log=log
        )
        data["memory"] = {"agent": result, "plain": reference}
        return report.memory_markdown(result, reference)

    def tui() -> str:
        from benchmarks.tui import run_tui_bench

        result = run_tui_bench(quick)
        data["tui"] = result
        return report.tui_markdown(result)

    def corpus() -> str:
        from benchmarks.corpus import corpus_data, corpus_markdown, run_corpus

        outcomes = run_corpus(log)
        data["corpus"] = corpus_data(outcomes)
        return corpus_markdown(outcomes)

    try:
        section("throughput", throughput)
        section("inject", inject)
        section("cost", cost)
        section("snapshot", snapshot)
        section("stalls", stalls)
        section("memory", memory)
        section("tui", tui)
        section("corpus", corpus)
    except KeyboardInterrupt:
        log("interrupted: reporting what was measured")
    env = data["environment"]
    header = (
        f"## Benchmarks ({'quick' if quick else 'full'} run, Python {env['python']}, "
        f"{env['cpus']} CPUs, load average {env['load_average'][0]:.1f} at start)"
    )
    print("\n\n".join([header, *blocks]))
    path = report.write_json(data, args.json)
    log(f"raw results: {path} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
