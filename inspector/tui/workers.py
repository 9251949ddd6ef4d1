"""Provides the worker group of a `--workers N` server and the `FleetPoller` that watches it.

Why a thread of its own, like the main `Poller`: discovery scans /proc and each worker answers
over its own telnet connection; neither may ever run on the UI's loop. Every `interval` seconds
the fleet poller asks `discover` for the parent's live workers (dropping the dead, adding the
new: a crash, a SIGHUP restart, SIGTTIN/SIGTTOU), then takes one cheap snapshot (no stacks) of
each, and emits one `WorkerStatus` list that the app pushes down to the header and the Workers
view.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from inspector.client.source import Source
from inspector.diagnose.findings import SEVERITY_ORDER
from inspector.model import Snapshot
from inspector.tui.loop_thread import LoopThread
from inspector.tui.poller import Diagnose, load_diagnose
from inspector.tui.vitals import VitalsFactory

log = logging.getLogger(__name__)

FLEET_INTERVAL: Final = 2.0
"""Seconds between two rounds of discovery and status snapshots."""
STATUS_TIMEOUT: Final = 5.0
DISCOVER_TIMEOUT: Final = 10.0
CLOSE_TIMEOUT: Final = 2.0


@dataclass(frozen=True)
class Worker:
    """One worker process with an agent: what the switcher needs to open it."""

    pid: int
    address: str
    index: int | None = None
    """Its index among `--workers N`, when the agent reported it."""
    started_at: float | None = None


@dataclass(frozen=True)
class WorkerStatus:
    """One row of the Workers view: the worker and what its last cheap snapshot said."""

    worker: Worker
    tasks: int | None = None
    lag: float | None = None
    max_lag: float | None = None
    stalled: bool = False
    in_flight: int | None = None
    findings: int | None = None
    worst: str | None = None
    """The worst finding's severity, None when there is none."""
    cpu_percent: float | None = None
    rss: int | None = None
    error: str | None = None
    """Why the worker did not answer this round; None when it did."""


class TargetLike(Protocol):
    """What `inspector.client.discovery.Target` offers that the group reads."""

    pid: int
    worker: int | None

    @property
    def agent_address(self) -> str | None: ...


Discover = Callable[[], Sequence[Any]]
SourceFactory = Callable[[str], Source]
Emit = Callable[[list[WorkerStatus]], object]


def discover_workers(parent_pid: int) -> Discover:
    """A `Discover` for `parent_pid`'s serving processes, through `discovery.workers_of`."""

    def run() -> list[Any]:
        from inspector.client.discovery import workers_of

        return [t for t in workers_of(parent_pid) if t.pid != parent_pid]

    return run


def agent_source_for(address: str) -> Source:
    """A live source for a worker's agent address."""
    from inspector.client.target import open_source

    return open_source(address, None)


def to_workers(targets: Sequence[Any]) -> list[Worker]:
    """Targets with an agent, by worker index then pid."""
    workers = [
        Worker(
            pid=int(t.pid),
            address=str(t.agent_address),
            index=getattr(t, "worker", None),
            started_at=(time.time() - t.uptime) if getattr(t, "uptime", None) else None,
        )
        for t in targets
        if getattr(t, "agent_address", None)
    ]
    return sorted(workers, key=lambda w: (w.index is None, w.index or 0, w.pid))


def status_of(
    worker: Worker, snapshot: Snapshot, diagnose: Diagnose, stuck_after: float
) -> WorkerStatus:
    """The summary the Workers view shows for one snapshot."""
    loop = snapshot.loop
    try:
        findings = list(diagnose(snapshot, stuck_after))
    except Exception:  # a broken rule must not hide the worker
        log.exception("diagnosis failed")
        findings = []
    worst = min(
        (f.severity for f in findings), key=lambda s: SEVERITY_ORDER.get(s, 9), default=None
    )
    lags = [lag for _at, lag in loop.lag_series] if loop else []
    return WorkerStatus(
        worker=worker,
        tasks=len(snapshot.tasks),
        lag=loop.lag if loop else None,
        max_lag=max([*lags, loop.lag]) if loop else None,
        stalled=bool(loop and loop.stalled_for is not None),
        in_flight=len(snapshot.requests),
        findings=len(findings),
        worst=worst,
    )


class FleetPoller(LoopThread):
    """Watches every worker of one parent until stopped; `run` blocks (call it on a thread)."""

    def __init__(
        self,
        discover: Discover,
        *,
        emit: Emit,
        source_factory: SourceFactory = agent_source_for,
        interval: float = FLEET_INTERVAL,
        stuck_after: float = 5.0,
        diagnose: Diagnose | None = None,
        vitals: VitalsFactory | None = None,
    ) -> None:
        super().__init__()
        self._discover = discover
        self._emit = emit
        self._source_factory = source_factory
        self.interval = interval
        self.stuck_after = stuck_after
        self._diagnose = diagnose or load_diagnose()
        self._vitals = vitals
        self._sources: dict[int, Source] = {}
        self._readers: dict[int, Any] = {}
        self._connected: set[int] = set()

    async def _body(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            statuses = await self.round()
            if statuses is not None:
                self._emit(statuses)
            await self._sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _cleanup(self) -> None:
        for pid in list(self._sources):
            await self._drop(pid)

    async def round(self) -> list[WorkerStatus] | None:
        """One discovery and one snapshot per worker; None when discovery itself failed."""
        try:
            targets = await asyncio.wait_for(asyncio.to_thread(self._discover), DISCOVER_TIMEOUT)
        except Exception as error:  # psutil races, a vanished runtime dir: try next round
            log.debug("worker discovery failed: %s", error)
            return None
        workers = to_workers(targets)
        alive = {w.pid for w in workers}
        for pid in [pid for pid in self._sources if pid not in alive]:
            await self._drop(pid)
        return list(await asyncio.gather(*(self._status(w) for w in workers)))

    async def _status(self, worker: Worker) -> WorkerStatus:
        source = self._sources.get(worker.pid)
        if source is None:
            source = self._sources[worker.pid] = self._source_factory(worker.address)
        cpu, rss = await asyncio.to_thread(self._read_vitals, worker)
        try:
            if worker.pid not in self._connected:
                await asyncio.wait_for(source.connect(), STATUS_TIMEOUT)
                self._connected.add(worker.pid)
            snapshot = await asyncio.wait_for(source.snapshot(with_stacks=False), STATUS_TIMEOUT)
        except Exception as error:  # one silent worker must not hide the others
            self._connected.discard(worker.pid)
            await _close_quietly(source)
            text = str(error).strip() or type(error).__name__
            if isinstance(error, asyncio.TimeoutError):
                text = "did not answer in time"
            return WorkerStatus(worker=worker, error=text, cpu_percent=cpu, rss=rss)
        status = status_of(worker, snapshot, self._diagnose, self.stuck_after)
        return _with_vitals(status, cpu, rss)

    def _read_vitals(self, worker: Worker) -> tuple[float | None, int | None]:
        if self._vitals is None:
            return None, None
        reader = self._readers.get(worker.pid)
        if reader is None:
            reader = self._vitals(worker.address, worker.pid, worker.started_at)
            if reader is None:
                return None, None
            self._readers[worker.pid] = reader
        vitals = reader.read()
        if vitals is None:
            return None, None
        return vitals.cpu_percent, vitals.rss

    async def _drop(self, pid: int) -> None:
        source = self._sources.pop(pid, None)
        self._readers.pop(pid, None)
        self._connected.discard(pid)
        if source is not None:
            await _close_quietly(source)


def _with_vitals(status: WorkerStatus, cpu: float | None, rss: int | None) -> WorkerStatus:
    return replace(status, cpu_percent=cpu, rss=rss)


async def _close_quietly(source: Source) -> None:
    try:
        await asyncio.wait_for(source.close(), CLOSE_TIMEOUT)
    except BaseException:
        pass


@dataclass(frozen=True)
class WorkerGroup:
    """The workers of one parent, for the switcher: how to find them and how to reach one."""

    parent_pid: int
    discover: Discover
    initial: tuple[Worker, ...] = ()
    """The workers found before the screen opened, the first one shown."""
    source_factory: SourceFactory = agent_source_for
    interval: float = FLEET_INTERVAL


def find_worker_group(pid: int) -> WorkerGroup | None:
    """The group when `pid` is a parent that serves nothing and has workers with an agent."""
    from inspector.client.discovery import discover, workers_of

    targets = discover(sample_seconds=0)
    parent = next((t for t in targets if t.pid == pid), None)
    if parent is None or parent.serves_requests:
        return None
    workers = to_workers([t for t in workers_of(pid, targets) if t.pid != pid])
    if not workers:
        return None
    return WorkerGroup(parent_pid=pid, discover=discover_workers(pid), initial=tuple(workers))
