"""How busy the event loop is between stalls, and where that time goes.

A loop can be slow without ever stalling: a thousand 5 ms callbacks a second keep it busy while
none passes the stall threshold, so the watchdog sees only lag. This sampler measures the loop
thread's CPU time (one `clock_gettime` on its thread clock at each watchdog look) and, while the
loop is busy, takes one short burst of samples of where it runs.

Why a profiling timer and not the watchdog thread: a thread that wants the GIL gets it when the
loop thread lets go, and a busy loop lets go at its I/O calls (the access log's write, `epoll`)
long before the 5 ms switch interval forces it to. Samples taken that way all land at the
I/O, never in the CPU-bound line that took the time. `ITIMER_PROF` instead counts the process's
CPU time and its signal handler runs on the main thread at the next bytecode, in the frame that
was executing: each sample is a moment of CPU time, where it went. The timer runs only for one
burst (40 samples, about 0.4 s of CPU) at most every 5 s while the loop is busy, only when the
loop runs on the main thread and nothing else uses SIGPROF, and with `SA_RESTART` so system
calls the signal interrupts resume by themselves. A healthy loop costs one clock read per look.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import types
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from inspector.model import Frame, StackSample

BUSY_WINDOW: Final = 5.0
"""Seconds over which the loop thread's CPU share is measured."""
BUSY_TRIGGER: Final = 0.5
"""CPU share of the loop thread over the last second above which a burst is taken."""
LAG_TRIGGER: Final = 0.02
"""Heartbeat lag (seconds) above which a burst is taken whatever the CPU share."""
BURST_SAMPLES: Final = 40
SAMPLE_EVERY: Final = 0.01
"""Seconds of process CPU time between two samples of a burst."""
BURST_LIMIT: Final = 2.0
"""Seconds after which a burst ends however few samples it took (an idle loop takes none)."""
BURST_EVERY: Final = 5.0
"""Seconds between the starts of two bursts."""
MAX_STACKS: Final = 24
"""Distinct stacks kept per burst."""
IDLE_FILES: Final = ("selectors.py", "asyncio/runners.py", "asyncio/base_events.py")
"""A sample whose innermost frame is here is the loop waiting for I/O, not working."""

ReadStack = Callable[[types.FrameType], "tuple[Frame, ...]"]


def thread_clock() -> Callable[[], float] | None:
    """A reader of the calling thread's CPU time that works from other threads too (Linux,
    BSDs). Only ever for the calling thread: `pthread_getcpuclockid` of a thread id that is not
    a live thread's crashes the process."""
    try:
        clock = time.pthread_getcpuclockid(threading.get_ident())
        time.clock_gettime(clock)
    except (AttributeError, OSError, OverflowError):
        return None
    return lambda: time.clock_gettime(clock)


def is_idle(frames: tuple[Frame, ...]) -> bool:
    if not frames:
        return True
    return frames[-1].file.replace("\\", "/").endswith(IDLE_FILES)


class BusySampler:
    """`look` runs on the watchdog thread at every wake; a burst runs on the loop thread."""

    def __init__(
        self,
        cpu_clock: Callable[[], float] | None,
        clock: Callable[[], float],
        loop: asyncio.AbstractEventLoop | None = None,
        read_stack: ReadStack | None = None,
    ) -> None:
        self._cpu_clock = cpu_clock
        self._clock = clock
        self._loop = loop
        self._read_stack = read_stack
        self._cpu: deque[tuple[float, float]] = deque(maxlen=64)
        """(monotonic time, loop thread CPU seconds), about one per watchdog look."""
        self._last_burst = float("-inf")
        self._armed = False
        self._ends_at = 0.0
        self._left = 0
        self._previous: Any = None
        self._stacks: dict[tuple[Frame, ...], int] = {}
        self._idle = 0
        self._closed = False
        self.unavailable: str | None = None
        """Why bursts cannot be taken here, once that is known."""
        self.profile: tuple[StackSample, ...] = ()
        """The last finished burst: busy stacks with their counts, heaviest first."""
        self.idle_samples = 0
        """Samples of the last burst that found the loop waiting for I/O."""
        self.sampled_at: float | None = None
        """Monotonic time the last burst finished."""

    # --- the watchdog thread -----------------------------------------------------------------

    def look(self, lag: float, stalled: bool) -> None:
        """Note the loop thread's CPU time; start a burst if the loop is busy (not stalled:
        stalls have profiles of their own)."""
        now = self._clock()
        if self._cpu_clock is not None:
            try:
                self._cpu.append((now, self._cpu_clock()))
            except OSError:  # the thread is gone
                self._cpu_clock = None
        while self._cpu and now - self._cpu[0][0] > BUSY_WINDOW:
            self._cpu.popleft()
        if stalled or self._armed or self.unavailable or now - self._last_burst < BURST_EVERY:
            return
        if self._loop is None or self._read_stack is None:
            return
        recent = self.share(1.0)
        if (recent is not None and recent >= BUSY_TRIGGER) or lag >= LAG_TRIGGER:
            self._last_burst = now
            self._armed = True
            try:
                self._loop.call_soon_threadsafe(self._arm)
            except Exception as error:  # a closed loop, or a loop that cannot take callbacks
                self.unavailable = f"cannot reach the loop: {error!r}"
                self._armed = False

    def share(self, seconds: float = BUSY_WINDOW) -> float | None:
        """The loop thread's CPU share over the last `seconds` (None: no thread clock)."""
        if len(self._cpu) < 2:
            return None
        last_at, last_cpu = self._cpu[-1]
        first = self._cpu[0]  # the newest point at least `seconds` old, else the oldest
        for point in self._cpu:
            if last_at - point[0] < seconds:
                break
            first = point
        elapsed = last_at - first[0]
        if elapsed <= 0.05:
            return None
        return max(0.0, min(1.0, (last_cpu - first[1]) / elapsed))

    def close(self) -> None:
        """Stop a burst in progress (from any thread; the handler then puts itself away)."""
        self._closed = True
        loop = self._loop
        if self._armed and loop is not None:
            try:
                loop.call_soon_threadsafe(self._disarm)
            except RuntimeError:
                pass

    # --- the loop thread ---------------------------------------------------------------------

    def _arm(self) -> None:
        if self._closed or threading.current_thread() is not threading.main_thread():
            self.unavailable = "the loop does not run on the main thread"
            self._armed = False
            return
        try:
            previous = signal.getsignal(signal.SIGPROF)
            # None: a handler set outside Python (a native profiler); a running timer: the same.
            if previous is not signal.SIG_DFL or signal.getitimer(signal.ITIMER_PROF) != (0, 0):
                self.unavailable = "SIGPROF is used by something else in the process"
                self._armed = False
                return
            self._previous = previous
            self._stacks, self._idle, self._left = {}, 0, BURST_SAMPLES
            self._ends_at = self._clock() + BURST_LIMIT
            signal.signal(signal.SIGPROF, self._on_sample)
            signal.siginterrupt(signal.SIGPROF, False)  # SA_RESTART
            signal.setitimer(signal.ITIMER_PROF, SAMPLE_EVERY, SAMPLE_EVERY)
        except (ValueError, OSError, AttributeError) as error:
            self.unavailable = f"no profiling timer: {error}"
            self._armed = False

    def _on_sample(self, signum: int, frame: types.FrameType | None) -> None:
        try:
            if frame is not None and self._read_stack is not None and self._left > 0:
                frames = self._read_stack(frame)
                self._left -= 1
                if is_idle(frames):
                    self._idle += 1
                elif frames in self._stacks or len(self._stacks) < MAX_STACKS:
                    self._stacks[frames] = self._stacks.get(frames, 0) + 1
            if self._left <= 0 or self._closed or self._clock() >= self._ends_at:
                self._disarm()
        except Exception:  # never raise into the app's code
            self._disarm()
        finally:
            del frame

    def _disarm(self) -> None:
        if not self._armed:
            return
        try:
            signal.setitimer(signal.ITIMER_PROF, 0, 0)
            signal.signal(signal.SIGPROF, self._previous or signal.SIG_DFL)
        except (ValueError, OSError):
            pass
        self._armed = False
        ranked = sorted(self._stacks.items(), key=lambda item: -item[1])
        self.profile = tuple(
            StackSample(offset=0.0, frames=frames, count=count) for frames, count in ranked
        )
        self.idle_samples = self._idle
        self.sampled_at = self._clock()
