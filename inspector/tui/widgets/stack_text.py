"""Provides stacks and tracebacks as text: application lines bright, library runs folded, and
which line shows which frame (`DetailText`), for the detail panes' frame cursor."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.content import Content

from inspector.model import ExceptionInfo, Frame, StackCut
from inspector.render.text import cut_position, left_out_note
from inspector.tui import formatting
from inspector.tui.content import Multiline, markup
from inspector.tui.frame_folds import CutMark, Folded, Shown, fold_frames

NEWLINE = Content("\n")
NO_FRAMES = Content.from_markup("  [dim](no frames)[/dim]")


FoldId = tuple[int, int]
"""A folded run in a DetailText: (which of its stacks, the run's first frame)."""


@dataclass
class DetailText:
    """A detail pane's text, line by line, with what each line shows: the pane moves a cursor
    over those stops (frames and folded runs); `e` and `c` act on the frame under it, `enter`
    opens the run under it (`expanded`)."""

    expanded: frozenset[FoldId] = frozenset()
    """The folded runs shown open."""
    lines: list[tuple[Content, int | None]] = field(default_factory=list)
    """Each line (or block of lines) and the index in `stops` of what it shows."""
    stops: list[Frame | FoldId] = field(default_factory=list)
    target: int | None = None
    """The first line to fix (▶): where the cursor starts."""
    stacks: int = 0
    """How many stacks were added: each numbers its folded runs apart."""

    def add(self, *contents: Content) -> DetailText:
        """Lines that show no frame."""
        self.lines.extend((content, None) for content in contents)
        return self

    def add_stack(
        self, frames: tuple[Frame, ...], *, show_all: bool = False, cut: StackCut | None = None
    ) -> DetailText:
        """One line per frame plus its code, the line to fix marked ▶; unless `show_all`, each
        run of library frames folds into one dim line (`frame_folds`).

        `cut` (a task's `stack_cut`) puts "… 436 frames left out …" where the agent left frames
        out of a stack too deep to report whole; a library run is never folded across it.
        """
        stack = self.stacks
        self.stacks += 1
        opened = {start for number, start in self.expanded if number == stack}
        at = cut_position(cut, len(frames))
        lines = fold_frames(frames, show_all=show_all, expanded=opened, cut_at=at)
        if not lines:
            return self.add(NO_FRAMES)
        for line in lines:
            if isinstance(line, CutMark):
                self.add(markup("  [$text-warning]$note[/]", note=left_out_note(cut)))
            elif isinstance(line, Folded):
                label = markup("  [dim]$label[/dim]", label=line.label())
                if line.library:  # a run only of the inspector's frames has nothing to open
                    self.lines.append((label, len(self.stops)))
                    self.stops.append((stack, line.start))
                else:
                    self.add(label)
            else:
                entry = len(self.stops)
                self.stops.append(line.frame)
                if line.innermost_app and self.target is None:
                    self.target = entry
                self.lines.extend((content, entry) for content in _frame_lines(line))
        return self

    def add_exception(self, error: ExceptionInfo, *, show_all: bool = False) -> DetailText:
        """The traceback as Python prints it, most recent call last, then the exception."""
        head = markup(
            "[b $text-error]$type[/]: $message", type=error.type, message=Multiline(error.message)
        )
        if not error.traceback:
            return self.add(head, Content.from_markup("  [dim](no traceback)[/dim]"))
        self.add(Content("Traceback (most recent call last):"))
        return self.add_stack(error.traceback, show_all=show_all).add(head)

    def content(self, cursor: int | None = None, style: str = "reverse") -> Content:
        """The text, the lines of stop `cursor` in `style`."""
        return NEWLINE.join(
            line.stylize(style) if cursor is not None and entry == cursor else line
            for line, entry in self.lines
        )

    @property
    def plain(self) -> str:
        return self.content().plain


def stack_content(
    frames: tuple[Frame, ...], *, show_all: bool = False, cut: StackCut | None = None
) -> Content:
    """A stack as `DetailText.add_stack` draws it, for text with no cursor."""
    return DetailText().add_stack(frames, show_all=show_all, cut=cut).content()


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
