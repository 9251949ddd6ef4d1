"""Registration files: private modes, round trip, removal, and tolerance of junk."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from inspector import registration
from inspector.registration import (
    Registration,
    read_registrations,
    remove_registration,
    runtime_dir,
    write_registration,
)


@pytest.fixture
def rundir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "run" / "inspector"
    monkeypatch.setenv(registration.ENV_RUNTIME_DIR, str(path))
    return path


def _registration(pid: int | None = None, port: int = 20101) -> Registration:
    return Registration(
        pid=pid if pid is not None else os.getpid(),
        ppid=os.getppid(),
        host="127.0.0.1",
        port=port,
        webui_port=40000,
        app="main:app",
        python="CPython 3.11.7",
        uvicorn="0.54.0",
        agent_version="0.1.0",
        started_at=1_700_000_000.5,
        argv=("inspector", "run", "main:app"),
        worker=None,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_file_is_private_and_reads_back(rundir: Path) -> None:
    original = _registration()
    path = write_registration(original)
    assert path.parent == rundir
    assert _mode(rundir) == 0o700
    assert _mode(path) == 0o600
    assert read_registrations() == [original]
    assert not [p for p in rundir.iterdir() if p.name.endswith(".tmp")]


def test_an_existing_open_directory_is_made_private(rundir: Path) -> None:
    rundir.mkdir(parents=True, mode=0o755)
    os.chmod(rundir, 0o755)
    write_registration(_registration())
    assert _mode(rundir) == 0o700


def test_removal(rundir: Path) -> None:
    write_registration(_registration())
    remove_registration(os.getpid())
    assert read_registrations() == []
    remove_registration(os.getpid())  # already gone: not an error
    remove_registration(123456789)


def test_reading_a_missing_directory_finds_nothing_and_creates_nothing(rundir: Path) -> None:
    assert read_registrations() == []
    assert not rundir.exists()


def test_corrupt_and_foreign_files_are_skipped(rundir: Path) -> None:
    good = _registration()
    write_registration(good)
    junk = {
        "garbage.json": "{not json",
        "list.json": "[1, 2, 3]",
        "missing-port.json": json.dumps({"pid": os.getpid(), "ppid": 1, "host": "127.0.0.1"}),
        "wrong-type.json": json.dumps(
            {"pid": str(os.getpid()), "ppid": 1, "host": "127.0.0.1", "port": 1}
        ),
        "bool-port.json": json.dumps({"pid": os.getpid(), "ppid": 1, "host": "h", "port": True}),
        "bad-argv.json": json.dumps(
            {"pid": os.getpid(), "ppid": 1, "host": "h", "port": 1, "argv": [1, 2]}
        ),
        "huge.json": json.dumps({"pid": os.getpid(), "pad": "x" * 100_000}),
        "binary.json": "\udcff",
    }
    for name, text in junk.items():
        (rundir / name).write_bytes(text.encode("utf-8", errors="surrogateescape"))
    (rundir / "directory.json").mkdir()
    (rundir / "notes.txt").write_text("not a registration")
    assert read_registrations() == [good]


def test_unknown_fields_from_a_newer_agent_are_ignored(rundir: Path) -> None:
    rundir.mkdir(parents=True, mode=0o700)
    data = {"pid": os.getpid(), "ppid": 1, "host": "127.0.0.1", "port": 20101, "future": 1}
    (rundir / f"{os.getpid()}.json").write_text(json.dumps(data))
    [found] = read_registrations()
    assert found.port == 20101 and found.app is None


def test_files_of_dead_processes_are_skipped_and_removed(rundir: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    dead = _registration(pid=child.pid, port=20102)
    path = write_registration(dead)
    alive = _registration()
    write_registration(alive)
    assert read_registrations() == [alive]
    assert not path.exists()


def test_runtime_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registration.ENV_RUNTIME_DIR, str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert runtime_dir(create=False) == tmp_path / "explicit"
    monkeypatch.delenv(registration.ENV_RUNTIME_DIR)
    assert runtime_dir(create=False) == tmp_path / "xdg" / "uvicorn-inspector"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    assert runtime_dir(create=False) == tmp_path / "tmp" / f"uvicorn-inspector-{os.getuid()}"


def test_a_runtime_path_that_is_not_a_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    monkeypatch.setenv(registration.ENV_RUNTIME_DIR, str(link))
    with pytest.raises(registration.RegistrationError):
        runtime_dir()
    plain = tmp_path / "plain-file"
    plain.write_text("")
    monkeypatch.setenv(registration.ENV_RUNTIME_DIR, str(plain))
    with pytest.raises(OSError):
        write_registration(_registration())
