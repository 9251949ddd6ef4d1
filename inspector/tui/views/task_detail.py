"""Provides the Task detail view: one task's await chain, what it waits for, where it began."""

from __future__ import annotations

from collections.abc import Collection
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
from inspector.tui.frame_folds import CutMark, Folded, fold_frames, innermost_app_index
from inspector.tui.messages import CopyLocation, OpenRequest
from inspector.tui.poller import Observation
from inspector.tui.views.base import View
from inspector.tui.widgets.links import LinkedText
from inspector.tui.widgets.live_table import Column, LiveTable, Row

FRAME_COLUMNS = (
    Column("n", "#", 4, align="right"),
    Column("where", "Where", 30, grow=2),
    Column("function", "Function", 20, grow=1),
    Column("code", "Code", 20, flex=True),
)
COMMA = Content(", ")


def task_link(task_id: int, snapshot: Snapshot | None) -> Content:
    task = snapshot.task(task_id) if snapshot is not None else None
    label = task.name if task else f"task {task_id}"
    return markup(f"[@click=open_task({task_id})]$label[/]", label=label)


def describe_task(task: TaskInfo, snapshot: Snapshot, gone: bool, short_id: str = "") -> Content:
    """The facts about a task, with links to related tasks and requests."""
    state_tone = {"failed": "$text-error", "running": "$text-accent", "cancelled": "$text-muted"}
    tone = state_tone.get(task.state, "$text-success" if task.state == "done" else "$foreground")
    lines = [
        markup(
            "[b]$name[/b]  "
            + (f"[b $text-accent]{short_id}[/]  " if short_id else "")
            + f"[dim]id {task.id}[/dim]  [{tone}]$state[/]  "
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
        if wait.waiters is not None and "waiting" not in (wait.description or ""):
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


def frame_rows(
    frames: tuple[Frame, ...],
    cut: StackCut | None = None,
    *,
    show_all: bool = False,
    expanded: Collection[int] = (),
) -> list[tuple[str, Row]]:
    """The chain's rows: each frame keyed by its index, each folded run by `Folded.key`."""
    rows: list[tuple[str, Row]] = []
    at = cut_position(cut, len(frames))
    for line in fold_frames(frames, show_all=show_all, expanded=expanded, cut_at=at):
        if isinstance(line, CutMark):
            rows.append((CUT_KEY, ("", "", (left_out_note(cut), "warning"), "")))
        elif isinstance(line, Folded):
            rows.append((line.key, ((line.label(), "muted"),)))
        else:
            frame = line.frame
            where = formatting.location(frame)
            if line.kind == "app":
                rows.append(
                    (
                        str(line.index),
                        (
                            (f"▶{line.index + 1}", "accent")
                            if line.innermost_app
                            else str(line.index + 1),
                            (where, "bold"),
                            (frame.function, "bold"),
                            (frame.code or "", "accent"),
                        ),
                    )
                )
            else:
                rows.append(
                    (
                        str(line.index),
                        (
                            str(line.index + 1),
                            (where, "muted"),
                            (frame.function, "muted"),
                            (frame.code or "", "muted"),
                        ),
                    )
                )
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
        self.expanded: set[int] = set()
        """The folded runs opened with enter (by their first frame's index)."""

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
            self.expanded.clear()
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
        short_id = observation.task_rows.short_id(shown.id)
        facts.update(describe_task(shown, snapshot, gone, short_id))
        first_sync = self.frames.row_count == 0
        self.frames.sync(
            frame_rows(
                shown.stack, shown.stack_cut, show_all=self.all_frames, expanded=self.expanded
            )
        )
        if first_sync and shown.stack:
            # Start on the line to fix: the innermost application frame.
            index = innermost_app_index(shown.stack)
            self.frames.move_to_key(str(index if index is not None else len(shown.stack) - 1))
        self.query_one("#task-actions", Static).update(self._actions_hint(gone))

    def watch_all_frames(self) -> None:
        self.expanded.clear()  # f folds every run again, the ones opened with enter too
        self.refresh_frames()

    def refresh_frames(self) -> None:
        """`f` folded or unfolded the library frames: keep the cursor on its frame."""
        if self.is_mounted and self.observation is not None and not self.stale:
            self.update_view(self.observation)

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
        frames = "fold library frames" if self.all_frames else "all frames"
        return f"{cancel} · [b]c[/b] copy · [b]e[/b] edit · [b]r[/b] request · [b]f[/b] {frames}"

    def selected_task_id(self) -> int | None:
        if self.task_id is None or self.observation is None:
            return None
        return self.task_id if self.observation.task(self.task_id) is not None else None

    def current_location(self) -> Frame | None:
        shown = self._last_seen
        key = self.frames.cursor_key
        if shown is None or key is None or not key.isdigit() or int(key) >= len(shown.stack):
            return None
        return shown.stack[int(key)]

    def action_open_request(self) -> None:
        if self._last_seen is not None and self._last_seen.request_id is not None:
            self.post_message(OpenRequest(self._last_seen.request_id))

    @on(LiveTable.Selected, "#frame-table")
    def select_frame(self, event: LiveTable.Selected) -> None:
        """Enter on a folded run opens it; on a frame, copies its file:line."""
        event.stop()
        if event.key.startswith("fold:"):
            start = int(event.key.removeprefix("fold:"))
            self.expanded.symmetric_difference_update({start})
            self.refresh_frames()
            if not self.frames.move_to_key(str(start)):
                self.frames.move_to_key(event.key)
            return
        self.post_message(CopyLocation(self.current_location()))
