"""Provides the header: the target, the connection and the age of the data, and the vitals.

Its reactives are bound to the app's state (`data_bind` in the app's compose), so the header
redraws itself when the connection, the data, the interval or the shown worker change.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from typing import Final

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.reactive import var
from textual.widgets import Sparkline, Static

from inspector.model import ProcessInfo
from inspector.plurals import plural
from inspector.tui import formatting
from inspector.tui.connection import ConnectionState
from inspector.tui.content import markup, plain
from inspector.tui.poller import Observation
from inspector.tui.vitals import Vitals

STATE_MARKUP: Final[dict[ConnectionState, str]] = {
    "connecting": "[$text-warning]◌ connecting[/]",
    "live": "[$text-success]● live[/]",
    "paused": "[$text-warning]❚❚ paused[/]",
    "disconnected": "[b $text-error]✖ disconnected[/]",
    "failed": "[b $text-error]✖ stopped[/]",
    "offline": "[$text-accent]▣ saved snapshot[/]",
}


def command_line(process: ProcessInfo) -> str:
    argv = list(process.argv)
    if argv and argv[0].rsplit("/", 1)[-1].startswith("python"):
        argv[0] = "python"
    return shlex.join(argv) if argv else (process.app or "")


def python_version(python: str) -> str:
    """ "Python 3.11.9" whether the agent sent "3.11.9" or "CPython 3.11.9"."""
    if not python:
        return "Python ?"
    return python if python[0].isalpha() else f"Python {python}"


class TargetHeader(Vertical):
    """Three lines: who, what runs, how it is doing."""

    connection: var[ConnectionState] = var("connecting")
    """Whether the data is live, paused, stale, or from a saved file."""
    address: var[str] = var("")
    """What the user would type to reach the target again."""
    observation: var[Observation | None] = var(None)
    """The data on screen; None until the first snapshot."""
    data_age: var[float | None] = var(None)
    """Seconds since the data was fetched (a saved file: since it was taken)."""
    interval: var[float] = var(1.0)
    """Seconds between snapshots, shown while live."""
    worker_label: var[str | None] = var(None)
    """ "worker 2/4 (pid 4242)" when attached to a parent with workers: replaces the pid."""

    def compose(self) -> ComposeResult:
        yield Static("", id="target-line")
        yield Static("", id="target-info")
        with Horizontal(id="vitals"):
            yield Static("CPU —", id="cpu-label", classes="vital")
            yield Sparkline([], id="cpu-spark", classes="spark")
            yield Static("RSS —", id="rss-label", classes="vital")
            yield Sparkline([], id="rss-spark", classes="spark")
            yield Static("", id="process-counts", classes="vital")
            yield Static("lag —", id="lag-label", classes="vital")
            yield Sparkline([], id="lag-spark", classes="spark")

    def on_mount(self) -> None:
        self._show_target()
        self._show_lag()

    # Every part of the first two lines depends on several of these: each change redraws both.
    def watch_connection(self) -> None:
        self._show_target()

    watch_address = watch_data_age = watch_interval = watch_worker_label = watch_connection

    def watch_observation(self) -> None:
        self._show_target()
        self._show_lag()

    def _show_target(self) -> None:
        if not self.children:
            return  # not composed yet: on_mount draws it
        state, address, group = self.connection, self.address, self.worker_label
        badge = STATE_MARKUP[state]
        if self.observation is None:
            who = "[b]$group[/b] · $address" if group else "[b]$address[/b]"
            self.query_one("#target-line", Static).update(
                markup(
                    f"{badge}  {who}  [dim]waiting for the first snapshot[/dim]",
                    group=group or "",
                    address=address,
                )
            )
            self.query_one("#target-info", Static).update("")
            return
        snapshot = self.observation.snapshot
        process = snapshot.process
        if state == "offline":
            age = "taken " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.taken_at))
        else:
            data_age = self.data_age
            age = f"data {formatting.duration(data_age)} old" if data_age is not None else ""
        every = f" · every {formatting.duration(self.interval)}" if state == "live" else ""
        worker = f" · worker {process.worker}" if process.worker is not None else ""
        who = "[b]$group[/b]" if group else f"[b]pid {process.pid}[/b]{worker}"
        self.query_one("#target-line", Static).update(
            markup(
                f"{badge} {who} · [dim]$age{every}[/dim] · $command",
                group=group or "",
                age=age,
                command=command_line(process),
            )
        )
        loop = snapshot.loop.implementation if snapshot.loop else (process.loop or "?")
        uptime = (
            formatting.duration(snapshot.taken_at - process.started_at)
            if process.started_at
            else "—"
        )
        parts = [
            python_version(process.python),
            f"uvicorn {process.uvicorn or '?'}",
            f"loop {loop}",
            f"up {uptime}",
            plural(len(snapshot.tasks), "task"),
            address,
        ]
        self.query_one("#target-info", Static).update(plain(" · ".join(parts)))

    def _show_lag(self) -> None:
        if not self.children:
            return
        loop = self.observation.snapshot.loop if self.observation is not None else None
        label = self.query_one("#lag-label", Static)
        if loop is None:
            label.update("lag —")
            self.query_one("#lag-spark", Sparkline).data = []
            return
        tone = "$text-error" if loop.lag >= loop.stall_threshold else "$text-success"
        label.update(Content.from_markup(f"lag [{tone}]{formatting.duration(loop.lag)}[/]"))
        self.query_one("#lag-spark", Sparkline).data = [lag for _at, lag in loop.lag_series[-60:]]

    def show_vitals(
        self, vitals: Vitals | None, cpu: Sequence[float], rss: Sequence[float], reason: str
    ) -> None:
        """A stream rather than a state: the app pushes each reading with the curves so far."""
        if vitals is None:
            self.query_one("#cpu-label", Static).update(f"vitals: {reason}")
            self.query_one("#rss-label", Static).update("")
            self.query_one("#process-counts", Static).update("")
            self.set_class(True, "-no-vitals")
            return
        self.set_class(False, "-no-vitals")
        cpu_text = f"{vitals.cpu_percent:.0f}%" if vitals.cpu_percent is not None else "—"
        self.query_one("#cpu-label", Static).update(f"CPU {cpu_text}")
        self.query_one("#rss-label", Static).update(f"RSS {formatting.size(vitals.rss)}")
        counts = [
            f"thr {vitals.threads}" if vitals.threads is not None else "",
            f"files {vitals.open_files}" if vitals.open_files is not None else "",
            f"conn {vitals.connections}" if vitals.connections is not None else "",
        ]
        self.query_one("#process-counts", Static).update(" ".join(c for c in counts if c))
        # One point draws as a full bar, which reads as "maxed out": wait for a second one.
        self.query_one("#cpu-spark", Sparkline).data = list(cpu) if len(cpu) > 1 else []
        self.query_one("#rss-spark", Sparkline).data = list(rss) if len(rss) > 1 else []
