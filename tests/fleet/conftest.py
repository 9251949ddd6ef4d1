"""Start real server processes for the fleet tests and always stop them."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.helpers.processes import stop_process_group

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
VENV_BIN = Path(sys.executable).parent


class Server:
    """A subprocess whose stdout and stderr are read up to a line that says it is ready."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.output = ""
        self.process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,  # its workers die with it: we signal the whole group
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for_output(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Read output until `pattern` matches; fail with what was printed otherwise."""
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while True:
                match = re.search(pattern, self.output)
                if match:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None and not selector.select(0):
                    pytest.fail(
                        f"{self.argv} did not print {pattern!r} "
                        f"(exit {self.process.poll()}):\n{self.output[-3000:]}"
                    )
                if selector.select(min(remaining, 0.5)):
                    chunk = os.read(self.process.stdout.fileno(), 65536)
                    if not chunk and self.process.poll() is not None:
                        continue
                    self.output += chunk.decode(errors="replace")
        finally:
            selector.close()

    def stop(self) -> None:
        """terminate → wait → kill, for the process and every child in its group."""
        stop_process_group(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()


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
