"""Provides the worker switcher's decisions: which worker of a `--workers N` server the views
show, how the header names it, and what to do when workers come and go.

Textual-free: a `WorkerRoster` is an immutable value the app keeps in a reactive (the header,
the Workers view and the tab labels follow it), and `WorkerRoster.follow` returns what the app
should do about a new round of statuses instead of doing it, so the rules are plain functions
to test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from inspector.tui.workers import Worker, WorkerGroup, WorkerStatus

Severity = Literal["information", "warning", "error"]


@dataclass(frozen=True)
class Notice:
    """Something to tell the person, as `App.notify` takes it (shown as plain text)."""

    message: str
    title: str = ""
    severity: Severity = "information"


@dataclass(frozen=True)
class Follow:
    """What the app does after a round of statuses: show `switch_to` (None: stay on the current
    worker) and say `notice`. A switch without a notice announces the worker it shows."""

    switch_to: Worker | None = None
    notice: Notice | None = None


@dataclass(frozen=True)
class WorkerRoster:
    """The workers of one parent, their last statuses, and the one the main views show."""

    parent_pid: int
    workers: tuple[Worker, ...]
    statuses: tuple[WorkerStatus, ...] = ()
    """The fleet poller's last round; empty until its first."""
    current: Worker | None = None

    @classmethod
    def start(cls, group: WorkerGroup, address: str) -> WorkerRoster:
        """The roster as the screen opens: the workers found so far, the one at `address` shown."""
        workers = tuple(group.initial)
        current = next((w for w in workers if w.address == address), None)
        return cls(group.parent_pid, workers, current=current)

    def label(self) -> str:
        """ "worker 2/4 (pid 4242)": what the header shows instead of the pid."""
        current = self.current
        if current is None:
            return f"parent pid {self.parent_pid} · no worker"
        position = self._index(current)
        where = f"{position + 1}/{len(self.workers)}" if position is not None else "gone"
        return f"worker {where} (pid {current.pid})"

    def find(self, pid: int) -> Worker | None:
        return next((w for w in self.workers if w.pid == pid), None)

    def showing(self, worker: Worker) -> WorkerRoster:
        return replace(self, current=worker)

    def step(self, step: int) -> Worker | Notice:
        """The worker `step` places after the current one (w, W), or why there is none."""
        if not self.workers:
            return Notice("No worker to switch to yet.", severity="warning")
        index = self._index(self.current) if self.current is not None else None
        if len(self.workers) == 1 and index == 0:
            return Notice("This is the only worker.")
        start = index if index is not None else -1
        return self.workers[(start + step) % len(self.workers)]

    def follow(self, statuses: Sequence[WorkerStatus]) -> tuple[WorkerRoster, Follow]:
        """Take a new round of statuses: the dead workers leave, new ones join; when the shown
        worker is gone, show its replacement on the same port (a restart, which the poller
        reconnects to by itself) or else the first worker that answers."""
        roster = replace(self, workers=tuple(s.worker for s in statuses), statuses=tuple(statuses))
        current = self.current
        if current is None:
            first = roster.workers[0] if roster.workers else None
            return roster, Follow(switch_to=first)
        if roster.find(current.pid) is not None:
            return roster, Follow()
        restarted = next((w for w in roster.workers if w.address == current.address), None)
        if restarted is not None:
            notice = Notice(
                f"Worker pid {current.pid} is gone; pid {restarted.pid} replaced it on "
                f"{restarted.address}.",
                title="Worker restarted",
                severity="warning",
            )
            return roster.showing(restarted), Follow(notice=notice)
        answering = [s.worker for s in statuses if s.error is None]
        candidates = answering or list(roster.workers)
        if not candidates:
            notice = Notice(
                f"Worker pid {current.pid} is gone and no other worker is running yet.",
                title="Worker gone",
                severity="error",
            )
            return roster, Follow(notice=notice)
        replacement = candidates[0]
        notice = Notice(
            f"Worker pid {current.pid} is gone; now showing pid {replacement.pid}.",
            title="Worker gone",
            severity="warning",
        )
        return roster, Follow(switch_to=replacement, notice=notice)

    def _index(self, worker: Worker) -> int | None:
        return next((i for i, w in enumerate(self.workers) if w.pid == worker.pid), None)
