"""Provides the Poller: fetches snapshots from a Source on a thread of its own.

Why a thread with its own event loop: decoding and validating a 10,000-task snapshot takes
hundreds of milliseconds of Python; on the UI's loop that would freeze the keyboard. Here the
source's connection, the decoding, the diagnosis and the event history all live off the UI
thread, and only finished `Observation`s cross over (through `emit`, which must be
thread-safe: the app passes `post_message`).

The poller reconnects by itself: when the target goes away it reports `Disconnected` and tries
`connect()` again with a growing delay, so a restarted worker is picked up without a keypress.
It stops instead when the error says trying again cannot help (`SourceError.retryable`: an agent
of another protocol version, a peer that is not an agent, a snapshot that fails validation),
and reports that once, as a `Disconnected` that is not retryable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Union

from inspector.client.source import Source, SourceError, is_retryable
from inspector.diagnose.findings import Finding
from inspector.model import Snapshot, TaskInfo
from inspector.protocol import Hello, ProtocolError, Result
from inspector.tui import formatting
from inspector.tui.history import Events, History
from inspector.tui.loop_thread import LoopThread
from inspector.tui.task_rows import TaskRows, build_task_rows

log = logging.getLogger(__name__)

BACKOFF: Final = (0.5, 1.0, 2.0, 4.0, 5.0)
"""Seconds between reconnect attempts: quick for a restarting worker, then every 5 s."""
CONNECT_TIMEOUT: Final = 10.0
SNAPSHOT_TIMEOUT: Final = 15.0
CANCEL_TIMEOUT: Final = 10.0
CLOSE_TIMEOUT: Final = 2.0
STALL_INTERVAL: Final = 0.25
"""Seconds between fetches while the loop is blocked. The stall banner counts the block up from
the last snapshot; polled at the normal pace, it would keep counting for up to a whole interval
after the block ended. The agent answers off the blocked loop, so this costs the app nothing."""

Clock = Callable[[], float]
Diagnose = Callable[[Snapshot, float], list[Finding]]


@dataclass(frozen=True, eq=False)
class Observation:
    """One snapshot as the screen shows it: with findings, history and an index by task id.

    Compared by identity (`eq=False`): each is new, and the app's reactive compares the old
    value with the new on every update; comparing two 10,000-task snapshots field by field
    would cost more than showing one.
    """

    snapshot: Snapshot
    findings: tuple[Finding, ...]
    events: Events
    received_at: float
    """Client clock when it arrived (the age shown in the header)."""
    fetch_seconds: float = 0.0
    task_rows: TaskRows = field(default_factory=TaskRows)
    """The Tasks view's rows, built here so the UI thread only sorts and diffs them."""

    def task(self, task_id: int) -> TaskInfo | None:
        return self.task_rows.tasks.get(task_id)


@dataclass(frozen=True)
class Connected:
    hello: Hello


@dataclass(frozen=True)
class Fetched:
    observation: Observation


@dataclass(frozen=True)
class Disconnected:
    reason: str
    retry_in: float | None
    """Seconds until the next attempt; None when there is none (a file, or `retryable` False)."""
    ever_connected: bool
    retryable: bool = True
    """False when trying again cannot help: the poller has stopped for good."""


PollEvent = Union[Connected, Fetched, Disconnected]  # noqa: UP007 - a runtime alias on 3.10
_FAILURES: Final = (SourceError, ProtocolError, OSError, asyncio.TimeoutError, EOFError)
"""What a source may raise; `is_retryable` says which of them are worth another attempt."""


def load_diagnose() -> Diagnose:
    """`inspector.diagnose.diagnose` when it is available, else a rule set that finds nothing."""
    try:
        from inspector.diagnose import diagnose
    except ImportError:
        return lambda snapshot, stuck_after: []

    def run(snapshot: Snapshot, stuck_after: float) -> list[Finding]:
        return list(diagnose(snapshot, stuck_after=stuck_after))

    return run


def observe(
    snapshot: Snapshot,
    *,
    history: History,
    diagnose: Diagnose,
    stuck_after: float,
    received_at: float,
    fetch_seconds: float = 0.0,
    previous: Observation | None = None,
) -> Observation:
    """Everything the screen needs from one snapshot, computed off the UI thread."""
    formatting.set_project_root(snapshot.process.cwd)
    try:
        findings = tuple(diagnose(snapshot, stuck_after))
    except Exception:  # a broken rule must not stop the live view
        log.exception("diagnosis failed")
        findings = ()
    return Observation(
        snapshot=snapshot,
        findings=findings,
        events=history.add(snapshot),
        received_at=received_at,
        fetch_seconds=fetch_seconds,
        task_rows=build_task_rows(
            snapshot,
            stuck_after,
            # Another process (a restarted or switched worker) numbers its tasks afresh.
            previous.task_rows
            if previous is not None and previous.snapshot.process.pid == snapshot.process.pid
            else None,
        ),
    )


class Poller(LoopThread):
    """Polls one source until stopped; every method but `run` is safe from any thread."""

    def __init__(
        self,
        source: Source,
        *,
        emit: Callable[[PollEvent], object],
        interval: float = 1.0,
        stuck_after: float = 5.0,
        clock: Clock = time.time,
        diagnose: Diagnose | None = None,
        backoff: tuple[float, ...] = BACKOFF,
    ) -> None:
        super().__init__()
        self.source = source
        self._emit = emit
        self.interval = interval
        self.stuck_after = stuck_after
        self._clock = clock
        self._diagnose = diagnose or load_diagnose()
        self._backoff = backoff
        self._history = History()
        self._last: Observation | None = None
        self._paused = False
        self._io_lock: asyncio.Lock | None = None

    # --- control (any thread) ----------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self.wake()

    def set_interval(self, seconds: float) -> None:
        self.interval = seconds
        self.wake()

    def cancel_task(self, task_id: int) -> concurrent.futures.Future[Result]:
        """Ask the target to cancel a task, on the poller's connection."""
        if not self._started.is_set() or self._loop is None or self._loop.is_closed():
            failed: concurrent.futures.Future[Result] = concurrent.futures.Future()
            failed.set_result(Result(ok=False, message="not connected"))
            return failed
        return asyncio.run_coroutine_threadsafe(self._cancel(task_id), self._loop)

    # --- the poll loop (its own thread) ------------------------------------------------------

    def _on_loop_started(self) -> None:
        self._io_lock = asyncio.Lock()

    async def _body(self) -> None:
        if not self._stopping:
            await self._connect_and_poll()

    async def _cleanup(self) -> None:
        await self._close_quietly()  # closing is best effort; the process is leaving anyway

    async def _connect_and_poll(self) -> None:
        ever_connected = False
        attempt = 0
        while not self._stopping:
            try:
                hello = await asyncio.wait_for(self.source.connect(), CONNECT_TIMEOUT)
            except _FAILURES as error:
                retry_in = self._backoff[min(attempt, len(self._backoff) - 1)]
                if not self.source.live or not is_retryable(error):
                    self._emit(
                        Disconnected(_reason(error), None, ever_connected, is_retryable(error))
                    )
                    return
                self._emit(Disconnected(_reason(error), retry_in, ever_connected))
                attempt += 1
                await self._sleep(retry_in)
                continue
            attempt = 0
            ever_connected = True
            self._emit(Connected(hello))
            failure = await self._poll()
            if failure is None:
                return
            await self._close_quietly()
            if not self.source.live:
                return
            if not is_retryable(failure):
                self._emit(Disconnected(_reason(failure), None, True, retryable=False))
                return
            self._emit(Disconnected(_reason(failure), self._backoff[0], True))
            await self._sleep(self._backoff[0])

    async def _poll(self) -> BaseException | None:
        """Fetch until the source fails (returns the error) or the poller stops (None)."""
        assert self._io_lock is not None
        while not self._stopping:
            if self._paused:
                await self._sleep(None)
                continue
            started = time.perf_counter()
            try:
                async with self._io_lock:
                    snapshot = await asyncio.wait_for(self.source.snapshot(), SNAPSHOT_TIMEOUT)
            except _FAILURES as error:
                return error
            fetch_seconds = time.perf_counter() - started
            observation = observe(
                snapshot,
                history=self._history,
                diagnose=self._diagnose,
                stuck_after=self.stuck_after,
                received_at=self._clock(),
                fetch_seconds=fetch_seconds,
                previous=self._last,
            )
            self._last = observation
            self._emit(Fetched(observation))
            if not self.source.live:
                await self._sleep(None)  # a file has nothing more to say
                continue
            interval = self.interval
            if snapshot.ongoing_stall is not None:
                interval = min(interval, STALL_INTERVAL)
            await self._sleep(max(0.0, interval - (time.perf_counter() - started)))
        return None

    async def _cancel(self, task_id: int) -> Result:
        assert self._io_lock is not None
        try:
            async with self._io_lock:
                return await asyncio.wait_for(self.source.cancel(task_id), CANCEL_TIMEOUT)
        except _FAILURES as error:
            return Result(ok=False, message=_reason(error))

    async def _close_quietly(self) -> None:
        try:
            await asyncio.wait_for(self.source.close(), CLOSE_TIMEOUT)
        except BaseException:
            pass


def _reason(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "the target did not answer in time"
    text = str(error).strip()
    return text or type(error).__name__
