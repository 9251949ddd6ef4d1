"""Provides DetailPane: the pane under a list that shows the highlighted item's stack or
traceback, scrolled so the line to fix is in view.

Folding library frames makes most stacks fit; a stall sampled at several places, or a short
terminal, can still put the marked line (▶, see `stack_text`) below the pane's bottom edge.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

MARK = "▶"


def marked_line(content: Content, width: int) -> int | None:
    """The screen line, at `width` cells, of the first line to fix; None if there is none."""
    for index, line in enumerate(content.wrap(max(1, width))):
        if line.plain.startswith(MARK):
            return index
    return None


class DetailPane(VerticalScroll):
    """A scrolling Static (`detail_id` is the Static's id) that keeps the ▶ line in view."""

    def __init__(self, detail_id: str) -> None:
        super().__init__(classes="detail")
        self.detail_id = detail_id
        self._shown: object = None

    def compose(self) -> ComposeResult:
        yield Static("", id=self.detail_id)

    def show(self, content: Content | str, key: object = None) -> None:
        """Show `content`, the detail of item `key`. A new item (or a new way of showing it)
        starts scrolled to its line to fix; the same item, updated, keeps the reader's place."""
        self.query_one(Static).update(content)
        if key == self._shown:
            return
        self._shown = key
        self.scroll_home(animate=False, immediate=True)
        if isinstance(content, Content) and MARK in content.plain:
            self.call_after_refresh(self._reveal, content)

    def _reveal(self, content: Content) -> None:
        line = marked_line(content, self.scrollable_content_region.width)
        if line is not None and line >= self.scrollable_content_region.height - 1:
            self.scroll_to(y=max(0, line - 2), animate=False, immediate=True)
