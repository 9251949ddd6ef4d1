"""The busy-loop sampler: CPU share of the loop thread, and a burst of samples of where it runs.

Real loop on the main thread, real profiling timer, real CPU-bound code.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time

from inspector.agent.busy import BURST_SAMPLES, BusySampler, thread_clock
from inspector.agent.watchdog import MAX_STACK_DEPTH, still_stack


def reprice(seconds: float) -> float:
    total, until = 0.0, time.process_time() + seconds
    while time.process_time() < until:
        total += sum(i * 0.5 for i in range(200))  # the hot line
    return total


async def busy_for(sampler: BusySampler, seconds: float) -> None:
    sampler.look(lag=1.0, stalled=False)  # as the watchdog does when the lag is high
    await asyncio.sleep(0)  # the loop runs the burst's arming callback
    await asyncio.sleep(0)
    reprice(seconds)


def sampler_on_this_loop() -> BusySampler:
    loop = asyncio.get_running_loop()
    return BusySampler(
        thread_clock(),
        time.monotonic,
        loop,
        lambda frame: still_stack(frame, MAX_STACK_DEPTH),
    )


def test_a_burst_finds_the_cpu_bound_line_and_puts_the_timer_away() -> None:
    async def main() -> BusySampler:
        sampler = sampler_on_this_loop()
        await busy_for(sampler, 0.6)
        return sampler

    sampler = asyncio.run(main())
    assert sampler.sampled_at is not None, sampler.unavailable
    counted = sum(sample.count for sample in sampler.profile) + sampler.idle_samples
    assert counted == BURST_SAMPLES
    heaviest = sampler.profile[0]
    assert any(
        f.function == "reprice" and "the hot line" in (f.code or "") for f in heaviest.frames
    )
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGPROF) == signal.SIG_DFL


def test_the_thread_clock_tells_a_busy_thread_from_an_idle_one() -> None:
    sampler = BusySampler(thread_clock(), time.monotonic)
    sampler.look(lag=0.0, stalled=False)
    reprice(0.3)
    sampler.look(lag=0.0, stalled=False)
    busy = sampler.share()
    time.sleep(1.2)
    sampler.look(lag=0.0, stalled=False)
    idle = sampler.share(1.0)
    assert busy is not None and idle is not None
    assert busy > 0.25 > 0.05 > idle  # CPU over wall time: lower when others take the CPU


def test_sigprof_used_by_someone_else_is_left_alone() -> None:
    def theirs(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGPROF, theirs)
    try:

        async def main() -> BusySampler:
            sampler = sampler_on_this_loop()
            await busy_for(sampler, 0.1)
            return sampler

        sampler = asyncio.run(main())
        assert sampler.unavailable is not None and "SIGPROF" in sampler.unavailable
        assert signal.getsignal(signal.SIGPROF) is theirs
    finally:
        signal.signal(signal.SIGPROF, previous)


def test_a_loop_off_the_main_thread_takes_no_burst() -> None:
    result: list[BusySampler] = []

    def run() -> None:
        async def main() -> None:
            sampler = sampler_on_this_loop()
            await busy_for(sampler, 0.1)
            result.append(sampler)

        asyncio.run(main())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)
    [sampler] = result
    assert sampler.profile == () and sampler.unavailable is not None
