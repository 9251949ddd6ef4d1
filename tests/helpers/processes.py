"""Test subprocesses: started in a group of their own, read until ready, and always stopped with
everything they started, whatever state they are in."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def stop_process_group(process: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """SIGTERM the process's group, wait up to `timeout`, then SIGKILL what is left and reap.

    The process must lead its own group (``start_new_session=True``), so that server workers
    and anything else it started go with it. Never raises: it runs in teardown.
    """
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        _wait(process, timeout)
    _signal_group(process, signal.SIGKILL)  # workers and stragglers, even if the leader exited
    if process.poll() is None:
        with contextlib.suppress(OSError):
            process.kill()
    _wait(process, timeout)


def _signal_group(process: subprocess.Popen[Any], sig: int) -> None:
    with contextlib.suppress(OSError):  # the group is gone, or was never ours
        os.killpg(process.pid, sig)


def _wait(process: subprocess.Popen[Any], timeout: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


class OutputProcess:
    """A subprocess in its own process group, its stdout and stderr read up to a line that says
    it is ready (for servers that print their ports); `stop()` ends the whole group."""

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
