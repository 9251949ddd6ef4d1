"""`/` filters every list view the same way, and keys typed into the filter never fire bindings."""

from __future__ import annotations

import pytest

from inspector.tui.filtering import filter_words, matches, searchable
from inspector.tui.views.findings import FindingsView
from inspector.tui.widgets.filter_bar import FilterBar
from inspector.tui.widgets.live_table import LiveTable
from tests.tui.conftest import build_app, until_applied, wait_for

SIZE = (120, 36)


def test_every_word_must_match_and_a_short_id_matches_whole() -> None:
    row = searchable(("#12", "Task-31", ("pending", "muted")), "fetch_prices")
    assert matches(row, filter_words("task-31 PENDING"))
    assert matches(row, filter_words("prices"))
    assert not matches(row, filter_words("task-31 running"))
    assert matches(row, filter_words("#12"))
    assert not matches(row, filter_words("#1"))
    assert matches(row, [])


async def test_typing_in_the_requests_filter_types_instead_of_firing_keys(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("4")
        in_flight = app.query_one("#in-flight", LiveTable)
        await wait_for(pilot, lambda: in_flight.row_count == len(blocked.requests))
        await pilot.press("slash", *"hang")  # `h` would open the worker thread
        bar = app.query_one("#requests-view FilterBar", FilterBar)
        assert app.views.active == "requests"
        assert bar.value == "hang" and bar.display
        await wait_for(pilot, lambda: in_flight.row_count == 0)
        await pilot.press(*["backspace"] * 4, *"orders 2 1")  # digits: no view switch
        await wait_for(pilot, lambda: in_flight.keys == ["11"])
        assert app.views.active == "requests"
        assert "of" in str(bar.query_one(".filter-summary").render())
        await pilot.press("enter")  # back to the list, the filter kept
        assert in_flight.has_focus and in_flight.keys == ["11"]
        await pilot.press("escape")  # clears it
        await wait_for(pilot, lambda: in_flight.row_count == len(blocked.requests))
        assert not bar.display
        await pilot.press("escape")  # nothing left to clear: back to the previous view
        await wait_for(pilot, lambda: app.views.active == "findings")


@pytest.mark.parametrize(
    ("key", "table", "words", "expected"),
    [
        ("5", "#background-table", "failed", 1),
        ("6", "#threads-table", "mainthread", 1),
        ("7", "#stalls-table", "login", 1),
        ("8", "#exceptions-table", "keyerror", 1),
    ],
    ids=["background", "threads", "stalls", "exceptions"],
)
async def test_every_list_view_filters(
    blocked, key: str, table: str, words: str, expected: int
) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press(key)
        rows = app.query_one(table, LiveTable)
        await wait_for(pilot, lambda: rows.row_count > expected)
        await pilot.press("slash", *words)
        await wait_for(pilot, lambda: rows.row_count == expected)


async def test_findings_filter_hides_the_others(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        view = app.query_one(FindingsView)
        await wait_for(pilot, lambda: len(view.items) == 6)
        await pilot.press("slash", *"deadlock")
        await wait_for(pilot, lambda: sum(item.display for item in view.items) == 1)
        await pilot.press("enter")
        shown = next(item for item in view.items if item.display)
        await wait_for(pilot, lambda: shown.has_focus)
        assert shown.finding.kind == "deadlock"


async def test_a_requests_task_is_found_by_its_short_id(blocked) -> None:
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        short = app.observation.task_rows.short_id(1057)
        await pilot.press("4")
        in_flight = app.query_one("#in-flight", LiveTable)
        await wait_for(pilot, lambda: in_flight.row_count == len(blocked.requests))
        assert in_flight.get_row("11")[3] == f"{short} Task-1057"
        await pilot.press("slash", *short)
        await wait_for(pilot, lambda: in_flight.keys == ["11"])
