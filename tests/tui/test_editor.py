"""`e` opens the highlighted line in $VISUAL / $EDITOR: the command line each editor needs, and
the key driven through the app with an editor that records what it was given."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from inspector.model import ExceptionInfo, Frame
from inspector.tui.editor import EditorError, configured_editor, editor_command, open_command
from inspector.tui.views.task_detail import TaskDetailView
from inspector.tui.widgets.detail_pane import DetailPane
from tests.tui.conftest import build_app, until_applied, wait_for
from tests.tui.deep_stacks import TRACEBACK, deep

SIZE = (120, 36)


@pytest.mark.parametrize(
    ("editor", "argv"),
    [
        pytest.param("vim", ["vim", "+41", "/srv/app.py"], id="vim"),
        pytest.param("/usr/bin/nvim", ["/usr/bin/nvim", "+41", "/srv/app.py"], id="nvim by path"),
        pytest.param("nano", ["nano", "+41", "/srv/app.py"], id="nano"),
        pytest.param("emacsclient -t", ["emacsclient", "-t", "+41", "/srv/app.py"], id="emacs"),
        pytest.param("micro", ["micro", "+41", "/srv/app.py"], id="micro"),
        pytest.param("code --wait", ["code", "--wait", "-g", "/srv/app.py:41"], id="vs code"),
        pytest.param("codium", ["codium", "-g", "/srv/app.py:41"], id="vscodium"),
        pytest.param("subl -w", ["subl", "-w", "/srv/app.py:41"], id="sublime"),
        pytest.param("hx", ["hx", "/srv/app.py:41"], id="helix"),
        pytest.param("mate -w", ["mate", "-w", "--line", "41", "/srv/app.py"], id="textmate"),
        pytest.param("pycharm", ["pycharm", "--line", "41", "/srv/app.py"], id="pycharm"),
        pytest.param(
            "'/opt/My Editor/ed it'", ["/opt/My Editor/ed it", "/srv/app.py"], id="unknown, quoted"
        ),
    ],
)
def test_each_editor_is_told_the_line_its_own_way(editor: str, argv: list[str]) -> None:
    assert editor_command(editor, "/srv/app.py", 41) == argv


def test_windows_settings_keep_their_backslashes() -> None:
    setting = r'"C:\Program Files\VS Code\Code.exe" --wait'
    assert editor_command(setting, r"C:\app\main.py", 7, posix=False) == [
        r"C:\Program Files\VS Code\Code.exe",
        "--wait",
        "-g",
        r"C:\app\main.py:7",
    ]


def test_visual_wins_over_editor_and_blank_counts_as_unset() -> None:
    assert configured_editor({"VISUAL": "code", "EDITOR": "vim"}) == "code"
    assert configured_editor({"VISUAL": "  ", "EDITOR": "vim"}) == "vim"
    assert configured_editor({}) is None


def test_what_cannot_be_opened_is_said_in_one_line(tmp_path: Path) -> None:
    here = tmp_path / "app.py"
    here.write_text("x = 1\n")
    with pytest.raises(EditorError, match=r"Set \$VISUAL or \$EDITOR"):
        open_command(str(here), 1, {})
    with pytest.raises(EditorError, match="is not on this machine"):
        open_command("/nowhere/app.py", 1, {"EDITOR": "vim"})
    with pytest.raises(EditorError, match="cannot read the editor setting"):
        open_command(str(here), 1, {"EDITOR": "vim 'unclosed"})
    assert open_command(str(here), 0, {"EDITOR": "vim"}) == ["vim", "+1", str(here)]
    relative = open_command("app.py", 3, {"EDITOR": "nano"}, cwd=str(tmp_path))
    assert relative == ["nano", "+3", str(here)]  # the target's working directory


def recording_editor(directory: Path) -> tuple[Path, Path]:
    """An executable named `vim` that writes its argv as JSON to argv.json."""
    record = directory / "argv.json"
    script = directory / "vim"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, record


@pytest.mark.skipif(os.name != "posix", reason="the recording editor is a #! script")
async def test_e_opens_the_highlighted_frame_in_the_editor(
    blocked, tmp_path: Path, monkeypatch
) -> None:
    script, record = recording_editor(tmp_path)
    source_file = tmp_path / "orders.py"
    source_file.write_text("\n" * 60)
    task = blocked.task(1057)
    app_frame = next(f for f in task.stack if f.file == "/srv/shop/orders.py")
    local = Frame(str(source_file), app_frame.line, app_frame.function, app_frame.code)
    stack = tuple(local if f is app_frame else f for f in task.stack)
    tasks = tuple(dataclasses.replace(t, stack=stack) if t.id == 1057 else t for t in blocked.tasks)
    snapshot = dataclasses.replace(blocked, tasks=tasks)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(script))
    app = build_app([snapshot])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        app.action_open_task(1057)
        detail = app.query_one(TaskDetailView)
        await wait_for(pilot, lambda: detail.frames.row_count > 0)
        await pilot.press("e")
        await wait_for(pilot, record.exists)
        assert json.loads(record.read_text()) == [f"+{app_frame.line}", str(source_file)]


async def test_e_says_why_when_there_is_no_editor(blocked, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    app = build_app([blocked])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        app.action_open_task(1057)
        detail = app.query_one(TaskDetailView)
        await wait_for(pilot, lambda: detail.frames.row_count > 0)
        await pilot.press("e")
        await wait_for(pilot, lambda: app._notifications)
        assert "Set $VISUAL or $EDITOR" in list(app._notifications)[-1].message


@pytest.mark.skipif(os.name != "posix", reason="the recording editor is a #! script")
async def test_e_in_a_traceback_opens_the_frame_under_its_cursor(
    blocked, tmp_path: Path, monkeypatch
) -> None:
    script, record = recording_editor(tmp_path)
    for name in ("webhooks.py", "payments.py"):
        (tmp_path / name).write_text("\n" * 100)
    traceback = (
        *TRACEBACK[:-2],
        Frame(str(tmp_path / "webhooks.py"), 31, "payment_webhook", "await apply_payment(e)"),
        Frame(str(tmp_path / "payments.py"), 77, "apply_payment", "order = orders[key]"),
    )
    event = dataclasses.replace(
        deep(blocked).exceptions[0],
        error=ExceptionInfo(type="KeyError", message="'ord_4411'", traceback=traceback),
        location=traceback[-1],
    )
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(script))
    app = build_app([dataclasses.replace(blocked, exceptions=(event,))])
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        await pilot.press("8")
        pane = app.query_one("#exceptions-view DetailPane", DetailPane)
        await wait_for(pilot, lambda: pane.current_frame is not None)
        await pilot.press("tab", "up", "e")
        await wait_for(pilot, record.exists)
        assert json.loads(record.read_text()) == ["+31", str(tmp_path / "webhooks.py")]
