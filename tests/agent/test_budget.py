"""The agent's CPU budget: clients asking for more than its share get slower answers."""

from __future__ import annotations

import threading
import time

import pytest

from inspector.agent.budget import CpuBudget


class FakeClocks:
    """Wall and thread-CPU clocks that tests move by hand; sleeping moves the wall clock."""

    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 5.0
        self.slept: list[float] = []

    def work(self, cpu_seconds: float, wall_seconds: float | None = None) -> None:
        self.cpu += cpu_seconds
        self.wall += cpu_seconds if wall_seconds is None else wall_seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.wall += seconds

    def budget(self, share: float = 0.25, burst: float = 0.25, max_pause: float = 0.5) -> CpuBudget:
        return CpuBudget(
            share,
            burst=burst,
            max_pause=max_pause,
            clock=lambda: self.wall,
            cpu_clock=lambda: self.cpu,
            sleep=self.sleep,
        )


def test_light_use_is_never_held_back() -> None:
    clocks = FakeClocks()
    budget = clocks.budget(share=0.25)
    budget.pace()
    for _ in range(100):  # 10 % of a core: a live UI polling once a second
        clocks.work(0.01, wall_seconds=0.1)
        assert budget.pace() == 0.0
    assert clocks.slept == []
    assert budget.paused_seconds == 0.0


def test_one_large_answer_fits_in_the_burst() -> None:
    clocks = FakeClocks()
    budget = clocks.budget(share=0.25, burst=0.25)
    budget.pace()
    clocks.work(0.2)  # a 50,000-task snapshot
    assert budget.pace() == 0.0


def test_sustained_heavy_use_is_paced_down_to_the_share() -> None:
    clocks = FakeClocks()
    budget = clocks.budget(share=0.25, burst=0.25)
    budget.pace()
    started_wall, started_cpu = clocks.wall, clocks.cpu
    for _ in range(200):  # clients asking back to back, 20 ms of CPU each
        clocks.work(0.02)
        budget.pace()
    cpu, wall = clocks.cpu - started_cpu, clocks.wall - started_wall
    assert cpu / wall == pytest.approx(0.25, abs=0.03)
    assert budget.paused_seconds == pytest.approx(sum(clocks.slept))
    assert budget.paused_seconds > 10.0


def test_a_single_wait_is_bounded() -> None:
    clocks = FakeClocks()
    budget = clocks.budget(share=0.1, burst=0.0, max_pause=0.5)
    budget.pace()
    clocks.work(2.0)  # far over budget at once
    assert budget.pace() == 0.5
    # the rest of the debt is paid by later waits, still one bounded wait at a time
    assert budget.pace() == 0.5
    assert max(clocks.slept) == 0.5


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        CpuBudget(share)


def test_the_real_clocks_hold_a_busy_thread_to_its_share() -> None:
    budget = CpuBudget(0.5, burst=0.01, max_pause=0.2)
    result: dict[str, float] = {}

    def busy() -> None:
        budget.pace()
        started_wall, started_cpu = time.monotonic(), time.thread_time()
        while time.monotonic() - started_wall < 0.6:
            spin_until = time.thread_time() + 0.005
            while time.thread_time() < spin_until:
                pass
            budget.pace()
        wall, cpu = time.monotonic() - started_wall, time.thread_time() - started_cpu
        result["share"] = cpu / wall
        # How fast it burnt CPU while it was not held back: a whole core on an idle machine.
        result["running_rate"] = cpu / max(1e-6, wall - budget.paused_seconds)

    thread = threading.Thread(target=busy)
    thread.start()
    thread.join(10)
    # Left alone the thread would use a whole core; a loaded machine can only lower it.
    assert result["share"] < 0.65
    # It was held back by waits, unless the machine was so loaded that it never got more than
    # its share anyway (then there was nothing to hold back).
    assert budget.paused_seconds > 0.1 or result["running_rate"] < 0.6, result
