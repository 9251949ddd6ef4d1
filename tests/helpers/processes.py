"""Stopping a test's subprocess and everything it started, whatever state it is in."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


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
