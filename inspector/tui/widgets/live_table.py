"""Provides LiveTable: a keyed, virtual table that streams updates without losing its place.

Why not `DataTable`: with 10,000 rows, `DataTable.remove_row` rebuilds its index on every call
(100 removals took 650 ms), and every added row is measured cell by cell (a first fill took
830 ms). A live task list adds and removes hundreds of rows a second. LiveTable keeps rows in a
dict plus an order list, renders only the visible lines (Line API) at column widths derived from
its own width, and diffs each update by row key: new keys are added, changed rows are
re-rendered, vanished keys removed; the cursor stays on the same key and the row under it stays
at the same place on screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from inspector.escape import printable
from inspector.tui.filtering import filter_words, matches, searchable
from inspector.tui.widgets.cells import TONES, Cell, Row, Tone

__all__ = ["Cell", "Column", "LiveTable", "Row", "SyncStats", "Tone"]

FLEX_FLOOR = 14
"""The flex column lends room to the columns that `grow` down to this width, no further."""


@dataclass(frozen=True)
class Column:
    """One column: `width` cells at least; wider, up to its longest text, when the table has
    room (columns with the higher `grow` first); `flex` takes what is left after that."""

    key: str
    label: str
    width: int = 10
    flex: bool = False
    align: Literal["left", "right"] = "left"
    min_width: int = 0
    """Hide the column while the table is narrower than this (80-column terminals)."""
    grow: int = 0
    """Which columns widen to their text first when there is room for some only: the ones
    that lead to the line to fix (locations: 2, requests: 1)."""


@dataclass(frozen=True)
class SyncStats:
    """What one `sync` changed: the work an update costs is proportional to these."""

    added: int
    updated: int
    removed: int
    reordered: bool


class TableMessage(Message):
    """A message from one LiveTable; `control` lets `@on(..., "#id")` pick the table."""

    def __init__(self, table: LiveTable) -> None:
        super().__init__()
        self.table = table

    @property
    def control(self) -> LiveTable:
        return self.table


class LiveTable(ScrollView, can_focus=True):
    """A table of keyed rows, updated in place by `sync`. A row of a single cell is a note
    ("… 17 library frames"): drawn across the columns from the second on, measured by none.

    | Class | Description |
    | :- | :- |
    | `live-table--header` | The header line. |
    | `live-table--cursor` | The highlighted row while the table has focus. |
    | `live-table--cursor-blurred` | The highlighted row while it does not. |
    | `live-table--error` … `live-table--bold` | The tones a cell can ask for. |
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "live-table--header",
        "live-table--cursor",
        "live-table--cursor-blurred",
        *(f"live-table--{tone}" for tone in TONES),
    }

    DEFAULT_CSS = """
    LiveTable {
        overflow-x: hidden;
        overflow-y: auto;
        height: 1fr;
        background: $surface;
    }
    LiveTable > .live-table--header { text-style: bold; color: $text-muted; background: $panel; }
    LiveTable > .live-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
    }
    LiveTable > .live-table--cursor-blurred { background: $block-cursor-blurred-background; }
    LiveTable > .live-table--error { color: $text-error; }
    LiveTable > .live-table--warning { color: $text-warning; }
    LiveTable > .live-table--success { color: $text-success; }
    LiveTable > .live-table--muted { color: $text-muted; }
    LiveTable > .live-table--accent { color: $text-accent; }
    LiveTable > .live-table--bold { text-style: bold; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=False, repaint=False)
    """Index of the highlighted row in the current order."""

    class Highlighted(TableMessage):
        """The cursor moved to another row (or its row changed key)."""

        def __init__(self, table: LiveTable, key: str | None) -> None:
            super().__init__(table)
            self.key = key

    class Selected(TableMessage):
        """Enter (or a double click) on a row."""

        def __init__(self, table: LiveTable, key: str) -> None:
            super().__init__(table)
            self.key = key

    class HeaderClicked(TableMessage):
        """A click on a column's header: views sort by it."""

        def __init__(self, table: LiveTable, column: str) -> None:
            super().__init__(table)
            self.column = column

    def __init__(
        self,
        columns: Sequence[Column] = (),
        *,
        empty_text: str = "",
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's own name
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._columns: tuple[Column, ...] = tuple(columns)
        self._rows: dict[str, Row] = {}
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._strips: LRUCache[tuple[str, int], tuple[Row, Strip]] = LRUCache(2048)
        self._last_key: str | None = None
        self.empty_text = empty_text
        self._words: list[str] = []
        self._given: tuple[list[str], Mapping[str, Row]] = ([], {})
        """The rows of the last sync before filtering: a new filter re-reads them."""
        self._search: dict[str, tuple[Row, str]] = {}
        self._natural: list[int] = [0] * len(self._columns)
        """The widest text seen in each column: what it needs for nothing to be cut."""

    # --- data ------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        """Rows shown (those the filter lets through)."""
        return len(self._order)

    @property
    def total_count(self) -> int:
        """Rows given by the last sync, before the filter."""
        return len(self._given[0])

    @property
    def filtered(self) -> bool:
        return bool(self._words)

    def set_filter(self, text: str) -> None:
        """Show only the rows whose text has every word of `text` (`/` in a view)."""
        words = filter_words(text)
        if words != self._words:
            self._words = words
            self.sync_keyed(*self._given)

    @property
    def keys(self) -> list[str]:
        """Row keys in display order (a copy)."""
        return list(self._order)

    @property
    def cursor_key(self) -> str | None:
        if 0 <= self.cursor_row < len(self._order):
            return self._order[self.cursor_row]
        return None

    def get_row(self, key: str) -> Row | None:
        return self._rows.get(key)

    def set_columns(self, columns: Sequence[Column]) -> None:
        self._columns = tuple(columns)
        self._natural = [0] * len(self._columns)
        for row in self._rows.values():
            self._measure(row)
        self._strips.clear()
        self.refresh()

    def _measure(self, row: Row) -> bool:
        """Widen the columns `row` needs wider; True if one changed. (A note row spans the
        columns: it widens none.)"""
        natural = self._natural
        changed = False
        if len(row) == 1 and len(natural) > 1:
            return False
        for index, cell in enumerate(row[: len(natural)]):
            text = cell if isinstance(cell, str) else cell[0]
            length = len(text)
            if length > natural[index] or (length * 2 > natural[index] and not text.isascii()):
                length = cell_len(printable(text))
                if length > natural[index]:
                    natural[index] = length
                    changed = True
        return changed

    def sync(self, rows: Iterable[tuple[str, Row]]) -> SyncStats:
        """Show exactly `rows`, in this order, touching only what changed."""
        order: list[str] = []
        by_key: dict[str, Row] = {}
        for key, cells in rows:
            order.append(key)
            by_key[key] = cells
        return self.sync_keyed(order, by_key)

    def sync_keyed(self, order: list[str], rows: Mapping[str, Row]) -> SyncStats:
        """Show the rows of `order` (keys into `rows`), in that order, touching only what changed.

        The form for big tables: no (key, row) pair is built per row.
        """
        self._given = (order, rows)
        if self._words:
            order = [key for key in order if matches(self._text_of(key, rows[key]), self._words)]
        old_rows = self._rows
        cursor_key = self.cursor_key
        cursor_screen_y = self.cursor_row - round(self.scroll_y)
        new_rows: dict[str, Row] = {}
        added = updated = 0
        widened = False
        for key in order:
            cells = rows[key]
            previous = old_rows.get(key)
            if previous is None:
                added += 1
                widened = self._measure(cells) or widened
            elif previous is not cells and previous != cells:
                updated += 1
                widened = self._measure(cells) or widened
            else:
                cells = previous  # keep the cached strip valid
            new_rows[key] = cells
        if widened:
            self._strips.clear()
        order = list(order)
        removed = len(old_rows) - (len(order) - added)
        reordered = order != self._order
        self._rows = new_rows
        if reordered:
            self._order = order
            self._index = {key: index for index, key in enumerate(order)}
        if added or removed or reordered:
            self.virtual_size = Size(self._content_width(), len(order) + 1)
        self._restore_cursor(cursor_key, cursor_screen_y)
        if added or updated or removed or reordered or widened:
            self.refresh()
        return SyncStats(added, updated, max(removed, 0), reordered)

    def _text_of(self, key: str, row: Row) -> str:
        """The row's searchable text, kept while the row object stays the same."""
        cached = self._search.get(key)
        if cached is not None and cached[0] is row:
            return cached[1]
        if len(self._search) > 4 * max(1024, len(self._given[0])):
            self._search.clear()
        text = searchable(row)
        self._search[key] = (row, text)
        return text

    def move_to_key(self, key: str) -> bool:
        """Put the cursor on `key` (scrolling it into view); False if the key is absent."""
        index = self._index.get(key)
        if index is None:
            return False
        self.cursor_row = index
        self._scroll_cursor_into_view()
        return True

    def _restore_cursor(self, cursor_key: str | None, cursor_screen_y: int) -> None:
        if not self._order:
            self.cursor_row = 0
            self._announce()
            return
        index = self._index.get(cursor_key) if cursor_key is not None else None
        if index is None:
            self.cursor_row = min(self.cursor_row, len(self._order) - 1)
        elif index != self.cursor_row:
            self.cursor_row = index
            if 0 <= cursor_screen_y < self._visible_rows():
                self.scroll_to(y=max(0, index - cursor_screen_y), animate=False, immediate=True)
        self._announce()

    def _announce(self) -> None:
        key = self.cursor_key
        if key != self._last_key:
            self._last_key = key
            self.post_message(self.Highlighted(self, key))

    # --- cursor ----------------------------------------------------------------------------

    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh()
        self._announce()

    def _visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        top = round(self.scroll_y)
        visible = self._visible_rows()
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False, immediate=True)

    def _move(self, delta: int) -> None:
        if not self._order:
            return
        self.cursor_row = max(0, min(len(self._order) - 1, self.cursor_row + delta))
        self._scroll_cursor_into_view()

    def action_cursor_up(self) -> None:
        self._move(-1)

    def action_cursor_down(self) -> None:
        self._move(1)

    def action_page_up(self) -> None:
        self._move(-self._visible_rows())

    def action_page_down(self) -> None:
        self._move(self._visible_rows())

    def action_first(self) -> None:
        self._move(-len(self._order))

    def action_last(self) -> None:
        self._move(len(self._order))

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            column = self._column_at(offset.x)
            if column is not None:
                self.post_message(self.HeaderClicked(self, column))
            return
        index = round(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self._order):
            self.cursor_row = index
            if event.chain >= 2:
                self.action_select()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # --- layout and rendering --------------------------------------------------------------

    def on_resize(self) -> None:
        self._strips.clear()
        self.virtual_size = Size(self._content_width(), len(self._order) + 1)

    def _content_width(self) -> int:
        return max(1, self.scrollable_content_region.width)

    def _layout(self, width: int) -> list[tuple[int, Column, int]]:
        """(cell index, column, width) of each visible column at this table width.

        Each column gets its `width`, less if all its text is shorter. Then the columns whose
        text is longer widen to it, the highest `grow` first: those with a `grow` may take room
        from the `flex` column (down to `FLEX_FLOOR`), the others only what is spare. The flex
        column takes what is left (shrinking to 8 when nothing is), so the table fills its width.
        """
        visible = [(i, c) for i, c in enumerate(self._columns) if width >= c.min_width]
        natural = [self._natural[i] if i < len(self._natural) else 0 for i, _ in visible]
        # A column whose every text is shorter than its width gives the rest to the others.
        widths = [
            max(cell_len(column.label), min(column.width, need))
            if need and not column.flex
            else column.width
            for (_, column), need in zip(visible, natural, strict=True)
        ]
        flex = next((p for p, (_, column) in enumerate(visible) if column.flex), None)
        spare = width - (sum(widths) + len(widths) + 1)
        lendable = max(0, widths[flex] - FLEX_FLOOR) if flex is not None else 0
        by_priority = sorted(range(len(visible)), key=lambda p: -visible[p][1].grow)
        for position in by_priority:
            if position == flex:
                continue
            room = spare + (lendable if visible[position][1].grow else 0)
            wanted = min(room, natural[position] - widths[position])
            if wanted > 0:
                widths[position] += wanted
                spare -= wanted
        if flex is not None:
            widths[flex] = max(min(8, visible[flex][1].width), widths[flex] + spare)
        return [(index, column, w) for (index, column), w in zip(visible, widths, strict=True)]

    def _column_at(self, x: int) -> str | None:
        position = 1
        for _index, column, width in self._layout(self._content_width()):
            if position <= x < position + width + 1:
                return column.key
            position += width + 1
        return None

    def render_line(self, y: int) -> Strip:
        width = self._content_width()
        base = self.rich_style
        if y == 0:
            header = self.get_component_rich_style("live-table--header")
            cells: Row = tuple(column.label for column in self._columns)
            return self._render_cells(cells, width, base + header, header_line=True)
        index = round(self.scroll_y) + y - 1
        if index >= len(self._order):
            empty = "Nothing matches the filter." if self._words and self._given[0] else None
            if index == 0 and (empty or self.empty_text):
                muted = self.get_component_rich_style("live-table--muted")
                text = set_cell_size(f" {empty or self.empty_text}", width)
                return Strip([Segment(text, base + muted)], width)
            return Strip.blank(width, base)
        key = self._order[index]
        cells = self._rows[key]
        if index == self.cursor_row:
            name = "live-table--cursor" if self.has_focus else "live-table--cursor-blurred"
            return self._render_cells(
                cells, width, base, overlay=self.get_component_rich_style(name)
            )
        cached = self._strips.get((key, width))
        if cached is not None and cached[0] is cells:
            return cached[1]
        strip = self._render_cells(cells, width, base)
        self._strips[(key, width)] = (cells, strip)
        return strip

    def _render_cells(
        self,
        cells: Row,
        width: int,
        style: Style,
        *,
        overlay: Style | None = None,
        header_line: bool = False,
    ) -> Strip:
        if len(cells) == 1 and len(self._columns) > 1 and not header_line:
            return self._render_note(cells[0], width, style, overlay)
        segments: list[Segment] = [Segment(" ", style + overlay if overlay else style)]
        for index, column, column_width in self._layout(width):
            cell = cells[index] if index < len(cells) else ""
            text, tone = (cell, None) if isinstance(cell, str) else cell
            cell_style = style
            if tone is not None and not header_line:
                cell_style = style + self.get_component_rich_style(f"live-table--{tone}")
            if overlay is not None:
                cell_style = cell_style + overlay
            segments.append(Segment(_fit(text, column_width, column.align), cell_style))
            segments.append(Segment(" ", style + overlay if overlay else style))
        used = sum(segment.cell_length for segment in segments)
        if used < width:
            segments.append(Segment(" " * (width - used), style + overlay if overlay else style))
        return Strip(segments).crop(0, width)

    def _render_note(self, cell: Cell, width: int, style: Style, overlay: Style | None) -> Strip:
        """A row of one cell: a note across the row from the second column on."""
        text, tone = (cell, None) if isinstance(cell, str) else cell
        layout = self._layout(width)
        indent = 1 + (layout[0][2] + 1 if len(layout) > 1 else 0)
        note_style = style + self.get_component_rich_style(f"live-table--{tone}") if tone else style
        if overlay is not None:
            style, note_style = style + overlay, note_style + overlay
        return Strip(
            [
                Segment(" " * indent, style),
                Segment(_fit(text, max(1, width - indent - 1), "left"), note_style),
                Segment(" ", style),
            ]
        ).crop(0, width)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()


def _fit(text: str, width: int, align: str) -> str:
    """Pad or cut `text` to exactly `width` cells, marking a cut with an ellipsis.

    Cells hold the target's names, paths and messages as they came: escaped here, once per
    drawn line (clean text costs one `isprintable` call), so no table can forget it.
    """
    text = printable(text)
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
    if align == "right":
        return " " * (width - length) + text
    return text + " " * (width - length)
