"""Provides the Workers view: every worker of a `--workers N` server side by side."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.reactive import var
from textual.widgets import Static

from inspector.tui import formatting
from inspector.tui.messages import SwitchWorker
from inspector.tui.poller import Observation
from inspector.tui.switcher import WorkerRoster
from inspector.tui.views.base import View
from inspector.tui.widgets.cells import Cell, Tone
from inspector.tui.widgets.live_table import Column, LiveTable, Row
from inspector.tui.workers import WorkerStatus

COLUMNS = (
    Column("worker", "Worker", 8),
    Column("pid", "PID", 8, align="right"),
    Column("agent", "Agent", 17),
    Column("tasks", "Tasks", 7, align="right"),
    Column("lag", "Lag", 8, align="right"),
    Column("max", "Max lag", 8, align="right", min_width=90),
    Column("requests", "In flight", 9, align="right"),
    Column("findings", "Findings", 14),
    Column("cpu", "CPU", 5, align="right"),
    Column("rss", "RSS", 9, align="right"),
    Column("state", "State", 20, flex=True, min_width=110),
)
SEVERITY_TONE: dict[str, Tone] = {"critical": "error", "warning": "warning", "info": "accent"}


def worker_row(status: WorkerStatus, position: int, total: int, current: bool) -> Row:
    """One worker's row; `position` of `total` is what the header says too."""
    worker = status.worker
    mark = "▶ " if current else "  "
    label: Cell = (f"{mark}{position}/{total}", "bold") if current else f"{mark}{position}/{total}"
    if status.error is not None:
        return (
            label,
            str(worker.pid),
            worker.address,
            "—",
            "—",
            "—",
            "—",
            "—",
            _cpu(status.cpu_percent),
            formatting.size(status.rss),
            (status.error, "error"),
        )
    lag_tone: Tone = "error" if status.stalled else "success"
    if status.findings:
        findings: Cell = (
            f"{status.findings} {status.worst or ''}".strip(),
            SEVERITY_TONE.get(status.worst or "", "muted"),
        )
    else:
        findings = ("none", "muted")
    return (
        label,
        str(worker.pid),
        worker.address,
        f"{status.tasks:,}" if status.tasks is not None else "—",
        (formatting.duration(status.lag), lag_tone) if status.lag is not None else "—",
        formatting.duration(status.max_lag) if status.max_lag is not None else "—",
        str(status.in_flight) if status.in_flight is not None else "—",
        findings,
        _cpu(status.cpu_percent),
        formatting.size(status.rss),
        ("stalled", "error") if status.stalled else ("answering", "success"),
    )


def _cpu(value: float | None) -> str:
    return f"{value:.0f}%" if value is not None else "—"


class WorkersView(View):
    """Fed by the fleet poller, not by the current worker's observation; enter switches."""

    filter_placeholder = "pid, address, state, findings"

    roster: var[WorkerRoster | None] = var(None)
    """The workers, their last statuses and the one shown; bound to the app's state."""

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Every worker, polled every few seconds without stacks. Enter shows one in the "
            "other views; w switches to the next.",
            classes="hint",
        )
        yield LiveTable(COLUMNS, id="workers-table", empty_text="Looking for workers…")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#workers-table", LiveTable)

    def focus_main(self) -> None:
        self.table.focus()

    def show(self, observation: Observation) -> None:
        self.observation = observation
        self.stale = False  # its rows come from `show_workers`

    def watch_roster(self, roster: WorkerRoster | None) -> None:
        if roster is not None and self.children:
            current = roster.current.pid if roster.current is not None else None
            self.show_workers(roster.statuses, current)

    def show_workers(self, statuses: Sequence[WorkerStatus], current_pid: int | None) -> None:
        total = len(statuses)
        self.table.sync(
            (
                str(status.worker.pid),
                worker_row(status, position, total, status.worker.pid == current_pid),
            )
            for position, status in enumerate(statuses, start=1)
        )
        self.update_filter_summary()

    @on(LiveTable.Selected, "#workers-table")
    def switch(self, event: LiveTable.Selected) -> None:
        event.stop()
        self.post_message(SwitchWorker(int(event.key)))
