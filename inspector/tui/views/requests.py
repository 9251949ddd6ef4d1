"""Provides the Requests view: in flight (oldest first), recently finished, latency per route."""

from __future__ import annotations

from typing import ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from inspector.model import Frame, RequestInfo, RouteStats
from inspector.render.requests import request_detail_note
from inspector.tui import formatting
from inspector.tui.content import plain
from inspector.tui.messages import OpenTask, OpenThread
from inspector.tui.poller import Observation
from inspector.tui.views.base import View
from inspector.tui.widgets.live_table import Column, LiveTable, Row

IN_FLIGHT_COLUMNS = (
    Column("request", "Request", 24, flex=True, grow=1),
    Column("phase", "Phase", 10),
    Column("age", "Age", 7, align="right"),
    Column("task", "Task", 10),
    Column("thread", "Thread", 8, min_width=100),
    Column("client", "Client", 18, min_width=120),
)
RECENT_COLUMNS = (
    Column("request", "Request", 20, flex=True, grow=1),
    Column("status", "Status", 6, align="right"),
    Column("took", "Took", 7, align="right"),
    Column("error", "Error", 18, min_width=60),
)
ROUTE_COLUMNS = (
    Column("route", "Route", 18, flex=True),
    Column("count", "Count", 6, align="right"),
    Column("errors", "Err", 4, align="right"),
    Column("p50", "p50", 7, align="right"),
    Column("p95", "p95", 7, align="right"),
    Column("max", "max", 7, align="right", min_width=60),
)


def in_flight_row(request: RequestInfo, stuck_after: float, task_names: dict[int, str]) -> Row:
    age = request.duration or 0.0
    age_cell = (
        (formatting.age(age), "error" if age >= stuck_after * 4 else "warning")
        if age >= stuck_after
        else formatting.age(age)
    )
    phase = ("disconnected", "warning") if request.disconnected else request.phase
    return cast(
        Row,
        (
            f"{request.method} {request.path}",
            phase,
            age_cell,
            task_names.get(request.task_id, f"id {request.task_id}")
            if request.task_id is not None
            else "—",
            ", ".join(str(t) for t in request.thread_ids) or "—",
            request.client or "",
        ),
    )


def recent_row(request: RequestInfo) -> Row:
    status = str(request.status) if request.status is not None else "—"
    tone = (
        "error"
        if (request.status or 0) >= 500 or request.error
        else "warning"
        if (request.status or 0) >= 400
        else None
    )
    return cast(
        Row,
        (
            f"{request.method} {request.path}",
            (status, tone) if tone else status,
            formatting.duration(request.duration),
            (request.error or "", "error") if request.error else "",
        ),
    )


def route_row(route: RouteStats) -> Row:
    return cast(
        Row,
        (
            f"{route.method} {route.route}",
            str(route.count),
            (str(route.errors), "error") if route.errors else "0",
            formatting.duration(route.p50),
            (formatting.duration(route.p95), "warning")
            if route.p95 >= 1.0
            else formatting.duration(route.p95),
            formatting.duration(route.max),
        ),
    )


class RequestsView(View):
    """Enter on a request opens its task; `h` its worker thread."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_task", "Task", show=False),
        Binding("h", "open_thread", "Thread"),
    ]
    requires = ("requests",)
    missing_text = "Requests"
    filter_placeholder = "method, path, phase, task, client, status, error"

    def __init__(self, *, stuck_after: float = 5.0, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.stuck_after = stuck_after
        """Seconds after which a request in flight is marked slow (`attach --stuck-after`)."""

    def compose_body(self) -> ComposeResult:
        yield Static("In flight, oldest first", id="requests-title", classes="section-title")
        yield Static("", id="request-detail", classes="hint")
        yield LiveTable(IN_FLIGHT_COLUMNS, id="in-flight", empty_text="No request in flight.")
        with Horizontal(id="requests-lower"):
            with Vertical():
                yield Static("Recently finished, newest first", classes="section-title")
                yield LiveTable(RECENT_COLUMNS, id="recent", empty_text="None yet.")
            with Vertical():
                yield Static("Latency per route", classes="section-title")
                yield LiveTable(ROUTE_COLUMNS, id="routes", empty_text="No finished request yet.")

    @property
    def in_flight(self) -> LiveTable:
        return self.query_one("#in-flight", LiveTable)

    def focus_main(self) -> None:
        self.in_flight.focus()

    def update_view(self, observation: Observation) -> None:
        snapshot = observation.snapshot
        stuck_after = self.stuck_after
        short_id = observation.task_rows.short_id
        names = {
            task.id: f"{short_id(task.id)} {task.name}"
            for task in snapshot.tasks
            if task.request_id is not None
        }
        self.in_flight.sync(
            (str(r.id), in_flight_row(r, stuck_after, names))
            for r in sorted(snapshot.requests, key=lambda r: r.started_at)
        )
        self.query_one("#recent", LiveTable).sync(
            (str(r.id), recent_row(r)) for r in reversed(snapshot.recent_requests)
        )
        self.query_one("#routes", LiveTable).sync(
            (f"{r.method} {r.route}", route_row(r))
            for r in sorted(snapshot.routes, key=lambda r: -r.p95)
        )
        self.query_one("#requests-title", Static).update(
            f"In flight ({len(snapshot.requests)}), oldest first · Enter: its task · h: its thread"
        )
        note = request_detail_note(snapshot)
        detail = self.query_one("#request-detail", Static)
        detail.update(plain(note or ""))
        detail.display = note is not None

    def show_request(self, request_id: int) -> None:
        if not self.in_flight.move_to_key(str(request_id)):
            self.query_one("#recent", LiveTable).move_to_key(str(request_id))
        self.in_flight.focus()

    def _selected(self) -> RequestInfo | None:
        if self.observation is None:
            return None
        table = (
            self.in_flight
            if self.in_flight.has_focus or not self.query_one("#recent", LiveTable).has_focus
            else self.query_one("#recent", LiveTable)
        )
        key = table.cursor_key
        return self.observation.snapshot.request(int(key)) if key is not None else None

    @on(LiveTable.Selected)
    def open_selected(self, event: LiveTable.Selected) -> None:
        event.stop()
        self.action_open_task()

    def action_open_task(self) -> None:
        request = self._selected()
        if request is None:
            return
        if (
            request.task_id is not None
            and self.observation
            and self.observation.task(request.task_id)
        ):
            self.post_message(OpenTask(request.task_id))
        elif request.thread_ids:
            self.post_message(OpenThread(request.thread_ids[0]))
        else:
            self.notify("This request has no live task or thread.", severity="warning")

    def action_open_thread(self) -> None:
        request = self._selected()
        if request is not None and request.thread_ids:
            self.post_message(OpenThread(request.thread_ids[0]))
        elif request is not None:
            self.notify("This request runs on the event loop, not in a worker thread.")

    def selected_task_id(self) -> int | None:
        request = self._selected()
        return request.task_id if request is not None else None

    def current_location(self) -> Frame | None:
        request = self._selected()
        if request is None or request.task_id is None or self.observation is None:
            return None
        task = self.observation.task(request.task_id)
        return formatting.innermost_application_frame(task.stack) if task else None
