"""Provides the Exceptions view: every exception nobody saw, with its traceback."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.widgets import Static

from inspector.model import ExceptionEvent, Frame
from inspector.plurals import plural
from inspector.tui import formatting
from inspector.tui.content import markup
from inspector.tui.poller import Observation
from inspector.tui.views.base import View
from inspector.tui.widgets.detail_pane import DetailPane
from inspector.tui.widgets.live_table import Column, LiveTable, Row
from inspector.tui.widgets.stack_text import DetailText, FoldId

KIND_TEXT = {
    "task-exception-unretrieved": "task failed, never awaited",
    "coroutine-never-awaited": "coroutine never awaited",
    "background-failed": "background job failed",
    "logged-error": "logged error",
    "exception-swallowed": "swallowed",
    "task-destroyed-pending": "task destroyed pending",
}
COLUMNS = (
    Column("when", "When", 7, align="right"),
    Column("kind", "Kind", 22, min_width=100),
    Column("error", "Exception", 28, flex=True),
    Column("where", "Where", 18, grow=2),
    Column("context", "In", 18, min_width=90, grow=1),
    Column("count", "×", 3, align="right"),
)


def event_key(event: ExceptionEvent) -> str:
    return f"{event.id}@{event.at}"


def event_row(event: ExceptionEvent, now: float) -> Row:
    context = event.request_label or event.task_name or ""
    return (
        formatting.age(now - event.at),
        KIND_TEXT.get(event.kind, event.kind),
        (f"{event.error.type}: {event.error.message}", "error"),
        formatting.location(event.location),
        context,
        str(event.count),
    )


def event_content(
    event: ExceptionEvent, *, show_all: bool = False, expanded: frozenset[FoldId] = frozenset()
) -> DetailText:
    text = DetailText(expanded).add(
        markup(
            "[b]$kind[/b]"
            + (" · $request" if event.request_label else "")
            + (" · $task" if event.task_name else "")
            + (f" · seen {event.count} times" if event.count > 1 else ""),
            kind=KIND_TEXT.get(event.kind, event.kind),
            request=event.request_label or "",
            task=event.task_name or "",
        )
    )
    if event.location is not None:
        text.add(
            markup(
                "[b]At[/b] $where in $function"
                + ("  [dim]$code[/dim]" if event.location.code else ""),
                where=formatting.location(event.location),
                function=event.location.function,
                code=event.location.code or "",
            )
        )
    return text.add_exception(event.error, show_all=show_all)


def exceptions_title(events: Sequence[ExceptionEvent]) -> str:
    """ "3 exceptions nobody saw (2 distinct), newest first"."""
    total = sum(event.count for event in events)
    return f"{plural(total, 'exception')} nobody saw ({len(events)} distinct), newest first"


class ExceptionsView(View):
    """Newest first; kept after the target's own bounded history forgets them."""

    requires = ("exceptions",)
    missing_text = "Unseen exceptions"
    filter_placeholder = "kind, exception, message, file, request, task"

    def compose_body(self) -> ComposeResult:
        yield Static("", id="exceptions-title", classes="section-title")
        yield LiveTable(COLUMNS, id="exceptions-table", empty_text="No unseen exception so far.")
        yield DetailPane("exception-detail")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#exceptions-table", LiveTable)

    def focus_main(self) -> None:
        self.table.focus()

    def _events(self) -> dict[str, ExceptionEvent]:
        if self.observation is None:
            return {}
        return {event_key(event): event for event in self.observation.events.exceptions}

    def update_view(self, observation: Observation) -> None:
        now = observation.snapshot.taken_at
        events = sorted(observation.events.exceptions, key=lambda e: -e.at)
        self.table.sync((event_key(e), event_row(e, now)) for e in events)
        self.query_one("#exceptions-title", Static).update(exceptions_title(events))
        self._show_detail()

    @on(LiveTable.Highlighted, "#exceptions-table")
    def _show_detail(self) -> None:
        event = self._events().get(self.table.cursor_key or "")
        show_all = self.all_frames
        self.query_one(DetailPane).show(
            (lambda opened: event_content(event, show_all=show_all, expanded=opened))
            if event is not None
            else "",
            (self.table.cursor_key, show_all),
        )

    def refresh_frames(self) -> None:
        if self.is_mounted:
            self._show_detail()

    def current_location(self) -> Frame | None:
        """The frame under the detail's cursor (the line to fix at first), else where the
        exception was seen."""
        event = self._events().get(self.table.cursor_key or "")
        if event is None:
            return None
        return self.query_one(DetailPane).current_frame or event.location
