"""Provides the markup for a stack or traceback: application lines bright, library lines dim."""

from __future__ import annotations

from textual.markup import escape

from inspector.model import ExceptionInfo, Frame
from inspector.tui import formatting


def stack_markup(frames: tuple[Frame, ...], *, collapse_library: bool = True) -> str:
    """One line per frame plus its code; runs of library frames fold into one dim line."""
    lines: list[str] = []
    hidden = 0
    for index, frame in enumerate(frames):
        application = formatting.is_application_frame(frame)
        last = index == len(frames) - 1
        if collapse_library and not application and not last:
            hidden += 1
            continue
        if hidden:
            lines.append(f"  [dim]… {hidden} library frame{'s' if hidden > 1 else ''}[/dim]")
            hidden = 0
        where = escape(formatting.location(frame))
        function = escape(frame.function)
        if application:
            lines.append(f"  [b]{where}[/b] in [b]{function}[/b]")
        else:
            lines.append(f"  [dim]{where} in {function}[/dim]")
        if frame.code:
            code = escape(frame.code)
            lines.append(
                f"      [$text-accent]{code}[/]" if application else f"      [dim]{code}[/dim]"
            )
    if hidden:
        lines.append(f"  [dim]… {hidden} library frame{'s' if hidden > 1 else ''}[/dim]")
    return "\n".join(lines) if lines else "  [dim](no frames)[/dim]"


def exception_markup(error: ExceptionInfo) -> str:
    head = f"[b $text-error]{escape(error.type)}[/]: {escape(error.message)}"
    if not error.traceback:
        return head + "\n  [dim](no traceback)[/dim]"
    return (
        "Traceback (most recent call last):\n"
        + stack_markup(error.traceback, collapse_library=False)
        + "\n"
        + head
    )
