"""Loop-lag heartbeat and stall watchdog: what blocked the event loop, where, and for whom.

A heartbeat callback on the app loop re-arms itself every `heartbeat_interval` and notes when it
ran and how late it was. A daemon thread sleeps until the heartbeat *would* be overdue by more
than `stall_threshold` (about once per threshold window while the loop is healthy); if by then the
heartbeat has not run, the loop is stalled *right now*, so the thread samples the loop thread's
stack (`sys._current_frames()`) while the culprit is still on it, and reads which
task is running (`asyncio.current_task(loop)` works from another thread). When the heartbeat runs
again the stall is over and its duration is the heartbeat's lateness.

Why the thread sleeps that long: every wake of a Python thread costs the busy loop thread far more
than the wake itself. A woken thread must take the GIL; a loop under load releases and retakes
the GIL at every `epoll`/`select` call, and each release wakes the waiting thread only for it to
lose the race again, so the waiter can spin through thousands of futile wake-ups per second (and
wait tens of milliseconds) before it runs. Waking 50 times a second cost a hello-world endpoint
~15 % of its throughput; waking once per threshold window costs a fraction of that. The same
thread also runs the agent's other periodic jobs (`add_periodic`), so the agent keeps one
periodic thread, not several.

Nothing here patches `Handle._run` (uvloop has no such method), so it works on every loop. The
clock, the frame source and the task source are injected so tests drive it without sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from inspector.agent.busy import BusySampler, thread_clock
from inspector.agent.frames import frame_at, is_own_code
from inspector.agent.own_loop import waits_for_own_loop
from inspector.agent.probe import AgentContext, CollectOptions
from inspector.model import Frame, LoopStats, StackSample, Stall

TICK: Final = 0.005
"""Shortest sleep of the watchdog thread, seconds: a floor against spinning, never the rhythm."""
WAKE_MARGIN: Final = 0.002
"""The thread wakes this long after the heartbeat would become a stall, so one look suffices."""
HANDOFF_WAIT: Final = 0.002
"""Longest the heartbeat waits for the watchdog thread to take its turn (typically ~0.05 ms)."""
PROFILE_INTERVAL: Final = 0.01
"""Seconds between two samples of a stalled loop thread (the first is taken as soon as the
stall is seen). Samples at the same stack add to one entry, so a stall carries a profile of
where its time went; each costs the stalled thread at most one GIL hand-over."""
MAX_SAMPLES: Final = 24
"""Distinct stacks kept per stall; a sample at a stack past these adds to none (a profile of the
places a stall spent its time in, not a trace)."""
OWN_LOOP_CHECKS: Final = 20
"""Samples of one stall that ask whether the loop waits for itself (about its first 0.2 s): a
wait for the loop is there from the start, and asking reads the frames of other threads."""
MAX_STACK_DEPTH: Final = 64
"""Innermost frames kept per sample."""
DETAILED_STALLS: Final = 20
"""The newest stalls keep all their samples; older ones keep their first sample, cut to its
innermost `SUMMARY_DEPTH` frames, so a long history stays a small part of every snapshot."""
SUMMARY_DEPTH: Final = 16
LAG_POINT_INTERVAL: Final = 0.5
LAG_SERIES_LENGTH: Final = 300
"""Points in the lag series: 300 × 0.5 s = the last 2.5 minutes."""
MAX_LATE_BEATS: Final = 256

FrameSource = Callable[[], Mapping[int, types.FrameType]]
TaskSource = Callable[[asyncio.AbstractEventLoop], "asyncio.Task[Any] | None"]


class StallListener(Protocol):
    """Told of each stall as it is seen to begin and as it ends (logs, span events).

    Called on the watchdog thread with its lock held: only queue what is needed and return, and
    never call back into the watchdog.
    """

    def stall_began(self, stall: Stall, task: asyncio.Task[Any] | None) -> None:
        """`stall` is ongoing; `task` is the task running on the loop (None in a callback)."""

    def stall_ended(self, stall: Stall) -> None:
        """`stall` is finished (also for stalls too short to be seen while they lasted)."""


def loop_implementation(loop: asyncio.AbstractEventLoop) -> str:
    """ "uvloop", "asyncio", or the loop class's dotted name for anything else."""
    cls = type(loop)
    module = cls.__module__ or ""
    if module.split(".")[0] == "uvloop":
        return "uvloop"
    if module.split(".")[0] == "asyncio":
        return "asyncio"
    return f"{module}.{cls.__qualname__}"


def _uvicorn_request_label(task: asyncio.Task[Any]) -> str | None:
    """ "GET /path" for a task running uvicorn's `RequestResponseCycle.run_asgi`, else None.

    A fallback for when no probe links the task to a request. Read only while the loop thread
    is stalled outside Python code or waiting for the GIL, so the frame is not changing.
    """
    coro = task.get_coro()
    frame = getattr(coro, "cr_frame", None)
    if frame is None or frame.f_code.co_name != "run_asgi":
        return None
    cycle = frame.f_locals.get("self")
    scope = getattr(cycle, "scope", None)
    if not isinstance(scope, dict):
        return None
    method = scope.get("method")
    path = scope.get("path")
    if not isinstance(path, str):
        return None
    return f"{method} {path}" if isinstance(method, str) else path


def _summarised(stall: Stall) -> Stall:
    """An old stall keeps the stack it spent most of its time at, cut to its innermost frames."""
    if len(stall.samples) <= 1 and all(len(s.frames) <= SUMMARY_DEPTH for s in stall.samples):
        return stall
    heaviest = max(stall.samples, key=lambda sample: sample.count)
    return dataclasses.replace(
        stall, samples=(dataclasses.replace(heaviest, frames=heaviest.frames[-SUMMARY_DEPTH:]),)
    )


def still_stack(frame: types.FrameType | None, limit: int) -> tuple[Frame, ...]:
    """The innermost `limit` frames of the stack ending at `frame`, read in one go first.

    Describing a frame may read its source line from disk, which lets the sampled thread run
    on: reading every (code, line) before describing any keeps a sample one moment of the
    thread (never an outer frame already past the call its callee is still in)."""
    points: list[tuple[types.CodeType, int | None]] = []
    current = frame
    while current is not None and len(points) < limit:
        code = current.f_code
        if not is_own_code(code):
            points.append((code, current.f_lineno))
        current = current.f_back
    points.reverse()
    return tuple(frame_at(code, line) for code, line in points)


@dataclass
class _PeriodicJob:
    run: Callable[[], None]
    every: float
    due: float


@dataclass
class _OngoingStall:
    id: int
    due: float
    """Monotonic time at which the late heartbeat should have run."""
    start: float
    """Best estimate of when the loop stopped running: between the last heartbeat and `due`,
    so halfway (the error is then at most half a heartbeat interval)."""
    started_at: float
    """`start` on the wall clock."""
    samples: list[StackSample] = field(default_factory=list)
    sampled_at: float = float("-inf")
    """Monotonic time of the latest sample."""
    places: dict[tuple[Frame, ...], int] = field(default_factory=dict)
    """Index in `samples` of each stack seen."""
    task_id: int | None = None
    task_name: str | None = None
    request_id: int | None = None
    request_label: str | None = None
    background_label: str | None = None
    waits_for_own_loop: bool = False
    own_loop_checks: int = 0
    """Samples that asked whether the loop waits for itself (the first few decide)."""

    def to_stall(self, duration: float, ongoing: bool) -> Stall:
        return Stall(
            id=self.id,
            started_at=self.started_at,
            duration=duration,
            ongoing=ongoing,
            samples=tuple(self.samples),
            task_id=self.task_id,
            task_name=self.task_name,
            request_id=self.request_id,
            request_label=self.request_label,
            background_label=self.background_label,
            waits_for_own_loop=self.waits_for_own_loop,
        )


class Watchdog:
    """The probe named "watchdog": gives `loop` (LoopStats) and `stalls` in every snapshot."""

    name = "watchdog"

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        frame_source: FrameSource = sys._current_frames,
        task_source: TaskSource = asyncio.current_task,
        tick: float = TICK,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._frame_source = frame_source
        self._task_source = task_source
        self._tick = tick
        self._context: AgentContext | None = None
        self._interval = 0.02
        self._threshold = 0.1
        self._implementation = "asyncio"

        # Written by the heartbeat on the loop thread: single assignments and deque appends,
        # both atomic, so the watchdog thread reads them without a lock. (The watchdog also
        # resets `_window_max_lag`; losing one such update only blurs one lag point.)
        self._beat: tuple[float, float] = (0.0, 0.0)
        """(monotonic time the heartbeat last ran, how late it was)."""
        self._due = 0.0
        self._late_beats: deque[tuple[float, float]] = deque(maxlen=MAX_LATE_BEATS)
        self._window_max_lag = 0.0
        self._handle: asyncio.TimerHandle | None = None

        # Owned by the watchdog thread; read under the lock by `collect`.
        self._lock = threading.Lock()
        self._history: deque[Stall] = deque(maxlen=200)
        self._current: _OngoingStall | None = None
        self._consumed_until = 0.0
        self._series: deque[tuple[float, float]] = deque(maxlen=LAG_SERIES_LENGTH)
        self._last_point = 0.0
        self._ids = itertools.count(1)
        self._total_stalls = 0
        self._total_stalled = 0.0

        self._stop = threading.Event()
        # The GIL hand-off (see `_hand_over`): both locks start taken.
        self._kick = threading.Lock()
        self._kick.acquire()
        self._ack = threading.Lock()
        self._ack.acquire()
        self._kick_every = 0.05
        self._last_kick = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._periodic: list[_PeriodicJob] = []
        self.listeners: list[StallListener] = []
        self._busy = BusySampler(None, clock)

    # --- lifecycle ---------------------------------------------------------------------------

    def bind(self, context: AgentContext) -> None:
        """Take the configuration and the loop, without starting anything (tests stop here)."""
        self._context = context
        self._interval = max(0.001, context.config.heartbeat_interval)
        self._threshold = context.config.stall_threshold
        self._implementation = loop_implementation(context.loop)
        self._history = deque(maxlen=max(1, context.config.max_history))
        now = self._clock()
        self._beat = (now, 0.0)
        self._due = now + self._interval
        self._last_point = now
        self._kick_every = max(self._interval, self._threshold / 2)
        self._last_kick = now
        self._busy = BusySampler(
            thread_clock() if threading.get_ident() == context.loop_thread_id else None,
            self._clock,
            context.loop,
            lambda frame: still_stack(frame, MAX_STACK_DEPTH),
        )

    def install(self, context: AgentContext) -> None:
        """Arm the heartbeat (we are on the loop thread) and start the watchdog thread."""
        self.bind(context)
        self._handle = context.loop.call_later(self._interval, self._on_heartbeat)
        self._thread = threading.Thread(target=self._run, name="inspector-watchdog", daemon=True)
        self._thread.start()

    def add_periodic(self, job: Callable[[], None], every: float) -> bool:
        """Run `job` on the watchdog thread about every `every` seconds (at its next wake-up).

        False when the thread is not running (not installed, or closed): the caller then keeps
        its own timer. A job that raises is reported and keeps its schedule.
        """
        thread = self._thread
        if self._closed or thread is None or not thread.is_alive():
            return False
        self._periodic.append(_PeriodicJob(job, max(every, self._tick), self._clock() + every))
        return True  # the thread picks the job up at its next wake, within a threshold window

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._busy.close()
        self._stop.set()
        self._release(self._kick)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        handle = self._handle
        context = self._context
        if handle is not None and context is not None:
            try:
                if context.loop.is_closed():
                    return
                if threading.get_ident() == context.loop_thread_id:
                    handle.cancel()
                else:
                    context.loop.call_soon_threadsafe(handle.cancel)
            except RuntimeError:  # the loop closed meanwhile
                pass

    # --- the heartbeat (app loop thread) -----------------------------------------------------

    def _on_heartbeat(self) -> None:
        if self._closed or self._context is None:
            return
        try:
            self.record_beat()
            self._handle = self._context.loop.call_later(self._interval, self._on_heartbeat)
            beat_at = self._beat[0]
            if beat_at - self._last_kick >= self._kick_every and self._thread is not None:
                self._last_kick = beat_at
                self._hand_over()
        except Exception as error:  # never raise into the app's loop
            self._context.record_error(f"watchdog heartbeat: {error!r}")

    def _hand_over(self) -> None:
        """Wake the watchdog thread and give it the GIL now, for the few microseconds it needs.

        A thread that wakes on its own timer while this loop is busy starves: the loop drops
        and retakes the GIL at every `epoll` call, each drop wakes the waiting thread only for
        it to lose the race again, and that futile ping-pong (thousands of wake-ups a second,
        for tens to hundreds of milliseconds) is what slows the app. Here the loop wakes the
        thread and then blocks on `_ack` (releasing the GIL) until the thread has looked and
        acknowledged, a clean hand-off each way. The thread's own timer fires only when these
        kicks stop, that is when the loop is stalled, and then the GIL is free or is handed
        over by the interpreter's switch interval.
        """
        ack = self._ack
        ack.acquire(False)  # drop a late acknowledgement of an earlier kick
        self._release(self._kick)
        ack.acquire(timeout=HANDOFF_WAIT)

    @staticmethod
    def _release(lock: threading.Lock) -> None:
        try:
            if lock.locked():
                lock.release()
        except RuntimeError:  # released meanwhile by the other side
            pass

    def record_beat(self) -> None:
        """Note that the loop ran the heartbeat now, and how late it was."""
        now = self._clock()
        lag = max(0.0, now - self._due)
        self._due = now + self._interval
        if lag > self._window_max_lag:
            self._window_max_lag = lag
        if lag > self._threshold:
            self._late_beats.append((now, lag))
        self._beat = (now, lag)

    # --- the watchdog (its own thread) -------------------------------------------------------

    def _run(self) -> None:
        kick, stop = self._kick, self._stop
        while not stop.is_set():
            kick.acquire(timeout=self.next_wait())  # kicked by the heartbeat, or it is late
            if stop.is_set():
                break
            try:
                self.check()
            except Exception as error:
                if self._context is not None:
                    self._context.record_error(f"watchdog: {error!r}")
            self._run_periodic()
            self._release(self._ack)  # the heartbeat may go on

    def next_wait(self) -> float:
        """Seconds until something can need the watchdog: the heartbeat crossing the stall
        threshold, the next sample of a stall in progress, or a periodic job."""
        now = self._clock()
        beat_at, _ = self._beat
        wake = beat_at + self._interval + self._threshold + WAKE_MARGIN
        current = self._current
        if current is None and wake <= now:
            # Overdue yet no stall: the loop is not running (yet, or any more).
            wake = now + self._threshold
        elif current is not None:
            # Stalled: no heartbeat to wait for; sample again in PROFILE_INTERVAL.
            wake = min(now + self._threshold, current.sampled_at + PROFILE_INTERVAL)
        for job in self._periodic:
            wake = min(wake, job.due)
        return max(self._tick, wake - now)

    def _run_periodic(self) -> None:
        now = self._clock()
        for job in self._periodic:
            if now < job.due:
                continue
            job.due = now + job.every
            try:
                job.run()
            except Exception as error:
                if self._context is not None:
                    self._context.record_error(f"watchdog: periodic job failed: {error!r}")

    def check(self) -> None:
        """One look at the heartbeat: begin, sample or end a stall; add a lag point."""
        context = self._context
        if context is None:
            return
        now = self._clock()
        beat_at, _ = self._beat
        with self._lock:
            self._finish_stalls(beat_at)
            lateness = now - (beat_at + self._interval)
            current = self._current
            if current is None:
                if lateness > self._threshold and self._loop_running(context):
                    self._begin_stall(context, now, beat_at + self._interval)
            elif now - current.sampled_at >= 0.9 * PROFILE_INTERVAL and self._loop_running(context):
                self._sample(context, current, now)
            elif not self._loop_running(context):
                # The loop stopped (the server is exiting): this is not a stall any more.
                self._current = None
            self._busy.look(max(self._beat[1], self._window_max_lag), self._current is not None)
            self._add_lag_point(now, lateness)

    def _finish_stalls(self, beat_at: float) -> None:
        while self._late_beats:
            late_at, lag = self._late_beats.popleft()
            if late_at <= self._consumed_until:
                continue
            self._consumed_until = late_at
            current = self._current
            if current is not None and late_at >= current.due:
                self._end(current, late_at)
            elif current is None:
                # Shorter than a watchdog tick: seen only through the late heartbeat.
                self._end(self._new_stall(late_at - lag), late_at)
        current = self._current
        if current is not None and beat_at > current.due and beat_at > self._consumed_until:
            self._consumed_until = beat_at
            self._end(current, beat_at)

    def _new_stall(self, due: float) -> _OngoingStall:
        start = due - self._interval / 2
        return _OngoingStall(
            id=next(self._ids), due=due, start=start, started_at=self._wall_at(start)
        )

    def _end(self, stall: _OngoingStall, resumed_at: float) -> None:
        duration = max(0.0, resumed_at - stall.start)
        finished = stall.to_stall(duration, ongoing=False)
        self._history.append(finished)
        if len(self._history) > DETAILED_STALLS:
            index = len(self._history) - DETAILED_STALLS - 1
            self._history[index] = _summarised(self._history[index])
        self._total_stalls += 1
        self._total_stalled += duration
        if self._current is stall:
            self._current = None
        # The lag series shows the stall at once, in the same snapshot as the stall itself.
        self._window_max_lag = max(self._window_max_lag, duration)
        self._last_point = float("-inf")
        for listener in self.listeners:
            try:
                listener.stall_ended(finished)
            except Exception as error:
                self._listener_failed(error)

    def _begin_stall(self, context: AgentContext, now: float, due: float) -> None:
        stall = self._new_stall(due)
        try:
            task = self._task_source(context.loop)
        except Exception:
            task = None
        if task is not None:
            stall.task_id = id(task)
            try:
                stall.task_name = task.get_name()
            except Exception:
                stall.task_name = None
            link = context.link_for(task)
            if link is not None:
                stall.request_id = link.request_id
                stall.request_label = link.request_label
                stall.background_label = link.background_label
            else:
                try:
                    stall.request_label = _uvicorn_request_label(task)
                except Exception:
                    stall.request_label = None
        self._current = stall
        self._sample(context, stall, now)
        if self.listeners:
            ongoing = stall.to_stall(now - stall.start, ongoing=True)
            for listener in self.listeners:
                try:
                    listener.stall_began(ongoing, task)
                except Exception as error:
                    self._listener_failed(error)

    def _listener_failed(self, error: Exception) -> None:
        if self._context is not None:
            self._context.record_error(f"watchdog: stall listener: {error!r}")

    def _sample(self, context: AgentContext, stall: _OngoingStall, now: float) -> None:
        stall.sampled_at = now
        current = self._frame_source()
        frame = current.get(context.loop_thread_id)
        frames = still_stack(frame, MAX_STACK_DEPTH)
        if not stall.waits_for_own_loop and stall.own_loop_checks < OWN_LOOP_CHECKS:
            stall.own_loop_checks += 1
            others = (f for ident, f in current.items() if ident != context.loop_thread_id)
            stall.waits_for_own_loop = waits_for_own_loop(frame, context.loop, others)
        del frame, current  # do not keep the threads' frames alive
        index = stall.places.get(frames)
        if index is not None:
            seen = stall.samples[index]
            stall.samples[index] = dataclasses.replace(seen, count=seen.count + 1)
        elif len(stall.samples) < MAX_SAMPLES:
            stall.places[frames] = len(stall.samples)
            stall.samples.append(StackSample(offset=max(0.0, now - stall.start), frames=frames))

    def _add_lag_point(self, now: float, lateness: float) -> None:
        if now - self._last_point < LAG_POINT_INTERVAL:
            return
        # The worst heartbeat lag since the last point, or how late the loop is right now
        # (a stall in progress has no heartbeat to measure it).
        value = max(self._window_max_lag, lateness, 0.0)
        self._window_max_lag = 0.0
        self._series.append((self._wall_at(now), round(value, 6)))
        self._last_point = now

    def _wall_at(self, monotonic: float) -> float:
        return self._wall_clock() - (self._clock() - monotonic)

    @staticmethod
    def _loop_running(context: AgentContext) -> bool:
        try:
            return context.loop.is_running() and not context.loop.is_closed()
        except Exception:
            return False

    # --- reporting (agent thread) ------------------------------------------------------------

    @property
    def implementation(self) -> str:
        return self._implementation

    def loop_stats(self) -> LoopStats:
        now = self._clock()
        with self._lock:
            _, lag = self._beat
            current = self._current
            stalled_for = now - current.start if current is not None else None
            if current is not None:
                lag = now - current.due  # no heartbeat can measure it: the loop is stuck
            return LoopStats(
                implementation=self._implementation,
                lag=lag,
                lag_series=tuple(self._series),
                stall_threshold=self._threshold,
                stalled_for=stalled_for,
                total_stalls=self._total_stalls,
                total_stalled_seconds=self._total_stalled,
                busy=self._busy.share(),
                busy_profile=self._busy.profile,
                busy_idle_samples=self._busy.idle_samples,
                busy_sampled_at=(
                    self._wall_at(self._busy.sampled_at)
                    if self._busy.sampled_at is not None
                    else None
                ),
            )

    def stalls(self) -> tuple[Stall, ...]:
        """Finished stalls, oldest first, then the one in progress (if any)."""
        now = self._clock()
        with self._lock:
            stalls = list(self._history)
            if self._current is not None:
                stalls.append(self._current.to_stall(now - self._current.start, ongoing=True))
        return tuple(stalls)

    def collect(self, context: AgentContext, options: CollectOptions) -> Mapping[str, Any]:
        # The thread looks only about once per threshold window: look now, so a snapshot shows
        # a stall that just began or ended.
        try:
            self.check()
        except Exception as error:
            context.record_error(f"watchdog: {error!r}")
        return {"loop": self.loop_stats(), "stalls": self.stalls()}
