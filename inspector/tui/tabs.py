"""Provides the tabs: which views exist, in which order, and the counts their labels carry.

Textual-free, so the app's compose, its number keys, the command palette and the tests read the
same list, and a label ("4 Requests 12", "4 Req 12" below 100 columns) is a plain function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from inspector.tui import formatting
from inspector.tui.poller import Observation

NARROW_BELOW: Final = 100
"""Columns below which tabs use their short titles, so all eight fit in 80."""


@dataclass(frozen=True)
class Tab:
    id: str
    title: str
    short_title: str
    """The title below `NARROW_BELOW` columns."""


TABS: Final = (
    Tab("findings", "Findings", "Find"),
    Tab("tasks", "Tasks", "Tasks"),
    Tab("task", "Task", "Task"),
    Tab("requests", "Requests", "Req"),
    Tab("background", "Background", "Bg"),
    Tab("threads", "Threads", "Thr"),
    Tab("stalls", "Stalls", "Stalls"),
    Tab("exceptions", "Exceptions", "Exc"),
)
WORKERS_TAB: Final = Tab("workers", "Workers", "Wrk")
"""The ninth tab, present only when attached to a parent with workers."""


def counts(observation: Observation) -> dict[str, int]:
    """What each tab's label counts: findings, tasks, requests in flight, failed jobs, events."""
    snapshot = observation.snapshot
    return {
        "findings": len(observation.findings),
        "tasks": len(snapshot.tasks),
        "requests": len(snapshot.requests),
        "background": sum(
            1 for j in observation.events.background if j.state in ("failed", "dropped", "skipped")
        ),
        "stalls": len(observation.events.stalls),
        "exceptions": len(observation.events.exceptions),
    }


def tab_labels(
    tabs: Sequence[Tab], observation: Observation | None, workers: int | None, width: int
) -> dict[str, str]:
    """Each tab's label: its number, its title for `width` columns, and its count if any."""
    numbers = counts(observation) if observation is not None else {}
    if workers is not None:
        numbers["workers"] = workers
    narrow = width < NARROW_BELOW
    labels = {}
    for number, tab in enumerate(tabs, start=1):
        label = f"{number} {tab.short_title if narrow else tab.title}"
        if numbers.get(tab.id):
            label += f" {formatting.count(numbers[tab.id])}"
        labels[tab.id] = label
    return labels
