"""A cap on how much of the server's CPU, and of its GIL, the agent's thread may take.

Every command the agent answers costs CPU on aiomonitor's thread: building and encoding the
snapshot, and prompt_toolkit redrawing its prompt. That thread competes for the GIL with the app
loop, so twenty clients polling full snapshots ten times a second would take a large share of
the server. `CpuBudget` lets the thread use up to `share` of one core (with a burst allowance for
a large snapshot now and then) and, past that, delays the next answer until the budget has
refilled: heavy clients get slower answers; the app keeps its share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

DEFAULT_SHARE: Final = 0.25
"""Fraction of one core the agent's thread may use over time."""
BURST_SECONDS: Final = 0.25
"""CPU seconds that may be used at once before pacing starts (a 50,000-task snapshot)."""
MAX_PAUSE: Final = 0.5
"""The longest single wait, so an answer is never held back for long."""


class CpuBudget:
    """A token bucket of CPU seconds for the thread that calls `pace`.

    The bucket holds at most `burst` seconds and refills at `share` seconds per second of wall
    time. `pace` takes out the CPU the thread used since the last call; when the bucket is in
    debt it sleeps until the debt is paid (at most `max_pause`). Sleeping releases the GIL.
    """

    def __init__(
        self,
        share: float = DEFAULT_SHARE,
        *,
        burst: float = BURST_SECONDS,
        max_pause: float = MAX_PAUSE,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        self.share = share
        self.burst = burst
        self.max_pause = max_pause
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._sleep = sleep
        self._tokens = burst
        self._wall: float | None = None
        self._cpu = 0.0
        self.paused_seconds = 0.0
        """Total time answers were held back, for the agent's health report."""

    def pace(self) -> float:
        """Charge the CPU used since the last call and wait if over budget; the seconds waited.

        Call it from one thread only (aiomonitor's), before answering a command.
        """
        wall, cpu = self._clock(), self._cpu_clock()
        if self._wall is None:
            self._wall, self._cpu = wall, cpu
            return 0.0
        refill = (wall - self._wall) * self.share
        used = max(0.0, cpu - self._cpu)
        self._tokens = min(self.burst, self._tokens + refill) - used
        self._wall, self._cpu = wall, cpu
        if self._tokens >= 0.0:
            return 0.0
        pause = min(-self._tokens / self.share, self.max_pause)
        self._sleep(pause)
        self.paused_seconds += pause
        # The wait refilled the bucket; start the next interval after it.
        self._tokens += pause * self.share
        self._wall, self._cpu = self._clock(), self._cpu_clock()
        return pause
