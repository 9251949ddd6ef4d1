"""A stack the agent cut says so in the text dump, at the point where frames were left out."""

from __future__ import annotations

import dataclasses

from inspector.model import Frame, ProcessInfo, Snapshot, StackCut, TaskInfo, WaitInfo
from inspector.render import render_snapshot
from tests.factories import NOW

APP = "/srv/shop/app.py"


def deep_task(cut: StackCut | None, name: str = "Task-7") -> TaskInfo:
    outer = [Frame(APP, 30, "walk", "await walk(node.left)")] * 8
    inner = [Frame(APP, 30, "walk", "await walk(node.left)")] * 55
    leaf = Frame(APP, 28, "walk", "await node.ready.wait()")
    wait = Frame("/usr/lib/python3.11/asyncio/locks.py", 213, "Event.wait", "await fut")
    return TaskInfo(
        id=7,
        name=name,
        state="pending",
        coro="walk",
        stack=(*outer, *inner[:-1], leaf, wait),
        waiting_on=WaitInfo(kind="event", description="Event not set; 1 waiting"),
        age=3.0,
        stack_cut=cut,
    )


def tasks_text(*tasks: TaskInfo) -> list[str]:
    snapshot = Snapshot(process=ProcessInfo(pid=4242), taken_at=NOW, tasks=tasks)
    text = render_snapshot(snapshot)
    return text[text.index("Tasks (") :].splitlines()


def test_the_note_sits_between_the_outermost_frames_kept_and_the_innermost() -> None:
    lines = tasks_text(deep_task(StackCut(outer=8, left_out=436)))
    [note] = [i for i, line in enumerate(lines) if "left out" in line]
    assert lines[note].strip() == "… 436 frames left out …"
    frames_before = [line for line in lines[:note] if line.strip().startswith("walk (")]
    assert len(frames_before) == 8
    after = lines[note + 1 :]
    assert any("await node.ready.wait()" in line for line in after)
    assert any(line.strip() == "waiting on Event not set; 1 waiting" for line in after)


def test_a_whole_stack_has_no_note() -> None:
    assert not any("left out" in line for line in tasks_text(deep_task(None)))


def test_a_cut_past_the_end_of_the_stack_is_said_after_it() -> None:
    lines = tasks_text(deep_task(StackCut(outer=999, left_out=1)))
    frame_lines = [
        i for i, line in enumerate(lines) if line.strip().startswith(("walk (", "Event"))
    ]
    [note] = [i for i, line in enumerate(lines) if "left out" in line]
    assert lines[note].strip() == "… 1 frame left out …"
    assert note > max(frame_lines)


def test_tasks_that_differ_only_in_how_deep_they_were_are_not_folded_together() -> None:
    shallow = deep_task(None, name="Task-8")
    deep = deep_task(StackCut(outer=8, left_out=436))
    lines = tasks_text(deep, dataclasses.replace(shallow, id=8))
    assert not any("more task" in line for line in lines)
