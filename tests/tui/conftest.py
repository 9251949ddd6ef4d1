"""Shared helpers for the TUI tests: recorded snapshots, a frozen clock, waiting without sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from inspector.model import Snapshot
from inspector.tui.app import InspectorApp, make_app
from tests.tui.fakes import FakeSource, load
from tests.tui.make_fixtures import TAKEN_AT, blocked_findings

FROZEN_NOW = TAKEN_AT + 0.4


def frozen_clock() -> float:
    return FROZEN_NOW


def fixed_findings(snapshot: Snapshot, stuck_after: float) -> list:
    return blocked_findings() if snapshot.current_task_id == 1042 else []


def build_app(
    snapshots: Sequence[Snapshot],
    *,
    source: FakeSource | None = None,
    interval: float = 0.25,
    **options: object,
) -> InspectorApp:
    """The real app on a FakeSource, polling fast, with a frozen clock and fixed findings."""
    return make_app(
        source or FakeSource(snapshots),
        clock=frozen_clock,
        interval=interval,
        diagnose=fixed_findings,
        vitals=None,
        **options,  # type: ignore[arg-type]
    )


async def wait_for(pilot, predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll `predicate` between screen updates until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.02)


async def until_applied(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.observation is not None)
    await pilot.pause()


@pytest.fixture(scope="session")
def blocked() -> Snapshot:
    return load("blocked")


@pytest.fixture(scope="session")
def healthy() -> Snapshot:
    return load("healthy")


@pytest.fixture(scope="session")
def many_tasks() -> Snapshot:
    return load("many_tasks")
