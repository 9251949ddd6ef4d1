"""Snapshot paths that are not snapshot files, through the real CLI: one line, exit 2, at once.

`dump`, `doctor` and `attach` read a saved snapshot when TARGET names a file. A FIFO used to
hang the read forever and /dev/zero to read until MemoryError; a corrupt time crashed doctor.
Each case here must end within seconds with one line on stderr and exit status 2 (the real
bound is the subprocess timeout; the asserted one is generous for a loaded machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inspector import protocol
from inspector.client.file_source import MAX_FILE_BYTES

from . import factories

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["dump", "doctor", "attach"]


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return done, time.monotonic() - started


def assert_refused(command: str, path: Path | str, words: str) -> None:
    done, elapsed = run_cli(command, str(path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"inspector: {path}"), done.stderr
    assert words in done.stderr
    assert done.stdout == ""
    assert elapsed < 8, f"took {elapsed:.1f} s"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "stuck.json"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_a_fifo_without_a_writer(command: str, fifo: Path) -> None:
    assert_refused(command, fifo, "is a FIFO (named pipe), not a snapshot file")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_fifo_with_a_writer_that_never_writes(command: str, fifo: Path) -> None:
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # open for writing, never written
    try:
        assert_refused(command, fifo, "is a FIFO (named pipe), not a snapshot file")
    finally:
        os.close(writer)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_symlink_to_dev_zero(command: str, tmp_path: Path) -> None:
    link = tmp_path / "snapshot.json"
    link.symlink_to("/dev/zero")
    assert_refused(command, link, "is a character device, not a snapshot file")


@pytest.mark.parametrize("command", COMMANDS)
def test_dev_null(command: str) -> None:
    assert_refused(command, "/dev/null", "is a character device, not a snapshot file")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_directory(command: str, tmp_path: Path) -> None:
    directory = tmp_path / "snapshots"
    directory.mkdir()
    assert_refused(command, directory, "is a directory, not a snapshot file")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_socket_file(command: str, tmp_path: Path) -> None:
    path = tmp_path / "s.sock"  # short: a unix socket path is limited to about 100 bytes
    with contextlib.closing(socket.socket(socket.AF_UNIX)) as listening:
        try:
            listening.bind(str(path))
        except OSError as error:
            pytest.skip(f"cannot bind a unix socket here: {error}")
        assert_refused(command, path, "is a socket, not a snapshot file")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_file_over_the_limit_is_refused_before_it_is_read(command: str, tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no data is written
    assert_refused(command, path, f"is {MAX_FILE_BYTES + 1:,} bytes: too large for a snapshot")


def saved_with(tmp_path: Path, change: Callable[[dict[str, object]], None]) -> Path:
    document = json.loads(protocol.encode_snapshot_file(factories.rich_snapshot()))
    change(document["snapshot"])
    path = tmp_path / "corrupt.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("number", "shown"), [("1e400", "inf"), ("-1e18", "-1e+18")])
def test_a_corrupt_time_is_named(command: str, number: str, shown: str, tmp_path: Path) -> None:
    path = saved_with(tmp_path, lambda snapshot: snapshot.update(taken_at=12345.5))
    path.write_text(path.read_text().replace("12345.5", number), encoding="utf-8")
    words = f"corrupt snapshot file: $.taken_at: expected a time between 1970 and 3000, got {shown}"
    assert_refused(command, path, words)


@pytest.mark.parametrize("command", ["dump", "doctor"])
def test_a_huge_count_is_named(command: str, tmp_path: Path) -> None:
    path = saved_with(tmp_path, lambda snapshot: snapshot.update(requests_undetailed=10**400))
    assert_refused(command, path, "$.requests_undetailed: expected an integer of 64 bits")


@pytest.fixture
def proc_file() -> Iterator[Path]:
    path = Path("/proc/self/status")
    if not path.exists():
        pytest.skip("no /proc here")
    yield path


def test_a_proc_file_that_says_it_is_empty_is_read_and_refused(proc_file: Path) -> None:
    assert proc_file.stat().st_size == 0  # what the kernel says, whatever it holds
    assert_refused("dump", proc_file, "not a snapshot file: invalid JSON")
