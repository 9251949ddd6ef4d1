"""Text from the target never reaches the operator's terminal as control sequences or markup.

One real server under `inspector run` (tests/apps/hostile_text_app.py) carries terminal escapes
(CSI, OSC 52 clipboard, OSC title, C1), markup, a bidi override and a lone surrogate in its
request paths, task and coroutine names, file names, source lines, thread names, background
jobs and exception messages. The real `dump`, `doctor` and `ps` run against it as subprocesses,
and the real UI attaches to it through the real agent source.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspector.client.target import open_source
from inspector.model import Snapshot
from inspector.registration import ENV_RUNTIME_DIR, write_registration
from inspector.tui.app import InspectorApp, make_app
from inspector.tui.screens.confirm import ConfirmScreen
from inspector.tui.widgets.live_table import LiveTable
from tests.apps.hostile_text_app import HOSTILE
from tests.helpers.server import RunningServer, inspector_run
from tests.tui.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
OSC_52_PATH = "/%1b%5d52%3bc%3bcm0gLXJmIH4K%07"
"""`curl 'http://HOST/%1b%5d52%3bc%3bcm0gLXJmIH4K%07'`: OSC 52, the clipboard set to `rm -rf ~`."""
HELD_PATHS = (OSC_52_PATH, "/%5Bbold%5Dx%5B%2Fbold%5D", "/a%E2%80%AEb")
OSC_52_SHOWN = "\\x1b]52;c;cm0gLXJmIH4K\\x07"
"""How the clients show the OSC 52 sequence: escaped, readable."""
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
"""What must never be written: C0 but newline and tab, DEL, C1, bidi controls, separators."""
SGR = re.compile(r"\x1b\[[0-9;]*m")
"""The only escape sequence a client writes on purpose: its own colours."""


def assert_terminal_safe(text: str) -> None:
    found = UNSAFE.search(text)
    assert found is None, (
        f"{found.group()!r} at {found.start()}: {text[found.start() - 80 : found.start() + 40]!r}"
    )
    assert not any("\ud800" <= char <= "\udfff" for char in text), "a lone surrogate"


def assert_bytes_safe(output: bytes) -> str:
    """`output` is UTF-8 without ESC, BEL, C1 controls, bidi controls or lone surrogates."""
    assert b"\x1b" not in output and b"\x07" not in output
    text = output.decode("utf-8")  # strict: a surrogate could not have been encoded anyway
    assert_terminal_safe(text)
    return text


def hold(server: RunningServer, path: str) -> None:
    try:
        urllib.request.urlopen(server.url(f"{path}?hold=120"), timeout=150).read()
    except (OSError, urllib.error.URLError):
        pass  # the server is stopped at the end of the module


def snapshot_of(server: RunningServer) -> Snapshot:
    async def take() -> Snapshot:
        host, port = server.agent_address()
        source = open_source(f"{host}:{port}", None)
        try:
            await source.connect()
            return await source.snapshot()
        finally:
            await source.close()

    return asyncio.run(take())


def everything_seen(snapshot: Snapshot) -> bool:
    names = {task.name for task in snapshot.tasks}
    return (
        len(snapshot.requests) >= len(HELD_PATHS)
        and all(f"hostile-{key}-{text}" in names for key, text in HOSTILE.items())
        and any(job.state == "failed" for job in snapshot.background)
        and len(snapshot.exceptions) >= 2
        and any(stall.task_name and "blocks" in stall.task_name for stall in snapshot.stalls)
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with inspector_run(
        "tests.apps.hostile_text_app:app", tmp_path_factory.mktemp("hostile")
    ) as running:
        running.get("/spawn")
        request = urllib.request.Request(running.url("/job"), method="POST")
        urllib.request.urlopen(request, timeout=10).read()
        for path in HELD_PATHS:
            threading.Thread(target=hold, args=(running, path), daemon=True).start()
        deadline = time.monotonic() + 30
        while not everything_seen(snapshot_of(running)):
            assert time.monotonic() < deadline, "the agent did not see the hostile text in 30 s"
            time.sleep(0.2)
        yield running


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        timeout=90,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def address(server: RunningServer) -> str:
    host, port = server.agent_address()
    return f"{host}:{port}"


# --- the text clients ----------------------------------------------------------------------


def test_dump_shows_the_hostile_text_escaped(server: RunningServer) -> None:
    done = run_cli("dump", address(server))
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    text = assert_bytes_safe(done.stdout)
    assert f"GET /{OSC_52_SHOWN}" in text  # the request path
    assert "GET /[bold]x[/bold]" in text and "GET /a\\u202eb" in text
    assert f"hostile-osc52-{OSC_52_SHOWN}" in text  # a task name
    assert "hostile-surrogate-x\\ud800y" in text  # the name that crashed the print
    assert "hostile-c1-\\x9b2J\\x9d0;c1\\x9c" in text
    assert "ValueError: failed: \\x1b[31;1mRED\\x1b[0m" in text  # an exception message
    assert "[$text-error]w[/]txt\\u202egpj.exex\\ud800y" in text
    assert f"/srv/app/hostile{OSC_52_SHOWN}txt\\u202egpj.exe.py:2" in text  # a file name


def test_dump_in_colour_writes_no_escape_but_its_own_colours(server: RunningServer) -> None:
    done = run_cli("dump", address(server), "--color", "always")
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode("utf-8")
    assert SGR.search(text) is not None
    assert_bytes_safe(SGR.sub("", text).encode("utf-8"))


def test_doctor_shows_the_hostile_text_escaped(server: RunningServer) -> None:
    done = run_cli("doctor", address(server), "--stuck-after", "1")
    assert done.returncode in (0, 1), done.stderr
    assert b"Traceback" not in done.stderr
    text = assert_bytes_safe(done.stdout)
    assert f"GET /{OSC_52_SHOWN}" in text  # the hanging requests
    assert "task hostile-ansi-\\x1b[31;1mRED\\x1b[0m" in text  # the oldest task waiting forever
    assert "[$text-error]w[/]txt\\u202egpj.exex\\ud800y" in text  # its coroutine's name
    assert "RuntimeError: job failed: \\x1b[31;1mRED" in text  # the failed background job


def test_ps_shows_a_hostile_registration_escaped(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registration files are written by the servers themselves: one may lie about its app."""
    registration = server.registrations()[0]
    runtime = tmp_path / "runtime"
    monkeypatch.setenv(ENV_RUNTIME_DIR, str(runtime))
    write_registration(
        dataclasses.replace(registration, app=f"main:app{HOSTILE['osc52']}{HOSTILE['bidi']}\nX")
    )
    done = run_cli("ps", env={ENV_RUNTIME_DIR: str(runtime)})
    assert done.returncode == 0, done.stderr
    text = assert_bytes_safe(done.stdout)
    assert f"main:app{OSC_52_SHOWN}txt\\u202egpj.exe ⏎ X" in text


# --- the UI ----------------------------------------------------------------------------------


def screen_lines(app: InspectorApp) -> list[str]:
    """The screen as text, line by line, from an exported screenshot; checked raw first."""
    svg = app.export_screenshot()
    assert_terminal_safe(svg.replace("\n", ""))
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in re.findall(r'<text [^>]*?x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(y), []).append((float(x), html.unescape(text)))
    return ["".join(text for _x, text in sorted(parts)) for _y, parts in sorted(rows.items())]


def table_lines(table: LiveTable) -> list[str]:
    """What the table draws, line by line (header included)."""
    return [
        "".join(segment.text for segment in table.render_line(y)) for y in range(table.size.height)
    ]


async def test_the_ui_shows_every_view_escaped(server: RunningServer) -> None:
    app = make_app(open_source(address(server), None), interval=0.5, stuck_after=1.0, vitals=None)
    async with app.run_test(size=(220, 60)) as pilot:
        await wait_for(
            pilot,
            lambda: app.observation is not None and everything_seen(app.observation.snapshot),
            timeout=30,
        )
        for key, view in zip(
            "12345678",
            (
                "findings",
                "tasks",
                "task",
                "requests",
                "background",
                "threads",
                "stalls",
                "exceptions",
            ),
            strict=True,
        ):
            await pilot.press(key)
            await wait_for(pilot, lambda view=view: app.views.active == view)
            await pilot.pause()
            screen_lines(app)  # nothing unsafe on any view

        # Requests: the OSC 52 path is shown, escaped.
        await pilot.press("4")
        in_flight = app.query_one("#in-flight", LiveTable)
        await wait_for(pilot, lambda: in_flight.row_count >= len(HELD_PATHS))
        await pilot.pause()
        drawn = "\n".join(table_lines(in_flight))
        assert f"GET /{OSC_52_SHOWN}" in drawn and "GET /a\\u202eb" in drawn
        assert "GET /[bold]x[/bold]" in drawn
        assert any(OSC_52_SHOWN in line for line in screen_lines(app))

        # Tasks → the task named with markup: shown literally, not styled, not a link.
        await pilot.press("2", "slash", *"hostile-markup")
        tasks = app.query_one("#task-table", LiveTable)
        await wait_for(pilot, lambda: tasks.row_count == 1)
        await pilot.press("enter", "enter")  # leave the filter, open the task
        await wait_for(pilot, lambda: app.views.active == "task")
        await wait_for(
            pilot, lambda: "hostile-markup" in str(app.query_one("#task-facts").render())
        )
        facts = app.query_one("#task-facts").render()
        assert f"hostile-markup-{HOSTILE['markup']}" in str(facts)
        assert f"parked\\x1b[31;1mRED\\x1b[0m{OSC_52_SHOWN}" in str(facts)  # the coroutine
        styles = {str(span.style) for span in facts.spans}  # type: ignore[attr-defined]
        assert not any("link" in style or style in ("B", "$text-error") for style in styles)

        # `c` copies the file:line, escaped: a paste cannot run anything.
        await pilot.press("c")
        await wait_for(pilot, lambda: bool(app.clipboard))
        assert app.clipboard == f"/srv/app/hostile{OSC_52_SHOWN}txt\\u202egpj.exe.py:2"

        # `x` asks before cancelling, naming the task: escaped in the dialog too.
        await pilot.press("2", "escape", "slash", *"osc52", "enter")
        await wait_for(pilot, lambda: tasks.row_count == 1)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        question = str(app.screen.query_one("#confirm-question").render())
        assert f"hostile-osc52-{OSC_52_SHOWN}" in question
        screen_lines(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))

        # Exceptions: the messages, in the table and in the traceback pane.
        await pilot.press("8")
        await wait_for(pilot, lambda: app.views.active == "exceptions")
        await pilot.pause()
        detail = str(app.query_one("#exception-detail").render())
        assert "\\x1b" in detail or "\\u202e" in detail or "\\x9b" in detail
        screen_lines(app)

        # Stalls: the blocking task's name and line.
        await pilot.press("7")
        await wait_for(pilot, lambda: app.views.active == "stalls")
        await pilot.pause()
        stall = str(app.query_one("#stall-detail").render())
        assert (
            "task blocks\\x1b[31;1mRED" in stall and "time.sleep(seconds)  # \\x1b[31;1m" in stall
        )
        screen_lines(app)

        # Threads: the thread with a hostile name.
        await pilot.press("6")
        await wait_for(pilot, lambda: app.views.active == "threads")
        await pilot.pause()
        threads = "\n".join(table_lines(app.query_one("#threads-table", LiveTable)))
        assert "thread\\x1b[31;1mRED" in threads
