"""Provides a stack or traceback as Content: application lines bright, library lines dim."""

from __future__ import annotations

from textual.content import Content

from inspector.model import ExceptionInfo, Frame, StackCut
from inspector.render.text import cut_position, left_out_note
from inspector.tui import formatting
from inspector.tui.content import Multiline, markup

NEWLINE = Content("\n")


def stack_content(
    frames: tuple[Frame, ...], *, collapse_library: bool = True, cut: StackCut | None = None
) -> Content:
    """One line per frame plus its code; runs of library frames fold into one dim line.

    `cut` (a task's `stack_cut`) puts "… 436 frames left out …" where the agent left frames
    out of a stack too deep to report whole; a library run is never folded across it.
    """
    lines: list[Content] = []
    hidden = 0
    at = cut_position(cut, len(frames))
    for index, frame in enumerate(frames):
        if index == at:
            if hidden:
                lines.append(_hidden_frames(hidden))
                hidden = 0
            lines.append(_left_out(cut))
        application = formatting.is_application_frame(frame)
        last = index == len(frames) - 1
        if collapse_library and not application and not last:
            hidden += 1
            continue
        if hidden:
            lines.append(_hidden_frames(hidden))
            hidden = 0
        where = formatting.location(frame)
        if application:
            lines.append(
                markup("  [b]$where[/b] in [b]$function[/b]", where=where, function=frame.function)
            )
        else:
            lines.append(
                markup("  [dim]$where in $function[/dim]", where=where, function=frame.function)
            )
        if frame.code:
            template = "      [$text-accent]$code[/]" if application else "      [dim]$code[/dim]"
            lines.append(markup(template, code=frame.code))
    if hidden:
        lines.append(_hidden_frames(hidden))
    if at is not None and at == len(frames):
        lines.append(_left_out(cut))
    return NEWLINE.join(lines) if lines else Content.from_markup("  [dim](no frames)[/dim]")


def _hidden_frames(count: int) -> Content:
    return Content.from_markup(f"  [dim]… {count} library frame{'s' if count > 1 else ''}[/dim]")


def _left_out(cut: StackCut | None) -> Content:
    return markup("  [$text-warning]$note[/]", note=left_out_note(cut))


def exception_content(error: ExceptionInfo) -> Content:
    head = markup(
        "[b $text-error]$type[/]: $message", type=error.type, message=Multiline(error.message)
    )
    if not error.traceback:
        return NEWLINE.join([head, Content.from_markup("  [dim](no traceback)[/dim]")])
    return NEWLINE.join(
        [
            Content("Traceback (most recent call last):"),
            stack_content(error.traceback, collapse_library=False),
            head,
        ]
    )
