"""Run scenarios by hand and see what doctor said: ``python -m tests.scenarios [NAME ...] [-v]``.

NAME is a scenario's name (``buggy/inventory_reservations``) or a part of it; none runs all.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from tests.scenarios import runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.scenarios", description=__doc__)
    parser.add_argument("names", nargs="*", help="scenario names or parts of them")
    parser.add_argument("-v", "--verbose", action="store_true", help="explain every scenario")
    parser.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("JOBS", "2")))
    args = parser.parse_args(argv)
    items = [
        item
        for item in runner.scenario_files()
        if not args.names or any(name in item.name for name in args.names)
    ]
    if not items:
        print("no scenario matches", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as workdir:
        outcomes = runner.run_all(items, Path(workdir), args.jobs)
    failed = 0
    for outcome in outcomes.values():
        bad = outcome.error or (outcome.warnings if outcome.healthy else outcome.missed)
        failed += bool(bad) and not outcome.skipped
        status = "skip" if outcome.skipped else ("FAIL" if bad else "ok")
        times = ", ".join(f"{line}: {seconds:.1f} s" for line, seconds in outcome.named.items())
        print(
            f"{status:4} {outcome.name}  named {len(outcome.named)}/{len(outcome.marks)}"
            f"  warnings {len(outcome.warnings)}  {times}"
        )
        if (bad or args.verbose) and not outcome.skipped:
            print(outcome.error or outcome.explain())
    named, total, alarmed, healthy = runner.score(outcomes.values())
    print(
        f"\nmarked faults named: {named}/{total}; healthy apps with a warning: {alarmed}/{healthy}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
