"""Provides the banners: the loop is blocked right now; the target went away.

Both draw themselves from reactives the app binds to its state (`data_bind`).
"""

from __future__ import annotations

from textual.reactive import var
from textual.widgets import Static

from inspector.model import Snapshot
from inspector.tui import formatting
from inspector.tui.connection import STALE_STATES, ConnectionState
from inspector.tui.content import markup
from inspector.tui.poller import Observation


def stall_sentence(snapshot: Snapshot, extra: float = 0.0) -> str | None:
    """ "Loop blocked 2.3 s at app.py:57 in time.sleep, serving GET /export", or None."""
    stall = snapshot.ongoing_stall
    if stall is None:
        return None
    text = f"Loop blocked {formatting.duration(stall.duration + extra)}"
    if stall.samples:
        frames = stall.samples[-1].frames
        frame, call = formatting.stall_place(frames)
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
    """Shown only while the loop is blocked; counts up between snapshots while live."""

    observation: var[Observation | None] = var(None)
    connection: var[ConnectionState] = var("connecting")
    data_age: var[float | None] = var(None)
    """The block's duration grows by the data's age while the target is live."""

    def watch_observation(self) -> None:
        self._show()

    watch_connection = watch_data_age = watch_observation

    def _show(self) -> None:
        snapshot = self.observation.snapshot if self.observation is not None else None
        extra = self.data_age if self.connection == "live" and self.data_age else 0.0
        sentence = stall_sentence(snapshot, max(0.0, extra)) if snapshot is not None else None
        self.display = sentence is not None
        if sentence is not None:
            self.update(markup("[b]⚠ $sentence[/b]", sentence=sentence))


class ConnectionBanner(Static):
    """Shown while the target is away: the data on screen is the last seen. Says whether the
    inspector keeps trying, or stopped because trying again cannot help."""

    connection: var[ConnectionState] = var("connecting")
    disconnect_reason: var[str | None] = var(None)
    retry_in: var[float | None] = var(None)
    data_age: var[float | None] = var(None)

    def watch_connection(self) -> None:
        self._show()

    watch_disconnect_reason = watch_retry_in = watch_data_age = watch_connection

    def _show(self) -> None:
        reason = self.disconnect_reason
        failed = self.connection == "failed"
        self.display = self.connection in STALE_STATES and reason is not None
        self.set_class(failed, "-failed")
        if not self.display or reason is None:
            return
        age = (
            f" Showing the last data, {formatting.duration(self.data_age)} old."
            if self.data_age is not None
            else ""
        )
        if failed:
            self.update(
                markup(
                    "[b]Stopped:[/b] $reason.$age Not retrying: this will not change by waiting.",
                    reason=reason,
                    age=age,
                )
            )
            return
        retry = (
            f" Reconnecting every {formatting.duration(self.retry_in)}…"
            if self.retry_in is not None
            else ""
        )
        self.update(
            markup("[b]Disconnected:[/b] $reason.$age$retry", reason=reason, age=age, retry=retry)
        )
