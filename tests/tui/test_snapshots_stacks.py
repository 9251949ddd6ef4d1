"""Screenshots of deep stacks at 80x24 and 200x60: the Task view's await chain, a stall's
sampled stack and a logged traceback, each with the library frames folded and the user's line
(▶) in view. Compared as SVG (review every --snapshot-update by eye)."""

from __future__ import annotations

import pytest

from inspector.tui.app import InspectorApp
from inspector.tui.views.task_detail import TaskDetailView
from inspector.tui.widgets.live_table import LiveTable
from tests.tui.conftest import build_app, until_applied, wait_for
from tests.tui.deep_stacks import deep
from tests.tui.fakes import load
from tests.tui.test_snapshots import settle, with_vitals

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((200, 60), id="200x60")]


def deep_app() -> InspectorApp:
    return build_app([deep(load("blocked"))], interval=5.0)


@pytest.mark.parametrize("size", SIZES)
def test_task_detail_folds_the_chain(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot) -> None:
        await until_applied(pilot)
        with_vitals(pilot.app)
        pilot.app.action_open_task(1057)
        detail = pilot.app.query_one(TaskDetailView)
        await wait_for(pilot, lambda: detail.frames.cursor_key == "18")  # payments.py:41
        await settle(pilot)

    assert snap_compare(deep_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_stall_detail_folds_the_samples(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot) -> None:
        await until_applied(pilot)
        with_vitals(pilot.app)
        await pilot.press("7")
        stalls = pilot.app.query_one("#stalls-table", LiveTable)
        await wait_for(pilot, lambda: stalls.row_count == 1)
        await settle(pilot)

    assert snap_compare(deep_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_traceback_folds_the_framework(snap_compare, size: tuple[int, int]) -> None:
    async def run_before(pilot) -> None:
        await until_applied(pilot)
        with_vitals(pilot.app)
        await pilot.press("8")
        errors = pilot.app.query_one("#exceptions-table", LiveTable)
        await wait_for(pilot, lambda: errors.row_count == 1)
        await settle(pilot)

    assert snap_compare(deep_app(), terminal_size=size, run_before=run_before)
