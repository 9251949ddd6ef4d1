"""The live UI's cost to apply a 10,000-task update, measured by `benchmarks/bench_tui.py`."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from benchmarks.servers import ROOT

BENCH_TUI = ROOT / "benchmarks" / "bench_tui.py"


@dataclass(frozen=True)
class TuiResult:
    output: str = ""
    unavailable: str | None = None


def run_tui_bench(quick: bool, timeout: float = 600) -> TuiResult:
    if not BENCH_TUI.exists():
        return TuiResult(unavailable="benchmarks/bench_tui.py is not there yet")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, str(BENCH_TUI)] + (["--quick"] if quick else [])
    try:
        out = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return TuiResult(unavailable=f"bench_tui.py did not finish within {timeout:g} s")
    if out.returncode != 0 and quick and "unrecognized arguments" in out.stderr:
        return run_tui_bench(quick=False, timeout=timeout)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return TuiResult(output=out.stdout, unavailable=f"bench_tui.py failed: {last}")
    return TuiResult(output=out.stdout.strip())
