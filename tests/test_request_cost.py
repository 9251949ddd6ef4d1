"""The served side of the per-request cost benchmark answers every endpoint in every mode.

(valgrind's counting itself is exercised by `python -m benchmarks --only cost`.)
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.request_cost import ENDPOINTS, MODES, ROOT

pytestmark = pytest.mark.e2e  # subprocesses


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_each_mode_serves_each_endpoint(mode: str, endpoint: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.request_cost", "serve", mode, endpoint, "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]


def test_unknown_arguments_print_the_usage() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.request_cost", "serve", "nonsense", "hello", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "valgrind" in completed.stderr
