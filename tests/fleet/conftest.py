"""Start real server processes for the fleet tests and always stop them.

`Server` is `tests.helpers.processes.OutputProcess`: a process read up to the line that says it
is ready (the fleet apps print their ports)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import OutputProcess as Server

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
VENV_BIN = Path(sys.executable).parent


def wait_until(condition, timeout: float = 15.0, interval: float = 0.1, message: str = ""):  # type: ignore[no-untyped-def]
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(message or f"condition not met within {timeout} s (last value {last!r})")


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Start servers with `servers.append(Server(...))`; all are stopped at teardown."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private registration directory, for this process and the servers it starts."""
    directory = tmp_path / "runtime"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("INSPECTOR_RUNTIME_DIR", str(directory))
    return directory
