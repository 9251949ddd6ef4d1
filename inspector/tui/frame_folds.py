"""Provides the "just my code" view of a stack: the application's frames, and one line per run of
library frames ("… 17 library frames").

A hanging request's await chain is 26 frames deep and the line to fix is one of them; at 80x24 a
dozen fit. Folding each run of library and standard-library frames into one line puts the
user's frames in view. The innermost frame stays (it is what the task waits on), a run never
folds across the place the agent cut a deep stack, and the inspector's own frames are never
shown: a run that has some says how many it hides. Which frame is whose is
`inspector.frame_kinds.classify`, the one answer the agent, doctor and dump use too.

Textual-free: the Task view's rows and the stack text of the other views are built from these.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from inspector.diagnose.locate import innermost_application_frame, loop_work_frames
from inspector.frame_kinds import FrameKind, classify
from inspector.model import Frame


@dataclass(frozen=True)
class Shown:
    """A frame shown on its own line."""

    index: int
    """Its place in the stack (outermost first): the row key, and its number."""
    frame: Frame
    kind: FrameKind
    innermost_app: bool = False
    """The line to fix: the deepest application frame."""


@dataclass(frozen=True)
class Folded:
    """A run of frames `[start, end)` shown as one line."""

    start: int
    end: int
    library: int
    """Library and standard-library frames in the run (0 once the run is unfolded)."""
    hidden: int
    """The inspector's own frames in the run, never shown."""

    @property
    def key(self) -> str:
        return f"fold:{self.start}"

    def label(self) -> str:
        """ "… 17 library frames", "… 2 inspector frames hidden", or both."""
        parts = []
        if self.library:
            parts.append(f"{self.library} library frame{'s' if self.library != 1 else ''}")
        if self.hidden:
            parts.append(f"{self.hidden} inspector frame{'s' if self.hidden != 1 else ''} hidden")
        return "… " + " · ".join(parts)


@dataclass(frozen=True)
class CutMark:
    """Where the agent left frames out of a stack too deep to report whole."""


Line = Shown | Folded | CutMark
CUT = CutMark()


def innermost_app_index(frames: tuple[Frame, ...]) -> int | None:
    """Where the line to fix is: the frame `doctor` names (`locate`), never one of the frames
    that merely run the loop (a `main.py` calling `uvicorn.run`)."""
    work = loop_work_frames(frames)
    target = innermost_application_frame(work)
    if target is None:
        return None
    skipped = len(frames) - len(work)
    return skipped + next(i for i in range(len(work) - 1, -1, -1) if work[i] is target)


def fold_frames(
    frames: tuple[Frame, ...],
    *,
    show_all: bool = False,
    expanded: Collection[int] = (),
    cut_at: int | None = None,
) -> list[Line]:
    """The lines that show `frames`: application frames and the innermost one on their own,
    each other run folded (unless `show_all`, or its start is in `expanded`); a `CUT` before
    frame `cut_at` (after the last when it equals their number)."""
    lines: list[Line] = []
    target = innermost_app_index(frames)
    last = len(frames) - 1
    run: list[tuple[int, Frame, FrameKind]] = []

    def flush() -> None:
        if not run:
            return
        start, end = run[0][0], run[-1][0] + 1
        hidden = sum(1 for _, _, kind in run if kind == "inspector")
        if show_all or start in expanded:
            pending_hidden = 0
            for index, frame, kind in run:
                if kind == "inspector":
                    pending_hidden += 1
                    continue
                if pending_hidden:
                    lines.append(Folded(index - pending_hidden, index, 0, pending_hidden))
                    pending_hidden = 0
                lines.append(Shown(index, frame, kind))
            if pending_hidden:
                lines.append(Folded(end - pending_hidden, end, 0, pending_hidden))
        else:
            lines.append(Folded(start, end, len(run) - hidden, hidden))
        run.clear()

    for index, frame in enumerate(frames):
        if index == cut_at:
            flush()
            lines.append(CUT)
        kind = classify(frame.file)
        if kind == "app" or (index == last and kind != "inspector"):
            flush()
            lines.append(Shown(index, frame, kind, innermost_app=index == target))
        else:
            run.append((index, frame, kind))
    flush()
    if cut_at is not None and cut_at >= len(frames):
        lines.append(CUT)
    return lines
