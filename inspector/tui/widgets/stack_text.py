"""Provides a stack or traceback as Content: application lines bright, library runs folded."""

from __future__ import annotations

from textual.content import Content

from inspector.model import ExceptionInfo, Frame, StackCut
from inspector.render.text import cut_position, left_out_note
from inspector.tui import formatting
from inspector.tui.content import Multiline, markup
from inspector.tui.frame_folds import CutMark, Folded, Shown, fold_frames

NEWLINE = Content("\n")


def stack_content(
    frames: tuple[Frame, ...], *, show_all: bool = False, cut: StackCut | None = None
) -> Content:
    """One line per frame plus its code, the line to fix marked ▶; unless `show_all`, each run
    of library frames folds into one dim line (`frame_folds`).

    `cut` (a task's `stack_cut`) puts "… 436 frames left out …" where the agent left frames
    out of a stack too deep to report whole; a library run is never folded across it.
    """
    lines: list[Content] = []
    at = cut_position(cut, len(frames))
    for line in fold_frames(frames, show_all=show_all, cut_at=at):
        if isinstance(line, CutMark):
            lines.append(markup("  [$text-warning]$note[/]", note=left_out_note(cut)))
        elif isinstance(line, Folded):
            lines.append(markup("  [dim]$label[/dim]", label=line.label()))
        else:
            lines.extend(_frame_lines(line))
    return NEWLINE.join(lines) if lines else Content.from_markup("  [dim](no frames)[/dim]")


def _frame_lines(line: Shown) -> list[Content]:
    frame = line.frame
    where = formatting.location(frame)
    if line.kind == "app":
        mark = "[b $text-accent]▶[/] " if line.innermost_app else "  "
        lines = [
            markup(f"{mark}[b]$where[/b] in [b]$function[/b]", where=where, function=frame.function)
        ]
    else:
        lines = [markup("  [dim]$where in $function[/dim]", where=where, function=frame.function)]
    if frame.code:
        template = (
            "      [$text-accent]$code[/]" if line.kind == "app" else "      [dim]$code[/dim]"
        )
        lines.append(markup(template, code=frame.code))
    return lines


def exception_content(error: ExceptionInfo, *, show_all: bool = False) -> Content:
    head = markup(
        "[b $text-error]$type[/]: $message", type=error.type, message=Multiline(error.message)
    )
    if not error.traceback:
        return NEWLINE.join([head, Content.from_markup("  [dim](no traceback)[/dim]")])
    return NEWLINE.join(
        [
            Content("Traceback (most recent call last):"),
            stack_content(error.traceback, show_all=show_all),
            head,
        ]
    )
