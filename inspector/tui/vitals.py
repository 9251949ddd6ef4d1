"""Provides the target's vitals (CPU, memory, threads, files, connections), read with psutil.

Read on the client side, only when the target runs on this machine: the pid in the handshake is
then a local process. Reading takes a few milliseconds (connections scan /proc/net), so the app
calls `read()` on a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from dataclasses import dataclass

import psutil

from inspector.addresses import is_loopback


@dataclass(frozen=True)
class Vitals:
    cpu_percent: float | None = None
    rss: int | None = None
    threads: int | None = None
    open_files: int | None = None
    connections: int | None = None


class VitalsReader:
    """Samples one local process. The first CPU reading primes psutil's counter (reads 0)."""

    def __init__(self, pid: int, started_at: float | None = None) -> None:
        self.pid = pid
        self._process = psutil.Process(pid)
        if started_at is not None and abs(self._process.create_time() - started_at) > 5:
            raise psutil.NoSuchProcess(pid, msg="another process has this pid")
        self._process.cpu_percent(None)

    def read(self) -> Vitals | None:
        """The vitals now, or None when the process is gone."""
        process = self._process
        try:
            with process.oneshot():
                cpu = process.cpu_percent(None)
                rss = process.memory_info().rss
                threads = process.num_threads()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        except psutil.AccessDenied:
            return Vitals()
        return Vitals(
            cpu_percent=cpu,
            rss=rss,
            threads=threads,
            open_files=_count(process.open_files),
            connections=_count(lambda: process.net_connections(kind="inet")),
        )


VitalsFactory = Callable[[str, int, "float | None"], "VitalsReader | None"]
"""(source address, pid, process start time) → a reader, or None when vitals cannot be read."""


def local_vitals(address: str, pid: int, started_at: float | None) -> VitalsReader | None:
    """A reader when `address` is on this machine and the pid is the target, else None."""
    if not is_local_address(address):
        return None
    try:
        return VitalsReader(pid, started_at)
    except (psutil.Error, ValueError):
        return None


def is_local_address(address: str) -> bool:
    """True for loopback addresses and for anything that is not host:port (a unix path)."""
    host, sep, _port = address.rpartition(":")
    if not sep:
        return True
    host = host.strip("[]")
    return host == "" or is_loopback(host)


def _count(read: Callable[[], Sized]) -> int | None:
    try:
        return len(read())
    except (psutil.Error, OSError):
        return None
