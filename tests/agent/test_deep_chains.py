"""An await chain far deeper than the agent reports: the cut is said, the wait read at the leaf.

A recursion 500 awaits deep used to be reported as its innermost 64 of the first 256 frames,
with no word that anything was left out, and waiting on a "Future" instead of the Event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from inspector import codec
from inspector.agent.frames import MAX_DEPTH, OUTER_DEPTH, cut_frames
from inspector.model import Frame, StackCut, TaskInfo
from tests.agent.test_tasks import Inspected, LoopThread, inspecting, running_app
from tests.agent.test_tasks import line_of as line_in_tasks_test

DEPTH = 500
"""Coroutine frames of the chain (the Event's own `wait` comes on top)."""


def line_of(marker: str) -> int:
    return line_in_tasks_test(marker, __file__)


async def descend(depth: int, event: asyncio.Event) -> None:
    if depth == 1:
        await event.wait()  # deep-leaf
        return
    await descend(depth - 1, event)  # deep-recursion


async def fall(depth: int) -> None:
    if depth == 1:
        await asyncio.sleep(0.1)  # seen alive by the probe's sweep first
        raise ValueError("the bottom")  # deep-raise
    await fall(depth - 1)  # deep-fall


@pytest.fixture(params=["asyncio", "uvloop"])
def app(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    yield from running_app(request.param)


@pytest.fixture
def inspected(app: LoopThread) -> Iterator[Inspected]:
    yield from inspecting(app)


# --- the cut itself ---------------------------------------------------------------------------


def test_frames_that_fit_are_kept_whole_with_no_cut() -> None:
    frames = list(range(MAX_DEPTH))
    assert cut_frames(frames) == (frames, None)


def test_a_deep_stack_keeps_its_outermost_and_innermost_frames() -> None:
    frames = list(range(DEPTH + 1))
    kept, cut = cut_frames(frames)
    assert cut == StackCut(outer=OUTER_DEPTH, left_out=DEPTH + 1 - MAX_DEPTH)
    assert len(kept) == MAX_DEPTH
    assert list(kept[:OUTER_DEPTH]) == list(range(OUTER_DEPTH))
    assert list(kept[OUTER_DEPTH:]) == frames[-(MAX_DEPTH - OUTER_DEPTH) :]


@pytest.mark.parametrize(("limit", "outer"), [(3, 1), (2, 1), (1, 0), (0, 0)])
def test_a_small_limit_still_keeps_the_innermost_frame(limit: int, outer: int) -> None:
    kept, cut = cut_frames(list(range(10)), limit)
    assert cut == StackCut(outer=outer, left_out=10 - limit)
    assert len(kept) == limit
    if limit:
        assert kept[-1] == 9


# --- a real task ------------------------------------------------------------------------------


def test_a_chain_500_deep_says_what_was_left_out_and_waits_on_the_event(
    inspected: Inspected,
) -> None:
    event = inspected.app.call(asyncio.Event)
    task = inspected.app.spawn(descend(DEPTH, event), name="deep")

    info = inspected.wait_for(task, lambda t: t.waiting_on is not None)

    assert info.waiting_on is not None
    assert info.waiting_on.kind == "event"
    assert info.waiting_on.object_id == id(event)
    assert info.waiting_on.is_set is False
    assert len(info.stack) == MAX_DEPTH
    assert info.stack_cut == StackCut(outer=OUTER_DEPTH, left_out=DEPTH + 1 - MAX_DEPTH)
    outermost = info.stack[0]
    assert (outermost.function, outermost.line) == ("descend", line_of("deep-recursion"))
    assert info.stack[-1].function.endswith("wait")  # asyncio's Event.wait, innermost last
    assert (info.stack[-2].function, info.stack[-2].line) == ("descend", line_of("deep-leaf"))
    again = inspected.task(task)  # parked on the same Future: described from the memo
    assert (again.stack, again.stack_cut) == (info.stack, info.stack_cut)


def test_a_chain_that_fits_has_no_cut(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    task = inspected.app.spawn(descend(MAX_DEPTH - 1, event), name="just-fits")
    info = inspected.wait_for(task, lambda t: t.waiting_on is not None)
    assert len(info.stack) == MAX_DEPTH
    assert info.stack_cut is None


def test_without_stacks_a_deep_task_still_says_what_it_waits_on(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    task = inspected.app.spawn(descend(DEPTH, event), name="deep")
    inspected.wait_for(task, lambda t: t.waiting_on is not None)
    info = inspected.task(task, with_stacks=False)
    assert info.waiting_on is not None and info.waiting_on.kind == "event"
    assert (info.stack, info.stack_cut) == ((), None)


def test_a_task_that_died_deep_keeps_its_raise_line_and_says_what_was_left_out(
    app: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("inspector.agent.tasks.SWEEP_INTERVAL", 0.02)
    for state in inspecting(app):
        task = state.app.spawn(fall(DEPTH))
        found = state.wait_for(task, lambda t: t.state == "failed")
        assert found.stack_cut is not None
        assert found.stack_cut.outer == OUTER_DEPTH
        assert found.stack_cut.left_out >= DEPTH - MAX_DEPTH
        assert (found.stack[-1].function, found.stack[-1].line) == ("fall", line_of("deep-raise"))
        assert found.stack[0].line == line_of("deep-fall")
        state.app.call(task.exception)


def test_collecting_a_deep_task_stays_cheap(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    tasks = [inspected.app.spawn(descend(DEPTH, event)) for _ in range(20)]
    inspected.wait_for(tasks[-1], lambda t: t.waiting_on is not None)
    timings = []
    for _ in range(3):
        inspected.probe._parked = {}  # every task described from scratch each time
        started = time.perf_counter()
        inspected.collect()
        timings.append(time.perf_counter() - started)
    # About 5 ms for 20 chains of 500 on an idle 2-core machine; the bound catches a blow-up.
    assert sorted(timings)[1] < 0.5


# --- the data contract -----------------------------------------------------------------------


def deep_task(task_id: int, cut: StackCut | None) -> TaskInfo:
    frames = tuple(Frame("/srv/app.py", line, "descend", "await descend()") for line in (3, 9))
    return TaskInfo(
        id=task_id, name=f"t{task_id}", state="pending", coro="descend", stack=frames, stack_cut=cut
    )


@pytest.mark.parametrize("compact", [True, False])
def test_the_cut_round_trips_in_both_forms(compact: bool) -> None:
    tasks = (deep_task(1, StackCut(outer=8, left_out=437)), deep_task(2, None), deep_task(3, None))
    data: Any = json.loads(json.dumps(codec.to_json_dict(tasks, compact=compact)))
    assert codec.from_json_dict(tuple[TaskInfo, ...], data) == tasks


def test_the_wire_leaves_out_a_cut_nobody_has() -> None:
    tasks = (deep_task(1, None), deep_task(2, None))
    assert "stack_cut" not in json.dumps(codec.to_json_dict(tasks, compact=True))
    assert "stack_cut" not in json.dumps(codec.to_json_dict(deep_task(1, None), compact=True))
