"""Provides the Threads view: the threadpool gauge, who holds its tokens, each thread's stack."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Static

from inspector.model import Frame, Snapshot, ThreadInfo, ThreadpoolState
from inspector.tui import formatting
from inspector.tui.content import markup
from inspector.tui.messages import OpenTask
from inspector.tui.poller import Observation
from inspector.tui.views.base import View
from inspector.tui.widgets.detail_pane import DetailPane
from inspector.tui.widgets.live_table import Column, LiveTable, Row
from inspector.tui.widgets.stack_text import DetailText, FoldId

THREAD_COLUMNS = (
    Column("name", "Thread", 20),
    Column("pool", "Pool", 6),
    Column("busy", "Busy", 5),
    Column("request", "Request", 22, grow=1),
    Column("where", "Where", 22, flex=True, min_width=100, grow=2),
)
BORROWER_COLUMNS = (
    Column("task", "Task", 12),
    Column("request", "Request", 20, flex=True, grow=1),
    Column("held", "Held", 7, align="right"),
)


def gauge_markup(pool: ThreadpoolState, width: int) -> str:
    """A bar of borrowed tokens, red when full and others wait."""
    bar_width = max(10, min(40, width - 50))
    filled = round(bar_width * pool.borrowed / pool.total) if pool.total else 0
    full = pool.total and pool.borrowed >= pool.total
    tone = "$text-error" if full and pool.waiting else "$text-warning" if full else "$text-success"
    bar = f"[{tone}]{'█' * filled}[/][dim]{'░' * (bar_width - filled)}[/dim]"
    waiting = f" · [b {tone}]{pool.waiting} waiting[/]" if pool.waiting else " · none waiting"
    executor = ""
    if pool.executor_max_workers is not None:
        executor = f" · executor {pool.executor_threads}/{pool.executor_max_workers}"
        if pool.executor_queued:
            executor += f" ({pool.executor_queued} queued)"
    return f"[b]Threadpool[/b] {bar} {pool.borrowed}/{pool.total} borrowed{waiting}{executor}"


def thread_row(thread: ThreadInfo, snapshot: Snapshot) -> Row:
    frame = formatting.innermost_application_frame(thread.stack) or (
        thread.stack[-1] if thread.stack else None
    )
    request = snapshot.request(thread.request_id) if thread.request_id is not None else None
    return (
        thread.name,
        thread.pool,
        ("yes", "warning") if thread.busy else ("idle", "muted"),
        formatting.request_label(request),
        f"{formatting.location(frame, 1)} {frame.function}" if frame else "—",
    )


class ThreadsView(View):
    """Enter on a borrower opens its task; the highlighted thread's stack shows below."""

    requires = ("threadpool",)
    missing_text = "Threads and the threadpool"
    filter_placeholder = "thread, pool, request, file, task"

    def compose_body(self) -> ComposeResult:
        yield Static("", id="threadpool-gauge")
        with Horizontal(id="threads-tables"):
            with Vertical(id="threads-left"):
                yield Static("Threads: the loop, then busy workers", classes="section-title")
                yield LiveTable(
                    THREAD_COLUMNS, id="threads-table", empty_text="No thread reported."
                )
            with Vertical(id="threads-right"):
                yield Static("Holding a threadpool token", classes="section-title")
                yield LiveTable(BORROWER_COLUMNS, id="borrowers-table", empty_text="Nobody.")
        yield DetailPane("thread-stack")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#threads-table", LiveTable)

    def focus_main(self) -> None:
        self.table.focus()

    def update_view(self, observation: Observation) -> None:
        snapshot = observation.snapshot
        gauge = self.query_one("#threadpool-gauge", Static)
        if snapshot.threadpool is not None:
            gauge.update(Content.from_markup(gauge_markup(snapshot.threadpool, self.size.width)))
        else:
            gauge.update("Threadpool: not reported.")
        pool_order = {"loop": 0, "anyio": 1, "executor": 2, "other": 3, "agent": 4}
        threads = sorted(
            snapshot.threads, key=lambda t: (pool_order.get(t.pool, 5), not t.busy, t.name, t.id)
        )
        self.table.sync((str(t.id), thread_row(t, snapshot)) for t in threads)
        borrowers = snapshot.threadpool.borrowers if snapshot.threadpool else ()
        rows = []
        for borrower in sorted(borrowers, key=lambda b: b.since or 0):
            task = observation.task(borrower.task_id)
            request = (
                snapshot.request(borrower.request_id) if borrower.request_id is not None else None
            )
            held = snapshot.taken_at - borrower.since if borrower.since is not None else None
            rows.append(
                (
                    str(borrower.task_id),
                    (
                        f"{observation.task_rows.short_id(task.id)} {task.name}"
                        if task
                        else f"id {borrower.task_id}",
                        formatting.request_label(request),
                        formatting.age(held),
                    ),
                )
            )
        self.query_one("#borrowers-table", LiveTable).sync(rows)
        self._show_stack()

    def show_thread(self, thread_id: int) -> None:
        self.table.move_to_key(str(thread_id))
        self.table.focus()

    def _thread(self) -> ThreadInfo | None:
        if self.observation is None:
            return None
        key = self.table.cursor_key
        return next((t for t in self.observation.snapshot.threads if str(t.id) == key), None)

    @on(LiveTable.Highlighted, "#threads-table")
    def _show_stack(self) -> None:
        thread = self._thread()
        target = self.query_one(DetailPane)
        if thread is None:
            target.show("")
            return
        head = markup(
            f"[b]$name[/b] [dim]({thread.id}, $pool)[/dim]", name=thread.name, pool=thread.pool
        )
        show_all = self.all_frames

        def draw(expanded: frozenset[FoldId]) -> DetailText:
            return DetailText(expanded).add(head).add_stack(thread.stack, show_all=show_all)

        target.show(draw, (thread.id, show_all))

    @on(LiveTable.Selected, "#borrowers-table")
    def open_borrower(self, event: LiveTable.Selected) -> None:
        event.stop()
        self.post_message(OpenTask(int(event.key)))

    def refresh_frames(self) -> None:
        if self.is_mounted:
            self._show_stack()

    def current_location(self) -> Frame | None:
        thread = self._thread()
        if thread is None:
            return None
        return self.query_one(DetailPane).current_frame or (
            formatting.innermost_application_frame(thread.stack)
        )
