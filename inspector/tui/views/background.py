"""Provides the Background view: each request's background jobs, their state and errors."""

from __future__ import annotations

from typing import cast

from textual import on
from textual.app import ComposeResult
from textual.widgets import Static

from inspector.model import BackgroundJob, Frame, Snapshot
from inspector.tui import formatting
from inspector.tui.content import markup
from inspector.tui.poller import Observation
from inspector.tui.views.base import View
from inspector.tui.widgets.detail_pane import DetailPane
from inspector.tui.widgets.live_table import Column, LiveTable, Row
from inspector.tui.widgets.stack_text import DetailText, FoldId

STATE_TONES = {
    "failed": "error",
    "dropped": "error",
    "skipped": "warning",
    "cancelled": "warning",
    "running": "accent",
    "queued": "muted",
    "done": "success",
}
COLUMNS = (
    Column("request", "Request", 20, grow=1),
    Column("function", "Function", 18, flex=True),
    Column("state", "State", 8),
    Column("queued", "Queued", 7, align="right"),
    Column("took", "Took", 7, align="right"),
    Column("site", "Added at", 18, min_width=110, grow=2),
)


def job_key(job: BackgroundJob) -> str:
    return f"{job.id}@{job.queued_at}"


def request_text(job: BackgroundJob, snapshot: Snapshot) -> str:
    if job.request_id is None:
        return "—"
    request = snapshot.request(job.request_id)
    return f"{request.method} {request.path}" if request else f"request #{job.request_id}"


def job_row(job: BackgroundJob, snapshot: Snapshot) -> Row:
    took = job.finished_at - job.started_at if job.finished_at and job.started_at else None
    tone = STATE_TONES.get(job.state)
    return cast(
        Row,
        (
            request_text(job, snapshot),
            job.function,
            (job.state, tone) if tone else job.state,
            formatting.age(snapshot.taken_at - job.queued_at),
            formatting.duration(took) if took is not None else "—",
            formatting.location(job.call_site),
        ),
    )


def job_content(
    job: BackgroundJob,
    snapshot: Snapshot,
    *,
    show_all: bool = False,
    expanded: frozenset[FoldId] = frozenset(),
) -> DetailText:
    tone = {"error": "$text-error", "warning": "$text-warning", "success": "$text-success"}.get(
        STATE_TONES.get(job.state, ""), "$foreground"
    )
    text = DetailText(expanded).add(
        markup(
            f"[b]$function[/b] [{tone}]$state[/] · $request"
            + (" · ran in $dispatch" if job.dispatch else ""),
            function=job.function,
            state=job.state,
            request=request_text(job, snapshot),
            dispatch=job.dispatch or "",
        )
    )
    if job.call_site is not None:
        text.add(
            markup(
                "[b]Added at[/b] $where" + ("  [dim]$code[/dim]" if job.call_site.code else ""),
                where=formatting.location(job.call_site),
                code=job.call_site.code or "",
            )
        )
    if job.reason:
        text.add(markup("[b]Why[/b] $reason", reason=job.reason))
    if job.flagged:
        text.add(markup("[$text-warning]⚠ $flagged[/]", flagged=job.flagged))
    if job.error is not None:
        text.add_exception(job.error, show_all=show_all)
    return text


class BackgroundView(View):
    """Jobs seen since attaching (kept after they leave the target's own history)."""

    requires = ("background",)
    missing_text = "Background jobs"
    filter_placeholder = "request, function, state, file"

    def compose_body(self) -> ComposeResult:
        yield Static("", id="background-title", classes="section-title")
        yield LiveTable(COLUMNS, id="background-table", empty_text="No background job seen yet.")
        yield DetailPane("background-detail")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#background-table", LiveTable)

    def focus_main(self) -> None:
        self.table.focus()

    def _jobs(self) -> dict[str, BackgroundJob]:
        if self.observation is None:
            return {}
        return {job_key(job): job for job in self.observation.events.background}

    def update_view(self, observation: Observation) -> None:
        snapshot = observation.snapshot
        troubled = {
            j.request_id
            for j in observation.events.background
            if j.state in ("failed", "dropped", "skipped")
        }
        jobs = sorted(
            observation.events.background,
            key=lambda j: (j.request_id not in troubled, -(j.request_id or 0), j.queued_at),
        )
        self.table.sync((job_key(job), job_row(job, snapshot)) for job in jobs)
        bad = sum(1 for job in jobs if job.state in ("failed", "dropped", "skipped"))
        self.query_one("#background-title", Static).update(
            f"{len(jobs)} background jobs, by request: troubled requests first, then newest"
            + (f" · {bad} failed, dropped or skipped" if bad else "")
        )
        self._show_detail()

    @on(LiveTable.Highlighted, "#background-table")
    def _show_detail(self) -> None:
        job = self._jobs().get(self.table.cursor_key or "")
        detail = self.query_one(DetailPane)
        if job is None or self.observation is None:
            detail.show("")
            return
        show_all = self.all_frames
        snapshot = self.observation.snapshot
        detail.show(
            lambda opened: job_content(job, snapshot, show_all=show_all, expanded=opened),
            (self.table.cursor_key, show_all),
        )

    def refresh_frames(self) -> None:
        if self.is_mounted:
            self._show_detail()

    def current_location(self) -> Frame | None:
        job = self._jobs().get(self.table.cursor_key or "")
        if job is None:
            return None
        chosen = self.query_one(DetailPane).current_frame
        if chosen is not None:
            return chosen
        if job.error is not None:
            frame = formatting.innermost_application_frame(job.error.traceback)
            if frame is not None:
                return frame
        return job.call_site
