"""Provides the Tasks view: every asyncio task, filtered as you type, sorted, grouped."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from inspector.escape import printable
from inspector.model import Frame
from inspector.plurals import plural
from inspector.tui import formatting
from inspector.tui.filtering import filter_words, matches
from inspector.tui.messages import OpenTask
from inspector.tui.poller import Observation
from inspector.tui.task_rows import GROUP_PREFIX, SORTS, SortKey, TaskQuery, group_rows
from inspector.tui.views.base import View
from inspector.tui.widgets.filter_bar import FilterBar
from inspector.tui.widgets.live_table import Cell, Column, LiveTable

TASK_COLUMNS = (
    Column("id", "ID", 5, align="right"),
    Column("name", "Name", 16),
    Column("state", "State", 9),
    Column("age", "Age", 7, align="right"),
    Column("wait", "Waits for", 22, flex=True),
    Column("where", "Where", 24, grow=2),
    Column("request", "Request", 20, min_width=110, grow=1),
)
GROUP_COLUMNS = (
    Column("count", "Tasks", 7, align="right"),
    Column("coro", "Coroutine", 26, flex=True),
    Column("states", "States", 22),
    Column("age", "Oldest", 8, align="right"),
    Column("wait", "Usually waits for", 26, min_width=100),
)


class TasksView(View):
    """Every task of the loop. Rows are diffed by task id on each update."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "cycle_sort", "Sort"),
        Binding("O", "reverse_sort", "Reverse", show=False),
        Binding("g", "toggle_group", "Group"),
    ]
    requires = ("tasks",)
    missing_text = "Tasks"
    filter_placeholder = "#id, name, coroutine, file, wait, request"

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.query_state = TaskQuery()

    def make_filter_bar(self) -> FilterBar:
        return FilterBar(
            f"filter: {self.filter_placeholder}  (/)",
            always=True,
            input_id="task-filter",
            summary_id="task-summary",
        )

    def compose_body(self) -> ComposeResult:
        yield LiveTable(TASK_COLUMNS, id="task-table", empty_text="No tasks match.")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#task-table", LiveTable)

    def focus_main(self) -> None:
        self.table.focus()

    # --- rendering -----------------------------------------------------------------------

    def update_view(self, observation: Observation) -> None:
        """Filter and diff rows the poller built and sorted: ~20 ms for 10,000 tasks."""
        snapshot = observation.snapshot
        prepared = observation.task_rows
        query = self.query_state
        keys = prepared.orders.get(query.sort, [])
        if query.reverse:
            keys = keys[::-1]
        if query.text:
            words = filter_words(query.text)
            search = prepared.search
            keys = [key for key in keys if matches(search[key], words)]
        if query.grouped:
            tasks = [prepared.tasks[int(key)] for key in keys]
            self.table.sync(group_rows(tasks, query.sort, query.reverse))
            shown = self.table.row_count
        else:
            self.table.sync_keyed(keys, prepared.rows)
            shown = len(keys)
        self._update_summary(len(snapshot.tasks), len(keys), shown)

    def _update_summary(self, total: int, matched: int, shown: int) -> None:
        query = self.query_state
        arrow = "↑" if query.reverse else "↓"
        tasks = plural(total, "task")
        parts = [f"{matched:,} of {tasks}" if query.text else tasks]
        if query.grouped:
            parts.append(plural(shown, "coroutine"))
        parts.append(f"sort {query.sort} {arrow}")
        bar = self.filter_bar
        if bar is not None:
            bar.summary = " · ".join(parts)

    def update_filter_summary(self) -> None:
        """The summary is `update_view`'s, with the sort and grouping in it."""

    def _requery(self, **changes: object) -> None:
        previous = self.query_state
        self.query_state = replace(previous, **changes)  # type: ignore[arg-type]
        if self.query_state.grouped != previous.grouped:
            self.table.set_columns(GROUP_COLUMNS if self.query_state.grouped else TASK_COLUMNS)
        if self.observation is not None:
            self.update_view(self.observation)

    # --- actions -------------------------------------------------------------------------

    def apply_filter(self, text: str) -> None:
        """Tasks filter the rows the poller prepared (with their search text), not the table."""
        self._requery(text=text)

    def action_cycle_sort(self) -> None:
        index = SORTS.index(self.query_state.sort)
        self._requery(sort=SORTS[(index + 1) % len(SORTS)], reverse=False)

    def action_reverse_sort(self) -> None:
        self._requery(reverse=not self.query_state.reverse)

    def action_toggle_group(self) -> None:
        self._requery(grouped=not self.query_state.grouped)

    @on(LiveTable.HeaderClicked, "#task-table")
    def sort_by_column(self, event: LiveTable.HeaderClicked) -> None:
        sort: SortKey | None = {
            "name": "name",
            "coro": "name",
            "state": "state",
            "states": "state",
            "age": "age",
            "count": "state",
        }.get(event.column)  # type: ignore[assignment]
        if sort is not None:
            reverse = not self.query_state.reverse if sort == self.query_state.sort else False
            self._requery(sort=sort, reverse=reverse)

    @on(LiveTable.Selected, "#task-table")
    def open_row(self, event: LiveTable.Selected) -> None:
        event.stop()
        if event.key.startswith(GROUP_PREFIX):
            coro = printable(event.key[len(GROUP_PREFIX) :])  # as the rows show it
            self._requery(grouped=False)
            self.set_filter(coro)
            return
        self.post_message(OpenTask(int(event.key)))

    def selected_task_id(self) -> int | None:
        key = self.table.cursor_key
        if key is None or key.startswith(GROUP_PREFIX):
            return None
        return int(key)

    def current_location(self) -> Frame | None:
        task_id = self.selected_task_id()
        if task_id is None or self.observation is None:
            return None
        task = self.observation.task(task_id)
        if task is None:
            return None
        return formatting.innermost_application_frame(task.stack) or (
            task.stack[-1] if task.stack else None
        )

    def cells(self, key: str) -> tuple[Cell, ...] | None:
        return self.table.get_row(key)
