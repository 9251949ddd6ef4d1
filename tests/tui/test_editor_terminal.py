"""`e` in a real terminal (tmux): the UI leaves the screen to the editor, the editor gets the
terminal, and the UI comes back when it exits. Pilot runs headless, where there is no terminal
to hand over; this is the part only a terminal shows."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from inspector import protocol
from inspector.model import Frame
from tests.tui.fakes import load

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None or os.name != "posix", reason="needs tmux"
)
ROOT = Path(__file__).resolve().parents[2]


SOCKET = f"inspector-test-{uuid.uuid4().hex[:8]}"
"""A tmux server of the test's own: it sees no one else's sessions."""


def tmux(*args: str, check: bool = True) -> str:
    return subprocess.run(
        ["tmux", "-L", SOCKET, *args], check=check, capture_output=True, text=True, timeout=10
    ).stdout


def alive(session: str) -> bool:
    has = subprocess.run(
        ["tmux", "-L", SOCKET, "has-session", "-t", session], capture_output=True, timeout=10
    )
    return has.returncode == 0


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for_screen(session: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        shown = screen(session)
        if text in shown:
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not on screen within {timeout} s:\n{shown}")
        time.sleep(0.1)


def test_the_editor_gets_the_terminal_and_the_ui_comes_back(tmp_path: Path) -> None:
    source = tmp_path / "app.py"
    source.write_text("\n" * 80)
    record = tmp_path / "argv.json"
    release = tmp_path / "release"
    editor = tmp_path / "vim"
    editor.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, time\n"
        "print('EDITOR RUNNING', flush=True)\n"
        f"json.dump({{'argv': sys.argv[1:], 'tty': os.isatty(0) and os.isatty(1)}}, "
        f"open({str(record)!r}, 'w'))\n"
        "deadline = time.monotonic() + 20\n"
        f"while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
    )
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    blocked = load("blocked")
    oldest = max(blocked.tasks, key=lambda task: (task.age or 0.0, -task.id))
    here = Frame(str(source), 42, "handler", "await handler()")
    tasks = tuple(
        dataclasses.replace(task, stack=(here,)) if task is oldest else task
        for task in blocked.tasks
    )
    saved = tmp_path / "snapshot.json"
    saved.write_text(protocol.encode_snapshot_file(dataclasses.replace(blocked, tasks=tasks)))

    session = f"inspector-editor-{uuid.uuid4().hex[:8]}"
    command = (
        f"cd {tmp_path} && env EDITOR={editor} VISUAL= PYTHONPATH={ROOT} "
        f"{sys.executable} -m inspector attach {saved}"
    )
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "36", command)
    try:
        wait_for_screen(session, "q Quit")
        tmux("send-keys", "-t", session, "2")
        wait_for_screen(session, "sort age")
        tmux("send-keys", "-t", session, "e")
        wait_for_screen(session, "EDITOR RUNNING")  # the UI has left the screen
        assert json.loads(record.read_text()) == {"argv": ["+42", str(source)], "tty": True}
        release.touch()
        shown = wait_for_screen(session, "sort age")  # and is back, as it was
        assert "EDITOR RUNNING" not in shown
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 10
        while alive(session):
            assert time.monotonic() < deadline, "the UI did not quit"
            time.sleep(0.1)
    finally:
        tmux("kill-server", check=False)
        tmux_dir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (tmux_dir / SOCKET).unlink(missing_ok=True)
