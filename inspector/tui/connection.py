"""Provides the connection's state as the screen shows it, and what each state allows.

Pure functions of the app's reactives (no Textual), so the header, the banners and the Task view
agree on what "disconnected" or "failed" means, and the rules are testable without a screen.
"""

from __future__ import annotations

from typing import Final, Literal

from inspector.protocol import Hello
from inspector.tui.poller import Observation

ConnectionState = Literal["connecting", "live", "paused", "disconnected", "failed", "offline"]
"""``disconnected``: gone for now, the poller retries; ``failed``: trying again cannot help (an
agent of another version, not an agent at all), the poller stopped; ``offline``: a saved file."""

STALE_STATES: Final = frozenset({"disconnected", "failed"})
"""States in which the data on screen is the last seen, not the target's present."""


def age_of_data(observation: Observation | None, now: float, *, live: bool) -> float | None:
    """Seconds since the data on screen was fetched (a saved file: since it was taken)."""
    if observation is None:
        return None
    if not live:
        return now - observation.snapshot.taken_at
    return now - observation.received_at


def why_not_cancel(
    *,
    live: bool,
    connection: ConnectionState,
    observation: Observation | None,
    hello: Hello | None,
) -> str | None:
    """Why a task cannot be cancelled now, or None when it can."""
    if not live:
        return "this is a saved snapshot"
    if connection in STALE_STATES:
        return "the target is disconnected"
    if observation is None:
        return "no data yet"
    if "cancel" not in observation.snapshot.capabilities:
        return "the target does not offer it"
    if observation.snapshot.health.read_only or (hello is not None and hello.read_only):
        return "the agent is read-only"
    return None
