"""The diagnosis corpus as a benchmark: how many marked faults doctor names, how fast, and how
many healthy apps it wrongly warns about.

Each scenario under `tests/scenarios/` is served with `inspector run` and watched with
`inspector doctor --watch --json`; the time to a finding runs from the first request the
scenario sends to the moment doctor prints the finding (its poll is every 0.25 s). The
scenarios run one at a time here, so the times are not inflated by each other.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.scenarios import runner


def run_corpus(log: Callable[[str], None], jobs: int = 1) -> list[runner.Outcome]:
    items = runner.scenario_files()
    outcomes: list[runner.Outcome] = []
    with tempfile.TemporaryDirectory() as workdir:
        for index, item in enumerate(items, start=1):
            outcome = runner.run_all([item], Path(workdir), jobs)[item.name]
            status = "skipped" if outcome.skipped else f"{len(outcome.named)}/{len(outcome.marks)}"
            log(f"  [{index}/{len(items)}] {item.name}: {status}")
            outcomes.append(outcome)
    return outcomes


def corpus_data(outcomes: list[runner.Outcome]) -> dict[str, Any]:
    named, total, alarmed, healthy = runner.score(outcomes)
    times = [t for o in outcomes for t in o.named.values()]
    return {
        "named": named,
        "marks": total,
        "healthy_with_warning": alarmed,
        "healthy": healthy,
        "time_to_finding_median": statistics.median(times) if times else None,
        "time_to_finding_max": max(times, default=None),
        "scenarios": {
            o.name: {
                "named": {str(line): t for line, t in o.named.items()},
                "missed": [f"{m.line} {'|'.join(m.kinds)}" for m in o.missed],
                "warnings": len(o.warnings),
                "unmarked_warnings": len(o.unmarked_warnings),
                "skipped": o.skipped,
                "error": o.error,
            }
            for o in outcomes
        },
    }


def corpus_markdown(outcomes: list[runner.Outcome]) -> str:
    data = corpus_data(outcomes)
    median, longest = data["time_to_finding_median"], data["time_to_finding_max"]
    lines = [
        "### Diagnosis corpus",
        "",
        f"Marked faults named with their kind: **{data['named']}/{data['marks']}**; healthy "
        f"apps with a warning: **{data['healthy_with_warning']}/{data['healthy']}**; time from "
        "the first request to the finding: "
        + (f"median {median:.1f} s, longest {longest:.1f} s." if median is not None else "–."),
        "",
        "| scenario | named | first request → finding | missed | other warnings |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        if o.skipped:
            lines.append(f"| {o.name} | skipped: {o.skipped} | | | |")
            continue
        times = ", ".join(f"{t:.1f} s" for t in o.named.values()) or "–"
        missed = ", ".join(f"line {m.line} {'|'.join(m.kinds)}" for m in o.missed) or ""
        named = f"{len(o.named)}/{len(o.marks)}" if not o.healthy else "healthy"
        lines.append(
            f"| {o.name} | {named} | {times} | {missed} | {len(o.unmarked_warnings) or ''} |"
        )
    return "\n".join(lines)
