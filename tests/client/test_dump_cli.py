"""`inspector dump` as a person or a script uses it: output, files, exit statuses, errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inspector import protocol
from inspector.cli import main

from . import factories

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
    )


@pytest.fixture
def snapshot_file(tmp_path: Path) -> Path:
    path = tmp_path / "stuck.json"
    path.write_text(protocol.encode_snapshot_file(factories.rich_snapshot()), encoding="utf-8")
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_closed_port_is_one_line_and_exit_2_quickly() -> None:
    port = closed_port()
    started = time.monotonic()
    done = run_cli("dump", f"127.0.0.1:{port}")
    elapsed = time.monotonic() - started
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"inspector: nothing is listening on 127.0.0.1:{port}\n"
    assert elapsed < 3


def test_saved_file_renders_as_text(
    snapshot_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dump", str(snapshot_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Process 4242: uvicorn shop.app:app --port 8000\n")
    assert "from saved file 0.1.0" in out
    assert "held by Task-12 (transfer, POST /transfer)" in out


def test_saved_file_as_json_is_the_saved_file_format(
    snapshot_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dump", str(snapshot_file), "--format", "json"]) == 0
    read_back = protocol.decode_snapshot_file(capsys.readouterr().out)
    original = factories.rich_snapshot()
    assert read_back.tasks == original.tasks and read_back.requests == original.requests
    assert read_back.source == "file"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{ not json", "not a snapshot file: invalid JSON"),
        ('{"kind": "uvicorn-inspector-snapshot", "protocol": 1, "snapshot": []}', "corrupt"),
    ],
)
def test_corrupt_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, words: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    assert main(["dump", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"inspector: {path}: ") and words in captured.err
    assert captured.err.count("\n") == 1


def test_output_file_is_json_by_default_and_stdout_stays_empty(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "copy.json"
    target.write_text("old content")
    assert main(["dump", str(snapshot_file), "-o", str(target)]) == 0
    assert capsys.readouterr() == ("", "")
    assert json.loads(target.read_text())["kind"] == "uvicorn-inspector-snapshot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.json", "stuck.json"]


def test_output_file_as_text(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "report.txt"
    assert main(["dump", str(snapshot_file), "--format", "text", "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    text = target.read_text()
    assert text.startswith("Process 4242") and "\x1b[" not in text


def test_output_into_a_missing_directory_is_one_line(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "dir.json"
    assert main(["dump", str(snapshot_file), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"inspector: cannot write {target}: no such directory")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "0"], "--timeout must be a positive number of seconds"),
        (["8000", "--pid", "1"], "give a TARGET or --pid, not both"),
        (["not a target"], "invalid target 'not a target'"),
    ],
)
def test_bad_usage_is_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dump", *args]) == 2
    assert message in capsys.readouterr().err


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dump", "--help"])
    out = capsys.readouterr().out
    assert "inspector dump -o stuck.json" in out and "--no-stacks" in out


def test_a_reader_that_stops_early_is_not_an_error(snapshot_file: Path) -> None:
    """`inspector dump | head`: once head exits, writing fails with EPIPE. (Forced here: some
    sandboxes never report EPIPE to the writer.)"""
    script = (
        "import sys\n"
        "class Closed:\n"
        "    def __getattr__(self, name): return getattr(sys.__stdout__, name)\n"
        "    def write(self, text): raise BrokenPipeError(32, 'Broken pipe')\n"
        "sys.stdout = Closed()\n"
        "from inspector.cli import main\n"
        f"sys.exit(main(['dump', {str(snapshot_file)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20, cwd=REPO
    )
    assert done.returncode == 0
    assert done.stderr == ""


def test_dump_loads_no_ui_and_no_agent(snapshot_file: Path) -> None:
    """`dump` runs in CI and over SSH: it must not pay for (or need) Textual or the agent."""
    script = (
        "import contextlib, io, sys\n"
        "from inspector.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['dump', {str(snapshot_file)!r}])\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    main(['dump', '127.0.0.1:1'])\n"
        "heavy = ('textual', 'rich', 'inspector.tui', 'inspector.agent', 'aiomonitor')\n"
        "print(','.join(name for name in heavy if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20, cwd=REPO
    )
    assert (done.returncode, done.stdout) == (0, "\n"), done.stderr
