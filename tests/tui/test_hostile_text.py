"""The UI never reads the target's text as markup and always shows it escaped.

Textual parses markup in a `Static`'s string, a notification and a palette entry; its `escape`
misses tags such as `[B]` or `[$text-error]`, and a value ending in a backslash escapes the tag
after it. The views build Content from templates instead (`inspector.tui.content`).
"""

from __future__ import annotations

import dataclasses

import pytest
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Input
from textual.widgets._toast import Toast

from inspector.model import Snapshot
from inspector.protocol import Result
from inspector.tui.content import Multiline, markup, palette_text, plain
from inspector.tui.picker import Candidate, PickerApp
from inspector.tui.screens.confirm import ConfirmScreen
from inspector.tui.widgets.live_table import LiveTable
from tests.tui.conftest import build_app, until_applied, wait_for
from tests.tui.fakes import FakeSource

OSC_52 = "\x1b]52;c;cm0gLXJmIH4K\x07"
SHOWN_OSC_52 = "\\x1b]52;c;cm0gLXJmIH4K\\x07"
UNSAFE = ("\x1b", "\x07", "\x9b", "\u202e", "\ud800")

VALUES = [
    pytest.param("[bold]x[/bold]", "[bold]x[/bold]", id="a tag"),
    pytest.param("[B]x[/B]", "[B]x[/B]", id="a tag Textual's escape misses"),
    pytest.param("[$text-error]x[/]", "[$text-error]x[/]", id="a variable tag"),
    pytest.param("[ bold]x", "[ bold]x", id="a spaced tag"),
    pytest.param("[/]", "[/]", id="a lone closing tag (MarkupError when parsed)"),
    pytest.param(
        "[link=https://example.com]x[/link]", "[link=https://example.com]x[/link]", id="link"
    ),
    pytest.param("[@click=app.quit]x[/]", "[@click=app.quit]x[/]", id="an action"),
    pytest.param("ends in \\", "ends in \\", id="trailing backslash"),
    pytest.param("$name ${name}", "$name ${name}", id="template variables"),
    pytest.param(OSC_52, SHOWN_OSC_52, id="OSC 52"),
    pytest.param("a\u202eb\ud800", "a\\u202eb\\ud800", id="bidi, surrogate"),
    pytest.param("two\nlines", "two ⏎ lines", id="one line"),
]


@pytest.mark.parametrize(("value", "shown"), VALUES)
def test_markup_fills_in_values_as_plain_text(value: str, shown: str) -> None:
    content = markup("[b]$name[/b] · [dim]$other[/dim]", name=value, other=value)
    assert content.plain == f"{shown} · {shown}"
    assert [str(span.style) for span in content.spans] == ["b", "dim"]  # ours, nothing else


def test_multiline_values_keep_their_line_breaks_only() -> None:
    content = markup("[b]E[/b]: $message", message=Multiline("first\nsecond \x1b[2J"))
    assert content.plain == "E: first\nsecond \\x1b[2J"


@pytest.mark.parametrize(("value", "shown"), VALUES)
def test_plain_and_palette_text_show_the_value_itself(value: str, shown: str) -> None:
    assert plain(value).plain == shown
    assert not plain(value).spans
    assert Content.from_markup(f"agent {palette_text(value)}").plain == f"agent {shown}"


async def shown_notifications(pilot: Pilot[object]) -> list[str]:
    """The text of the toasts on screen (apps run with `notifications=True`)."""
    await wait_for(pilot, lambda: bool(pilot.app.screen.query(Toast)))
    shown = [str(toast.render()) for toast in pilot.app.screen.query(Toast)]
    assert not any(char in text for text in shown for char in UNSAFE)
    return shown


def with_hostile_task(snapshot: Snapshot, task_id: int, name: str, coro: str) -> Snapshot:
    tasks = tuple(
        dataclasses.replace(t, name=name, coro=coro) if t.id == task_id else t
        for t in snapshot.tasks
    )
    return dataclasses.replace(snapshot, tasks=tasks)


async def test_cancelling_a_hostile_task_names_it_escaped(blocked: Snapshot) -> None:
    """The dialog names the task, and the agent's answer is the target's text too."""
    hostile = with_hostile_task(blocked, 1061, f"[/]{OSC_52}[bold]", f"coro{OSC_52}")
    answer = Result(ok=True, message=f"cancelled [/b]{OSC_52}")
    source = FakeSource([hostile], cancel_result=answer)
    app = build_app([], source=source)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await until_applied(pilot)
        app.action_open_task(1061)
        await wait_for(pilot, lambda: app.views.active == "task")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.query_one("#confirm-question").render())
        assert question == f"Cancel [/]{SHOWN_OSC_52}[bold] (#1061)?"
        detail = str(app.screen.query_one("#confirm-detail").render())
        assert detail.startswith(f"coro{SHOWN_OSC_52} at ")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.last_result is not None)
        await pilot.pause()
        assert await shown_notifications(pilot) == [f"Cancelled\ncancelled [/b]{SHOWN_OSC_52}"]


async def test_a_grouped_hostile_coroutine_filters_by_what_the_table_shows(
    blocked: Snapshot,
) -> None:
    """Enter on a coroutine group fills the filter with its escaped name; the rows still match."""
    coro = f"handler{OSC_52}\u202e"
    hostile = with_hostile_task(blocked, 1061, "Task-1061", coro)
    app = build_app([hostile])
    async with app.run_test(size=(120, 36)) as pilot:
        await until_applied(pilot)
        await pilot.press("2", "g")
        tasks = app.query_one("#task-table", LiveTable)
        key = f"coro:{coro}"
        await wait_for(pilot, lambda: key in tasks.keys)
        tasks.move_to_key(key)
        await pilot.press("enter")
        await wait_for(pilot, lambda: tasks.keys == ["1061"])
        assert app.query_one("#task-filter", Input).value == f"handler{SHOWN_OSC_52}\\u202e"


async def test_the_picker_shows_hostile_processes_escaped() -> None:
    """Command lines and hints come from other processes and their registration files."""
    candidates = [
        Candidate(pid=101, command=f"python evil{OSC_52}.py", address=f"127.0.0.1:1[/]{OSC_52}"),
        Candidate(pid=202, command="uvicorn x:app", role=f"[b]{OSC_52}", hint=f"add [/]{OSC_52}"),
    ]
    app = PickerApp(candidates)
    async with app.run_test(size=(140, 20), notifications=True) as pilot:
        table = app.query_one(LiveTable)
        drawn = ["".join(s.text for s in table.render_line(y)) for y in range(1, 3)]
        assert f"python evil{SHOWN_OSC_52}.py" in drawn[0]
        hint = str(app.query_one("#picker-hint").render())
        assert hint == f"pid 101: agent on 127.0.0.1:1[/]{SHOWN_OSC_52}"
        table.move_to_key("202")
        await pilot.press("enter")  # no agent: a notification with the hint
        await pilot.pause()
        assert await shown_notifications(pilot) == [f"add [/]{SHOWN_OSC_52}"]
        assert app.is_running
