"""Facts about this server process for the hello and the registration file, best effort.

Each answers None where the platform cannot tell, so that describing the process never stops
the agent from starting.
"""

from __future__ import annotations

import os
import sys


def process_started_at() -> float | None:
    """When this process started (wall clock), from /proc; None where that is unavailable."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            after_name = handle.read().rsplit(")", 1)[1].split()
        start_ticks = int(after_name[19])  # field 22 of stat(5)
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def package_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def worker_index(slot: int) -> int | None:
    """The slot doubles as the worker index in a multiprocessing child (uvicorn --workers)."""
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None:
        return None
    try:
        return slot if multiprocessing.parent_process() is not None else None
    except Exception:
        return None


def current_dir() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None
