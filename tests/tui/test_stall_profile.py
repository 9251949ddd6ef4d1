"""The Stalls view shows where a stall spent its time, heaviest stack first, as doctor reads it."""

from __future__ import annotations

from inspector.model import Frame, StackSample, Stall
from inspector.tui.views.stalls import profile, stall_content, stall_location

BRIEF = (Frame(file="/srv/app.py", line=10, function="prepare", code="rows = load()"),)
LONG = (Frame(file="/srv/app.py", line=20, function="report", code="time.sleep(2)"),)


def stall(*samples: StackSample) -> Stall:
    return Stall(id=1, started_at=1_700_000_000.0, duration=0.4, ongoing=False, samples=samples)


def test_the_heaviest_stack_comes_first_and_locates_the_stall() -> None:
    profiled = stall(StackSample(0.1, BRIEF, count=2), StackSample(0.12, LONG, count=30))
    assert [count for _, count, _ in profile(profiled.samples)] == [30, 2]
    frame, _ = stall_location(profiled)
    assert frame is not None and frame.line == 20
    text = stall_content(profiled).plain
    assert text.index("94 % of the stall") < text.index("6 % of the stall")
    assert "(30 of 32 samples, first at 120 ms)" in text


def test_an_older_agents_repeated_samples_add_up() -> None:
    repeated = stall(StackSample(0.1, BRIEF), StackSample(0.2, LONG), StackSample(0.3, LONG))
    assert profile(repeated.samples) == [(0.2, 2, LONG), (0.1, 1, BRIEF)]
