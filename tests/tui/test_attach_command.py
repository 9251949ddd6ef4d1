"""`inspector attach` refuses bad input with one line and exit status 2, before any screen opens."""

from __future__ import annotations

import pytest

from inspector.cli import main
from inspector.tui.picker import Candidate, Choice, PickerApp
from tests.helpers.server import free_port
from tests.tui.fakes import DATA


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["attach", "127.0.0.1:{port}"], "nothing is listening", id="nothing listening"
        ),
        pytest.param(["attach", "no-such-dir/snap.json"], "no such file", id="missing file"),
        pytest.param(["attach", "host:port:extra"], "invalid address", id="malformed address"),
        pytest.param(["attach", str(DATA / "blocked.json")], "needs a terminal", id="no terminal"),
    ],
)
def test_bad_targets_are_one_line_and_exit_2(argv, message, capsys) -> None:
    argv = [arg.format(port=free_port()) for arg in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_interval_must_be_sensible(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["attach", "--interval", "0"])
    assert exit_info.value.code == 2
    assert "seconds from 0.1 to 3600" in capsys.readouterr().err


async def test_picker_returns_the_chosen_agent_and_explains_processes_without_one() -> None:
    from inspector.tui.widgets.live_table import LiveTable

    candidates = [
        Candidate(
            pid=101,
            command="python -m inspector run app:app",
            workers=0,
            cpu_percent=3.0,
            rss=80_000_000,
            address="127.0.0.1:20101",
        ),
        Candidate(
            pid=202,
            command="uvicorn other:app --workers 2",
            role="supervisor",
            workers=2,
            hint="run it with `inspector run other:app`",
        ),
    ]
    app = PickerApp(candidates)
    async with app.run_test(size=(100, 20)) as pilot:
        table = app.query_one(LiveTable)
        assert table.keys == ["101", "202"]
        table.move_to_key("202")
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running  # no agent there: it stays, and says how to add one
        assert "inspector run other:app" in str(app.query_one("#picker-hint").render())
        await pilot.press("up", "enter")
    assert app.return_value == Choice(address="127.0.0.1:20101")


async def test_a_server_without_an_agent_is_offered_an_injection_once() -> None:
    from inspector.tui.screens.confirm import ConfirmScreen

    candidates = [Candidate(pid=303, command="uvicorn shop:app", role="single", serves=True)]
    app = PickerApp(candidates)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "pid 303 has no agent; inject one now?" in str(
            app.screen.query_one("#confirm-question").render()
        )
        await pilot.press("n")  # no: back to the list, nothing injected
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
    assert app.return_value == Choice(inject_pid=303)
