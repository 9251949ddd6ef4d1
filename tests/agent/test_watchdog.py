"""The stall watchdog, driven by an injected clock and frame source (no sleeping), plus one run
against a real event loop."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from inspector.agent.frames import stack_of
from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions, TaskLink
from inspector.agent.watchdog import (
    DETAILED_STALLS,
    LAG_POINT_INTERVAL,
    LAG_SERIES_LENGTH,
    MAX_SAMPLES,
    PROFILE_INTERVAL,
    SUMMARY_DEPTH,
    WAKE_MARGIN,
    Watchdog,
    loop_implementation,
)

LOOP_THREAD = 4242


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeLoop:
    running = True

    def is_running(self) -> bool:
        return self.running

    def is_closed(self) -> bool:
        return False


class FakeTask:
    def get_name(self) -> str:
        return "Task-7"

    def get_coro(self) -> None:
        return None


def _blocking_frame() -> types.FrameType:
    return sys._getframe()  # the line a stall sample must name


BLOCKING_LINE = _blocking_frame.__code__.co_firstlineno + 1


def _other_frame() -> types.FrameType:
    return sys._getframe()


def _deep_frame(depth: int) -> types.FrameType:
    return _deep_frame(depth - 1) if depth > 1 else sys._getframe()


class Rig:
    """A watchdog bound to a fake loop, clock and frame source."""

    def __init__(
        self,
        *,
        threshold: float = 0.1,
        interval: float = 0.02,
        max_history: int = 200,
        task: Any = None,
        linker: Any = None,
        frames: Sequence[types.FrameType] | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.loop = FakeLoop()
        self.frame_calls = 0
        sequence = list(frames) if frames is not None else [_blocking_frame()]

        def frame_source() -> Mapping[int, types.FrameType]:
            """The loop thread's stack: each call the next frame of `frames`, cycling."""
            frame = sequence[self.frame_calls % len(sequence)]
            self.frame_calls += 1
            return {LOOP_THREAD: frame}

        self.context = AgentContext(
            loop=self.loop,  # type: ignore[arg-type]
            loop_thread_id=LOOP_THREAD,
            config=AgentConfig(
                stall_threshold=threshold, heartbeat_interval=interval, max_history=max_history
            ),
            clock=lambda: 1_700_000_000.0 + self.clock.now,
        )
        if linker is not None:
            self.context.linkers.append(linker)
        self.watchdog = Watchdog(
            clock=self.clock,
            wall_clock=lambda: 1_700_000_000.0 + self.clock.now,
            frame_source=frame_source,
            task_source=lambda loop: task,
        )
        self.watchdog.bind(self.context)
        self.interval = interval

    def run(self, seconds: float, *, beating: bool, step: float = 0.02) -> None:
        """Advance time in watchdog ticks; with `beating`, the loop runs its heartbeat too."""
        elapsed = 0.0
        while elapsed < seconds - 1e-9:
            self.clock.advance(step)
            elapsed += step
            if beating:
                self.watchdog.record_beat()
            self.watchdog.check()

    def resume(self) -> None:
        self.watchdog.record_beat()
        self.watchdog.check()

    def stalls(self) -> tuple[Any, ...]:
        return tuple(self.watchdog.collect(self.context, CollectOptions())["stalls"])


def test_a_loop_that_keeps_beating_has_no_stall() -> None:
    rig = Rig()
    rig.run(5.0, beating=True)
    assert rig.stalls() == ()
    stats = rig.watchdog.loop_stats()
    assert stats.stalled_for is None and stats.total_stalls == 0
    assert rig.frame_calls == 0, "no stack is sampled while the loop is healthy"


def test_a_healthy_loop_lets_the_watchdog_sleep_a_whole_threshold_window() -> None:
    """Each wake of the watchdog thread slows the loop thread: it wakes only when the heartbeat
    could have become a stall, not every heartbeat."""
    rig = Rig(threshold=0.1, interval=0.02)
    rig.run(0.1, beating=True)
    assert rig.watchdog.next_wait() == pytest.approx(0.02 + 0.1 + WAKE_MARGIN)
    rig.clock.advance(0.05)  # no beat since: the wake-up comes closer, it does not move
    assert rig.watchdog.next_wait() == pytest.approx(0.07 + WAKE_MARGIN)
    rig.clock.advance(0.07 + WAKE_MARGIN)
    rig.watchdog.check()  # the one look at the deadline finds the stall
    [ongoing] = rig.stalls()
    assert ongoing.ongoing
    # Stalled: it looks again at the next sample offset (0.25 s after the estimated start).
    assert 0.0 < rig.watchdog.next_wait() <= 0.25


def test_periodic_jobs_run_on_the_watchdog_thread_and_survive_errors() -> None:
    loop = asyncio.new_event_loop()
    context = AgentContext(loop=loop, loop_thread_id=threading.get_ident(), config=AgentConfig())
    watchdog = Watchdog()
    assert not watchdog.add_periodic(lambda: None, 0.01), "no thread yet: refused"
    ran: list[str] = []
    done = threading.Event()

    def job() -> None:
        ran.append(threading.current_thread().name)
        if len(ran) == 1:
            raise RuntimeError("job bug")
        if len(ran) >= 3:
            done.set()

    try:
        watchdog.install(context)
        assert watchdog.add_periodic(job, 0.01)
        assert done.wait(5), "the job kept its schedule after raising"
        assert set(ran) == {"inspector-watchdog"}
        assert any("job bug" in error for error in context.health((), 0.0).recent_errors)
    finally:
        watchdog.close()
        loop.close()
    assert not watchdog.add_periodic(job, 0.01), "closed: refused"


def test_a_pause_under_the_threshold_is_not_a_stall() -> None:
    rig = Rig(threshold=0.1)
    rig.run(0.1, beating=True)
    rig.run(0.08, beating=False)  # late by 0.06 s at most
    rig.resume()
    rig.run(0.5, beating=True)
    assert rig.stalls() == ()


def test_a_stall_over_the_threshold_is_seen_while_it_lasts_and_measured_when_it_ends() -> None:
    rig = Rig(threshold=0.1, interval=0.02)
    rig.run(0.1, beating=True)
    last_beat = rig.clock.now
    rig.run(0.2, beating=False)

    [ongoing] = rig.stalls()
    assert ongoing.ongoing
    # It began after the last beat and before the missed one: dated halfway.
    assert ongoing.duration == pytest.approx(rig.clock.now - (last_beat + 0.01))
    assert len(ongoing.samples) == 1, "the first sample is taken as soon as the stall is seen"
    stats = rig.watchdog.loop_stats()
    assert stats.stalled_for == pytest.approx(ongoing.duration)

    rig.run(0.8, beating=False)
    rig.resume()
    [finished] = rig.stalls()
    assert not finished.ongoing
    assert finished.id == ongoing.id
    assert finished.duration == pytest.approx(rig.clock.now - (last_beat + 0.01))
    assert finished.duration == pytest.approx(0.99)
    assert finished.started_at == pytest.approx(1_700_000_000.0 + last_beat + 0.01)
    stats = rig.watchdog.loop_stats()
    assert stats.stalled_for is None
    assert stats.total_stalls == 1
    assert stats.total_stalled_seconds == pytest.approx(0.99)


def test_a_stall_shows_in_the_lag_series_as_soon_as_it_ends() -> None:
    """Metrics read the lag series: a stall must not wait for the next regular point."""
    rig = Rig(threshold=0.1, interval=0.02)
    rig.run(1.0, beating=True)
    rig.run(0.4, beating=False)
    rig.resume()
    [stall] = rig.stalls()
    newest = rig.watchdog.loop_stats().lag_series[-1]
    assert newest[1] >= stall.duration == pytest.approx(0.39)


def test_samples_are_taken_during_the_stall_and_name_the_blocking_line() -> None:
    rig = Rig(frames=[_blocking_frame(), _other_frame()])
    rig.run(0.1, beating=True)
    rig.run(1.2, beating=False)
    [ongoing] = rig.stalls()
    offsets = [sample.offset for sample in ongoing.samples]
    assert sum(s.count for s in ongoing.samples) >= 3, "a 1.2 s stall is sampled more than once"
    assert offsets == sorted(offsets)
    assert offsets[0] < 0.15  # right after the threshold was crossed
    innermost = ongoing.samples[0].frames[-1]
    assert innermost.file == __file__
    assert innermost.line == BLOCKING_LINE
    assert innermost.function == "_blocking_frame"
    assert innermost.code == "return sys._getframe()  # the line a stall sample must name"


def test_a_stall_that_stays_in_one_place_keeps_one_sample_of_it() -> None:
    rig = Rig()
    rig.run(0.1, beating=True)
    rig.run(3.0, beating=False)
    [ongoing] = rig.stalls()
    assert rig.frame_calls > 1
    assert len(ongoing.samples) == 1


def test_a_very_long_stall_keeps_a_bounded_number_of_samples() -> None:
    rig = Rig(frames=[_blocking_frame(), _other_frame()])
    rig.run(0.1, beating=True)
    rig.run(120.0, beating=False, step=0.05)
    [ongoing] = rig.stalls()
    assert 1 < len(ongoing.samples) <= MAX_SAMPLES
    # One look per PROFILE_INTERVAL at most (here one per 50 ms tick), each counted once.
    assert rig.frame_calls <= 120.0 / PROFILE_INTERVAL
    assert sum(sample.count for sample in ongoing.samples) == rig.frame_calls


def test_a_stall_carries_a_profile_of_where_its_time_went() -> None:
    """Four samples in five at one line, one in five at another: the counts say so."""
    blocking, other = _blocking_frame(), _other_frame()
    rig = Rig(frames=[blocking, blocking, blocking, blocking, other])
    rig.run(0.1, beating=True)
    rig.run(2.0, beating=False, step=PROFILE_INTERVAL)
    rig.resume()
    [stall] = rig.stalls()
    counts = {sample.frames[-1].function: sample.count for sample in stall.samples}
    assert set(counts) == {"_blocking_frame", "_other_frame"}
    assert 3.5 <= counts["_blocking_frame"] / counts["_other_frame"] <= 4.5
    assert sum(counts.values()) >= 80  # about one sample per 10 ms of the stall once it is seen


def test_samples_of_a_stall_past_the_distinct_cap_add_to_none() -> None:
    frames = [_deep_frame(depth) for depth in range(1, MAX_SAMPLES + 10)]
    rig = Rig(frames=frames)
    rig.run(0.1, beating=True)
    rig.run(1.0, beating=False, step=PROFILE_INTERVAL)
    [ongoing] = rig.stalls()
    assert len(ongoing.samples) == MAX_SAMPLES


def test_history_is_bounded_and_keeps_the_newest() -> None:
    rig = Rig(max_history=5)
    for _ in range(12):
        rig.run(0.1, beating=True)
        rig.run(0.3, beating=False)
        rig.resume()
    stalls = rig.stalls()
    assert len(stalls) == 5
    assert [s.id for s in stalls] == list(range(8, 13))
    assert rig.watchdog.loop_stats().total_stalls == 12


def test_older_stalls_keep_a_short_summary_of_their_first_sample() -> None:
    rig = Rig(frames=[_deep_frame(40), _deep_frame(30)])
    count = DETAILED_STALLS + 5
    for _ in range(count):
        rig.run(0.1, beating=True)
        rig.run(0.6, beating=False)
        rig.resume()
    stalls = rig.stalls()
    assert len(stalls) == count
    for old in stalls[:5]:
        assert len(old.samples) == 1
        assert len(old.samples[0].frames) == SUMMARY_DEPTH
        assert old.samples[0].frames[-1].function == "_deep_frame"  # the innermost is kept
    for recent in stalls[5:]:
        assert len(recent.samples) >= 2
        assert len(recent.samples[0].frames) > SUMMARY_DEPTH


def test_a_stall_shorter_than_a_tick_is_still_recorded_from_the_late_beat() -> None:
    rig = Rig(threshold=0.1)
    rig.run(0.1, beating=True)
    rig.clock.advance(0.15)  # the watchdog thread did not get to run meanwhile
    rig.resume()
    [stall] = rig.stalls()
    assert not stall.ongoing
    assert stall.duration == pytest.approx(0.14)
    assert stall.samples == ()


def test_the_running_task_and_its_request_are_named() -> None:
    class Linker:
        def link_for(self, task: Any) -> TaskLink | None:
            return TaskLink(request_id=99, request_label="GET /export")

    task = FakeTask()
    rig = Rig(task=task, linker=Linker())
    rig.run(0.1, beating=True)
    rig.run(0.3, beating=False)
    [stall] = rig.stalls()
    assert stall.task_id == id(task)
    assert stall.task_name == "Task-7"
    assert stall.request_id == 99
    assert stall.request_label == "GET /export"


def test_a_stall_outside_any_task_has_no_task() -> None:
    rig = Rig(task=None)
    rig.run(0.1, beating=True)
    rig.run(0.3, beating=False)
    [stall] = rig.stalls()
    assert stall.task_id is None and stall.request_label is None


def test_a_stopped_loop_is_not_reported_as_stalled() -> None:
    rig = Rig()
    rig.run(0.1, beating=True)
    rig.loop.running = False
    rig.run(2.0, beating=False)
    assert rig.stalls() == ()


def test_the_lag_series_has_one_point_per_interval_and_is_bounded() -> None:
    rig = Rig()
    rig.run(3.0, beating=True)
    points = rig.watchdog.loop_stats().lag_series
    assert len(points) == pytest.approx(3.0 / LAG_POINT_INTERVAL, abs=1)
    assert all(lag < 0.01 for _, lag in points)
    rig.run(1.2, beating=False)  # a stall shows in the series while it lasts
    points = rig.watchdog.loop_stats().lag_series
    assert points[-1][1] > 0.5
    rig.resume()
    rig.run(LAG_SERIES_LENGTH * LAG_POINT_INTERVAL * 2, beating=True, step=0.1)
    assert len(rig.watchdog.loop_stats().lag_series) == LAG_SERIES_LENGTH


def test_stack_order_is_innermost_last() -> None:
    def outer() -> tuple[Any, ...]:
        return inner()

    def inner() -> tuple[Any, ...]:
        return stack_of(sys._getframe())

    frames = stack_of(sys._getframe())
    nested = outer()
    assert [f.function.rsplit(".", 1)[-1] for f in nested[-2:]] == ["outer", "inner"]
    assert nested[-3].function == frames[-1].function
    assert len(stack_of(sys._getframe(), limit=2)) == 2


def test_loop_implementation_names() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert loop_implementation(loop) == "asyncio"
    finally:
        loop.close()
    uvloop = pytest.importorskip("uvloop")
    other = uvloop.new_event_loop()
    try:
        assert loop_implementation(other) == "uvloop"
    finally:
        other.close()


def _sleep_on_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # REAL-LOOP-BLOCK


def test_a_real_loop_blocked_by_time_sleep_is_caught_mid_stall() -> None:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    def run_loop() -> None:
        asyncio.set_event_loop(loop)

        def install() -> None:
            context = AgentContext(
                loop=loop, loop_thread_id=threading.get_ident(), config=AgentConfig()
            )
            watchdog = Watchdog()
            watchdog.install(context)
            holder["context"], holder["watchdog"] = context, watchdog
            started.set()

        loop.call_soon(install)
        loop.run_forever()

    thread = threading.Thread(target=run_loop, daemon=True)
    thread.start()
    try:
        assert started.wait(5)
        watchdog: Watchdog = holder["watchdog"]
        time.sleep(0.1)
        loop.call_soon_threadsafe(_sleep_on_the_loop, 0.4)
        deadline = time.monotonic() + 5
        stalls: tuple[Any, ...] = ()
        while time.monotonic() < deadline:
            stalls = tuple(s for s in watchdog.stalls() if not s.ongoing)
            if stalls:
                break
            time.sleep(0.02)
        assert stalls, "the 0.4 s block was not recorded"
        stall = stalls[-1]
        assert 0.35 <= stall.duration <= 0.6
        innermost = stall.samples[0].frames[-1]
        assert innermost.function == "_sleep_on_the_loop"
        assert innermost.code is not None and "REAL-LOOP-BLOCK" in innermost.code
    finally:
        if "watchdog" in holder:
            holder["watchdog"].close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
