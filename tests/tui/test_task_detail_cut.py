"""The Task view says where a chain too deep to report whole was cut, as dump does."""

from __future__ import annotations

from inspector.model import Frame, StackCut
from inspector.tui.views.task_detail import CUT_KEY, frame_rows

FRAMES = tuple(Frame(file="/srv/app.py", line=n, function=f"step{n}") for n in range(1, 11))


def test_the_note_stands_between_the_outer_and_the_inner_frames() -> None:
    rows = frame_rows(FRAMES, StackCut(outer=3, left_out=437))
    keys = [key for key, _ in rows]
    assert keys == ["0", "1", "2", CUT_KEY, *map(str, range(3, 10))]
    note = dict(rows)[CUT_KEY][2]
    assert note == ("… 437 frames left out …", "warning")
    assert dict(rows)["3"][0] == "4"  # frames keep their own numbers around the note


def test_without_a_cut_there_is_no_note() -> None:
    assert CUT_KEY not in dict(frame_rows(FRAMES))
    assert CUT_KEY not in dict(frame_rows(FRAMES, StackCut(outer=3, left_out=0)))
