"""The command palette: the inspector's commands from its own provider, run through ctrl+p."""

from __future__ import annotations

from textual.command import CommandList, CommandPalette

from inspector.tui import palette
from tests.tui.conftest import build_app, until_applied, wait_for
from tests.tui.test_workers import FakeFleet

SIZE = (120, 36)


async def test_typing_a_view_name_and_enter_shows_that_view(healthy) -> None:
    app = build_app([healthy])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"show stalls")
        palette_screen = app.screen
        hits = palette_screen.query_one(CommandList)
        await wait_for(pilot, lambda: hits.option_count > 0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.views.active == "stalls")


async def test_the_same_commands_as_before_in_the_same_order(healthy) -> None:
    app = build_app([healthy])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        titles = [command.title for command in palette.commands(app)]
    assert titles == [
        "Show Findings",
        "Show Tasks",
        "Show Task",
        "Show Requests",
        "Show Background",
        "Show Threads",
        "Show Stalls",
        "Show Exceptions",
        "Pause / resume",
        "Save snapshot",
        "Copy location",
        "Open in editor",
        "Show every frame",
        "Cancel task",
        "Poll faster",
        "Poll slower",
    ]


async def test_a_worker_group_adds_the_workers_and_their_switches(healthy) -> None:
    app = FakeFleet(healthy, [501, 502]).app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.observation is not None)
        titles = [command.title for command in palette.commands(app)]
        assert "Show Workers" in titles and "Next worker" in titles
        assert "Switch to worker 2/2 (pid 502)" in titles
        switch = next(c for c in palette.commands(app) if c.title.endswith("(pid 502)"))
        switch.run()
        await wait_for(
            pilot,
            lambda: app.observation is not None and app.observation.snapshot.process.pid == 502,
        )
