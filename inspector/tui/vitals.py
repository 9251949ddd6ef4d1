"""Provides the target's vitals (CPU, memory, threads, files, connections), read with psutil.

Read on the client side, only when the target runs on this machine: the pid in the handshake is
then a local process. Reading takes a few milliseconds (connections scan /proc/net), so the app
calls `read()` on a worker thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import Final

import psutil

from inspector.addresses import is_loopback
from inspector.model import ProcessInfo

HISTORY_POINTS: Final = 60
"""Samples kept for the CPU and RSS sparklines (a minute at one sample a second)."""


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


class VitalsHistory:
    """The shown process's recent vitals, and why there are none when there are none.

    `sample` runs on a worker thread (psutil takes milliseconds); `record` and `forget` on the
    UI thread. A restarted or switched-to process starts new curves (`forget`).
    """

    def __init__(self, factory: VitalsFactory | None, *, live: bool) -> None:
        self._factory = factory if live else None
        self._reader: VitalsReader | None = None
        self.cpu: deque[float] = deque(maxlen=HISTORY_POINTS)
        self.rss: deque[float] = deque(maxlen=HISTORY_POINTS)
        self.reason = "waiting"
        """Shown instead of the vitals while there are none."""
        if not live:
            self.reason = "not read from a saved snapshot"
        elif factory is None:
            self.reason = "off"

    @property
    def enabled(self) -> bool:
        """False for a saved snapshot or when the app was built without vitals."""
        return self._factory is not None

    def sample(self, address: str, process: ProcessInfo) -> Vitals | None:
        """The vitals of `process` now; None (and a `reason`) when they cannot be read."""
        if self._factory is None:
            return None
        reader = self._reader
        if reader is None or reader.pid != process.pid:
            reader = self._reader = self._factory(address, process.pid, process.started_at)
            if reader is None:
                self.reason = "the target is not on this machine"
                return None
        vitals = reader.read()
        if vitals is None:
            self._reader = None
            self.reason = "the process is gone"
        return vitals

    def record(self, vitals: Vitals | None) -> None:
        if vitals is None:
            return
        if vitals.cpu_percent is not None:
            self.cpu.append(vitals.cpu_percent)
        if vitals.rss is not None:
            self.rss.append(float(vitals.rss))

    def forget(self, *, reader: bool = False) -> None:
        """Start the curves over (a restarted process); `reader`: for another process too."""
        self.cpu.clear()
        self.rss.clear()
        if reader:
            self._reader = None


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
