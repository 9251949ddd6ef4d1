"""Provides DetailPane: the pane under a list that shows the highlighted item's stack or
traceback, with a cursor on its frames that starts on the line to fix.

Folding library frames makes most stacks fit; a stall sampled at several places, or a short
terminal, can still put the marked line (▶, see `stack_text`) below the pane's bottom edge, so
the pane opens scrolled to it. With focus (tab, or a click), ↑ ↓ move the cursor from frame to
frame, and `e` and `c` act on the frame under it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeAlias

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from inspector.model import Frame
from inspector.tui.widgets.stack_text import DetailText, FoldId

MARK = "▶"
CURSOR_STYLE = "reverse"
"""The frame under the cursor while the pane has focus."""
RESTING_STYLE = "underline"
"""The frame under the cursor while the list above has focus: what `e` would open."""

Builder: TypeAlias = Callable[[frozenset[FoldId]], DetailText]
"""Draws a detail with these folded runs open."""


def marked_line(content: Content, width: int) -> int | None:
    """The screen line, at `width` cells, of the first line to fix; None if there is none."""
    for index, line in enumerate(content.wrap(max(1, width))):
        if line.plain.startswith(MARK):
            return index
    return None


class DetailPane(VerticalScroll, can_focus=True):
    """A scrolling Static (`detail_id` is the Static's id) with a cursor over the frames."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move_frame(-1)", "Previous frame", show=False),
        Binding("down,j", "move_frame(1)", "Next frame", show=False),
        Binding("enter", "open_fold", "Open", show=False),
    ]

    def __init__(self, detail_id: str) -> None:
        super().__init__(classes="detail")
        self.detail_id = detail_id
        self._shown: object = None
        self._builder: Builder | None = None
        self.expanded: frozenset[FoldId] = frozenset()
        """The folded runs opened with enter; closed again for another item."""
        self.text = DetailText()
        self.cursor: int | None = None
        """Index in `text.stops` of the frame or folded run under the cursor."""

    def compose(self) -> ComposeResult:
        yield Static("", id=self.detail_id)

    @property
    def current_frame(self) -> Frame | None:
        """The frame under the cursor (at first the line to fix), None when there is none."""
        if self.cursor is None or not 0 <= self.cursor < len(self.text.stops):
            return None
        stop = self.text.stops[self.cursor]
        return stop if isinstance(stop, Frame) else None

    def show(self, source: Builder | str, key: object = None) -> None:
        """Show the detail of item `key`, drawn by `source` (or plain text). A new item (or a
        new way of showing it) starts with every run folded and the cursor and the view on its
        line to fix; the same item, updated, keeps the reader's place and open runs."""
        if key != self._shown:
            self.expanded = frozenset()
        self._builder = source if callable(source) else None
        self.text = source(self.expanded) if callable(source) else DetailText().add(Content(source))
        if key != self._shown:
            self._shown = key
            self.cursor = self.text.target
            self.scroll_home(animate=False, immediate=True)
            if self.cursor is not None:
                self.call_after_refresh(self._reveal)
        elif self.cursor is not None and self.cursor >= len(self.text.stops):
            self.cursor = self.text.target
        self._draw()

    def _draw(self) -> None:
        style = CURSOR_STYLE if self.has_focus else RESTING_STYLE
        self.query_one(Static).update(self.text.content(self.cursor, style))

    def _line_spans(self) -> list[tuple[int, int, int | None]]:
        """(first screen line, line after, frame entry) of each line, at the pane's width."""
        width = max(1, self.scrollable_content_region.width)
        spans = []
        y = 0
        for line, entry in self.text.lines:
            height = max(1, len(line.wrap(width)))
            spans.append((y, y + height, entry))
            y += height
        return spans

    def _cursor_line(self) -> int | None:
        """The screen line where the cursor's frame starts."""
        if self.cursor is None:
            return None
        return next((top for top, _, entry in self._line_spans() if entry == self.cursor), None)

    def _reveal(self) -> None:
        """Scroll so the cursor's frame is in view, with a line of context above it."""
        line = self._cursor_line()
        if line is None:
            return
        height = self.scrollable_content_region.height
        top = round(self.scroll_y)
        if line < top or line >= top + height - 1:
            self.scroll_to(y=max(0, line - 2), animate=False, immediate=True)

    def action_open_fold(self) -> None:
        """enter on a folded run: show its frames (until another item, or `f`)."""
        if self.cursor is None or self._builder is None:
            return
        stop = self.text.stops[self.cursor]
        if isinstance(stop, Frame):
            return
        self.expanded = self.expanded ^ {stop}
        self.text = self._builder(self.expanded)
        self._draw()

    def action_move_frame(self, step: int) -> None:
        frames = len(self.text.stops)
        if not frames:
            (self.scroll_up if step < 0 else self.scroll_down)(animate=False)
            return
        start = self.cursor if self.cursor is not None else (-1 if step > 0 else frames)
        self.cursor = max(0, min(frames - 1, start + step))
        self._draw()
        self._reveal()

    def on_focus(self) -> None:
        self._draw()

    def on_blur(self) -> None:
        self._draw()

    async def _on_click(self, event: events.Click) -> None:
        """Focus the pane; a click on a frame puts the cursor on it."""
        self.focus()
        # From the screen position: the click may come up from the text inside.
        y = event.screen_y - self.content_region.y + round(self.scroll_y)
        entry = next((e for top, end, e in self._line_spans() if top <= y < end), None)
        if entry is not None:
            self.cursor = entry
            self._draw()
