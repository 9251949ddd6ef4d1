"""The UI's stack text says where frames were left out of a stack the agent cut."""

from __future__ import annotations

from inspector.model import Frame, StackCut
from inspector.tui.widgets.stack_text import stack_content

APP = Frame("/srv/shop/app.py", 30, "walk", "await walk(node.left)")
LEAF = Frame("/srv/shop/app.py", 28, "walk", "await node.ready.wait()")
LIB = Frame("/srv/shop/.venv/lib/python3.11/site-packages/starlette/routing.py", 76, "app")
WAIT = Frame("/usr/lib/python3.11/asyncio/locks.py", 213, "Event.wait", "await fut")


def lines(frames: tuple[Frame, ...], cut: StackCut | None) -> list[str]:
    return stack_content(frames, cut=cut).plain.splitlines()


def test_the_note_is_where_the_frames_were_left_out() -> None:
    frames = (APP, APP, LEAF, WAIT)
    shown = lines(frames, StackCut(outer=2, left_out=436))
    note = shown.index("  … 436 frames left out …")
    assert sum(" in walk" in line for line in shown[:note]) == 2
    assert any("node.ready.wait()" in line for line in shown[note:])


def test_library_frames_are_not_folded_across_the_cut() -> None:
    shown = lines((LIB, LIB, LIB, APP, WAIT), StackCut(outer=2, left_out=5))
    assert shown[:3] == ["  … 2 library frames", "  … 5 frames left out …", "  … 1 library frame"]


def test_a_whole_stack_has_no_note_and_a_cut_past_its_end_is_said_last() -> None:
    assert not any("left out" in line for line in lines((APP, WAIT), None))
    assert lines((APP, WAIT), StackCut(outer=9, left_out=1))[-1] == "  … 1 frame left out …"
