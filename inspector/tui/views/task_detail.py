"""Provides the Task detail view: one task's await chain, what it waits for, where it began."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.reactive import var
from textual.widgets import Static

from inspector.model import Frame, Snapshot, StackCut, TaskInfo
from inspector.render.text import cut_position, left_out_note
from inspector.tui import formatting
from inspector.tui.content import markup, plain
from inspector.tui.messages import CopyLocation, OpenRequest
from inspector.tui.poller import Observation
from inspector.tui.views.base import View
from inspector.tui.widgets.links import LinkedText
from inspector.tui.widgets.live_table import Column, LiveTable, Row

FRAME_COLUMNS = (
    Column("n", "#", 3, align="right"),
    Column("where", "Where", 30),
    Column("function", "Function", 20),
    Column("code", "Code", 20, flex=True),
)
COMMA = Content(", ")


def task_link(task_id: int, snapshot: Snapshot | None) -> Content:
    task = snapshot.task(task_id) if snapshot is not None else None
    label = task.name if task else f"task {task_id}"
    return markup(f"[@click=open_task({task_id})]$label[/]", label=label)


def describe_task(task: TaskInfo, snapshot: Snapshot, gone: bool) -> Content:
    """The facts about a task, with links to related tasks and requests."""
    state_tone = {"failed": "$text-error", "running": "$text-accent", "cancelled": "$text-muted"}
    tone = state_tone.get(task.state, "$text-success" if task.state == "done" else "$foreground")
    lines = [
        markup(
            f"[b]$name[/b]  [dim]#{task.id}[/dim]  [{tone}]$state[/]  "
            f"age {formatting.duration(task.age)}  [dim]$coro[/dim]",
            name=task.name,
            state=task.state,
            coro=task.coro,
        )
    ]
    if gone:
        lines.append(
            Content.from_markup(
                "[$text-warning]This task is gone from the target (it finished or was "
                "cancelled); showing the last data seen.[/]"
            )
        )
    if task.request_id is not None:
        request = snapshot.request(task.request_id)
        label = f"{request.method} {request.path}" if request else f"request {task.request_id}"
        if request is not None and request.route and request.route != request.path:
            label += f" ({request.route})"
        lines.append(
            markup(
                f"[b]Serving[/b]    [@click=open_request({task.request_id})]$label[/]",
                label=label,
            )
        )
    wait = task.waiting_on
    if wait is not None:
        parts = [plain(wait.description or wait.kind)]
        if wait.holder_task_ids:
            holders = COMMA.join(task_link(t, snapshot) for t in wait.holder_task_ids)
            parts.append(Content("holder: ") + holders)
        if wait.awaited_task_ids:
            awaited = COMMA.join(task_link(t, snapshot) for t in wait.awaited_task_ids[:8])
            more = len(wait.awaited_task_ids) - 8
            parts.append(Content("awaits ") + awaited + (f" and {more} more" if more > 0 else ""))
        if wait.thread_id is not None:
            parts.append(
                Content.from_markup(
                    f"in [@click=open_thread({wait.thread_id})]thread {wait.thread_id}[/]"
                )
            )
        if wait.waiters is not None:
            parts.append(Content(f"{wait.waiters} waiting"))
        if wait.remaining is not None:
            parts.append(Content(f"{formatting.duration(wait.remaining)} left"))
        lines.append(Content.from_markup("[b]Waits for[/b]  ") + Content(" · ").join(parts))
    if task.created_at is not None:
        created = task.created_at
        lines.append(
            markup(
                "[b]Created at[/b] $where in $function"
                + ("  [dim]$code[/dim]" if created.code else ""),
                where=formatting.location(created),
                function=created.function,
                code=created.code or "",
            )
        )
    if task.parent_task_id is not None:
        lines.append(
            Content.from_markup("[b]Parent[/b]     ") + task_link(task.parent_task_id, snapshot)
        )
    if task.exception:
        lines.append(
            markup("[b]Exception[/b]  [$text-error]$exception[/]", exception=task.exception)
        )
    return Content("\n").join(lines)


CUT_KEY = "cut"
"""The row that says how many frames the agent left out of a chain too deep to report whole."""


def frame_rows(frames: tuple[Frame, ...], cut: StackCut | None = None) -> list[tuple[str, Row]]:
    rows: list[tuple[str, Row]] = []
    at = cut_position(cut, len(frames))
    for index, frame in enumerate(frames):
        if index == at:
            rows.append((CUT_KEY, ("", "", (left_out_note(cut), "warning"), "")))
        application = formatting.is_application_frame(frame)
        where = formatting.location(frame)
        rows.append(
            (
                str(index),
                (
                    str(index + 1),
                    (where, "bold") if application else (where, "muted"),
                    (frame.function, "bold") if application else (frame.function, "muted"),
                    (frame.code or "", "accent") if application else (frame.code or "", "muted"),
                ),
            )
        )
    if at is not None and at >= len(frames):
        rows.append((CUT_KEY, ("", "", (left_out_note(cut), "warning"), "")))
    return rows


class TaskDetailView(View):
    """The task chosen in another view. Keeps showing its last state if it disappears."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "open_request", "Request")]
    requires = ("tasks",)
    missing_text = "Tasks"

    cancel_unavailable: var[str | None] = var(None)
    """Why the target cannot cancel a task now (None: it can); bound to the app's state."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.task_id: int | None = None
        self._last_seen: TaskInfo | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="task-facts-scroll"):
            yield LinkedText("Choose a task in [b]Tasks[/b] (2) and press Enter.", id="task-facts")
        yield Static("Await chain, outermost first", classes="section-title")
        yield LiveTable(FRAME_COLUMNS, id="frame-table", empty_text="No stack (the task finished).")
        yield Static("", id="task-actions", classes="hint")

    @property
    def frames(self) -> LiveTable:
        return self.query_one("#frame-table", LiveTable)

    def focus_main(self) -> None:
        self.frames.focus()

    def show_task(self, task_id: int) -> None:
        if task_id != self.task_id:
            self.task_id = task_id
            self._last_seen = None
            self.frames.sync([])
            self.frames.cursor_row = 0
        if self.observation is not None:
            self.update_view(self.observation)

    def update_view(self, observation: Observation) -> None:
        if self.task_id is None:
            return
        snapshot = observation.snapshot
        task = observation.task(self.task_id)
        gone = task is None
        if task is not None:
            self._last_seen = task
        shown = task or self._last_seen
        facts = self.query_one("#task-facts", LinkedText)
        if shown is None:
            facts.update(f"Task #{self.task_id} is not in the latest snapshot.")
            self.frames.sync([])
            self.query_one("#task-actions", Static).update("")
            return
        facts.update(describe_task(shown, snapshot, gone))
        first_sync = self.frames.row_count == 0
        self.frames.sync(frame_rows(shown.stack, shown.stack_cut))
        if first_sync and shown.stack:
            # Start on the line to fix: the innermost application frame.
            app_frame = formatting.innermost_application_frame(shown.stack)
            index = shown.stack.index(app_frame) if app_frame else len(shown.stack) - 1
            self.frames.move_to_key(str(index))
        self.query_one("#task-actions", Static).update(self._actions_hint(gone))

    def watch_cancel_unavailable(self) -> None:
        """Say at once when cancelling becomes (un)available: a disconnect brings no snapshot."""
        if self.is_mounted and self.observation is not None and not self.stale:
            self.show(self.observation)

    def _actions_hint(self, gone: bool) -> str:
        refusal = self.cancel_unavailable
        if gone:
            cancel = "the task is gone"
        elif refusal:
            cancel = f"cancel unavailable: {refusal}"
        else:
            cancel = "[b]x[/b] cancel this task"
        return (
            f"{cancel} · [b]c[/b] copy the highlighted line · [b]e[/b] open it in your editor"
            " · [b]r[/b] its request"
        )

    def selected_task_id(self) -> int | None:
        if self.task_id is None or self.observation is None:
            return None
        return self.task_id if self.observation.task(self.task_id) is not None else None

    def current_location(self) -> Frame | None:
        shown = self._last_seen
        key = self.frames.cursor_key
        if shown is None or key is None or key == CUT_KEY or int(key) >= len(shown.stack):
            return None
        return shown.stack[int(key)]

    def action_open_request(self) -> None:
        if self._last_seen is not None and self._last_seen.request_id is not None:
            self.post_message(OpenRequest(self._last_seen.request_id))

    @on(LiveTable.Selected, "#frame-table")
    def copy_frame(self, event: LiveTable.Selected) -> None:
        event.stop()
        self.post_message(CopyLocation(self.current_location()))
