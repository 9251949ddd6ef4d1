"""Screenshots of the main views, compared as SVG (review every --snapshot-update by eye).

Deterministic: a recorded snapshot, a frozen clock, fixed findings, fixed vitals, a fixed
terminal size, and no blinking cursor in view.
"""

from __future__ import annotations

import pytest

from inspector.tui.app import InspectorApp
from inspector.tui.vitals import Vitals
from tests.tui.conftest import build_app, until_applied, wait_for
from tests.tui.fakes import FakeSource, load

CPU_SERIES = (12.0, 18.0, 35.0, 97.0, 99.0, 98.0, 97.0, 99.0, 100.0, 97.0)
RSS_SERIES = (301e6, 302e6, 305e6, 309e6, 310e6, 312e6, 312e6, 313e6, 312e6, 312e6)


def with_vitals(app: InspectorApp) -> None:
    app._vitals_reason = "fixed"
    for cpu, rss in zip(CPU_SERIES, RSS_SERIES, strict=False):
        app.record_vitals(
            Vitals(cpu_percent=cpu, rss=int(rss), threads=47, open_files=23, connections=61)
        )


def blocked_app() -> InspectorApp:
    return build_app([load("blocked")], interval=5.0)


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def test_findings_while_the_loop_is_blocked(snap_compare) -> None:
    async def run_before(pilot) -> None:
        await until_applied(pilot)
        with_vitals(pilot.app)
        await settle(pilot)

    assert snap_compare(blocked_app(), terminal_size=(120, 36), run_before=run_before)


def test_tasks(snap_compare) -> None:
    async def run_before(pilot) -> None:
        await until_applied(pilot)
        with_vitals(pilot.app)
        await pilot.press("2")
        await wait_for(pilot, lambda: pilot.app.query_one("#task-table").row_count > 0)
        await settle(pilot)

    assert snap_compare(blocked_app(), terminal_size=(120, 36), run_before=run_before)


def test_task_detail(snap_compare) -> None:
    async def run_before(pilot) -> None:
        await until_applied(pilot)
        with_vitals(pilot.app)
        pilot.app.action_open_task(1057)
        await wait_for(pilot, lambda: pilot.app.query_one("#frame-table").row_count > 0)
        await settle(pilot)

    assert snap_compare(blocked_app(), terminal_size=(120, 36), run_before=run_before)


def test_disconnected(snap_compare) -> None:
    source = FakeSource([load("blocked")])
    app = build_app([], source=source, interval=0.1)
    app.poller._backoff = (60.0,)

    async def run_before(pilot) -> None:
        await until_applied(pilot)
        with_vitals(pilot.app)
        await pilot.press("2")
        await wait_for(pilot, lambda: pilot.app.query_one("#task-table").row_count > 0)
        source.down = True
        await wait_for(pilot, lambda: pilot.app.connection == "disconnected")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


@pytest.mark.parametrize("view", ["1", "2"])
def test_narrow_80_by_24(snap_compare, view: str) -> None:
    async def run_before(pilot) -> None:
        await until_applied(pilot)
        with_vitals(pilot.app)
        await pilot.press(view)
        if view == "2":  # the task table fills in after the tab is shown
            await wait_for(pilot, lambda: pilot.app.query_one("#task-table").row_count > 0)
        await settle(pilot)

    assert snap_compare(blocked_app(), terminal_size=(80, 24), run_before=run_before)


def test_requests_filtered_at_80_by_24(snap_compare) -> None:
    """`/` in Requests: the filter line, what it matched, the keys typed into it."""

    async def run_before(pilot) -> None:
        await until_applied(pilot)
        with_vitals(pilot.app)
        await pilot.press("4")
        in_flight = pilot.app.query_one("#in-flight")
        await wait_for(pilot, lambda: in_flight.row_count > 0)
        await pilot.press("slash", *"orders")
        await wait_for(pilot, lambda: in_flight.row_count == 2)
        pilot.app.query_one("#requests-view FilterInput").cursor_blink = False
        await settle(pilot)

    assert snap_compare(blocked_app(), terminal_size=(80, 24), run_before=run_before)
