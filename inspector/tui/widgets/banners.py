"""Provides the banners: the loop is blocked right now; the target went away."""

from __future__ import annotations

from textual.widgets import Static

from inspector.model import Snapshot
from inspector.tui import formatting
from inspector.tui.content import markup


def stall_sentence(snapshot: Snapshot, extra: float = 0.0) -> str | None:
    """ "Loop blocked 2.3 s at app.py:57 in time.sleep, serving GET /export", or None."""
    stall = snapshot.ongoing_stall
    if stall is None:
        return None
    text = f"Loop blocked {formatting.duration(stall.duration + extra)}"
    if stall.samples:
        frames = stall.samples[-1].frames
        frame = formatting.innermost_application_frame(frames)
        call = formatting.blocking_call(frames)
        if frame is not None:
            text += f" at {relative_location(frame.file, frame.line, snapshot.process.cwd)}"
        if call:
            text += f" in {call}"
    serving = stall.request_label or stall.background_label
    if serving:
        text += f", serving {serving}" if stall.request_label else f", in background job {serving}"
    elif stall.task_name:
        text += f", in task {stall.task_name}"
    return text


def relative_location(file: str, line: int, cwd: str | None) -> str:
    """app.py:57 when the file lies under the target's working directory."""
    if cwd and file.startswith(cwd.rstrip("/") + "/"):
        return f"{file[len(cwd.rstrip('/')) + 1 :]}:{line}"
    return f"{formatting.short_path(file)}:{line}"


class StallBanner(Static):
    """Shown only while the loop is blocked; counts up between snapshots."""

    def show_stall(self, snapshot: Snapshot | None, extra: float) -> None:
        sentence = stall_sentence(snapshot, extra) if snapshot is not None else None
        self.display = sentence is not None
        if sentence is not None:
            self.update(markup("[b]⚠ $sentence[/b]", sentence=sentence))


class ConnectionBanner(Static):
    """Shown while disconnected: the data on screen is the last seen."""

    def show_state(
        self, reason: str | None, retry_in: float | None, data_age: float | None
    ) -> None:
        self.display = reason is not None
        if reason is None:
            return
        retry = (
            f" Reconnecting every {formatting.duration(retry_in)}…" if retry_in is not None else ""
        )
        age = (
            f" Showing the last data, {formatting.duration(data_age)} old."
            if data_age is not None
            else ""
        )
        self.update(
            markup("[b]Disconnected:[/b] $reason.$age$retry", reason=reason, age=age, retry=retry)
        )
