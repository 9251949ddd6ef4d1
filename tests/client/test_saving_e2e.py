"""Saving the evidence intact: a real server names a task with a lone surrogate (``x\\ud800y``),
and `dump --format json`, `dump -o FILE` and `doctor --json` write it as the JSON escape, which
reads back as the same name. Every process is killed in teardown."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspector import protocol
from tests.apps.surrogate_app import NAME
from tests.client import factories
from tests.helpers.server import RunningServer, inspector_run

pytestmark = pytest.mark.e2e

APP = "tests.apps.surrogate_app:app"
REPO = Path(__file__).resolve().parents[2]
ESCAPED = '"x\\ud800y"'
"""The name as it must appear in saved JSON: an escape, never the raw (unencodable) character."""


def inspector(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The real CLI; bytes, so that what is checked is exactly what was written."""
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def assert_clean(done: subprocess.CompletedProcess[bytes], *statuses: int) -> str:
    """No traceback, an expected exit status; stdout is UTF-8 (JSON text is), returned."""
    stderr = done.stderr.decode("utf-8", errors="replace")
    assert "Traceback" not in stderr, stderr
    assert done.returncode in statuses, stderr
    return done.stdout.decode("utf-8")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with inspector_run(APP, tmp_path_factory.mktemp("surrogate")) as running:
        running.get("/spawn")
        yield running


@pytest.fixture(scope="module")
def address(server: RunningServer) -> str:
    host, port = server.agent_address()
    return f"{host}:{port}"


def named_task(snapshot_json: dict[str, object]) -> dict[str, object]:
    tasks = snapshot_json["tasks"]
    assert isinstance(tasks, list)
    found = [task for task in tasks if task["name"] == NAME]
    assert len(found) == 1, [task["name"] for task in tasks]
    return found[0]  # type: ignore[no-any-return]


def test_dump_format_json_writes_the_name_as_an_escape(address: str) -> None:
    out = assert_clean(inspector("dump", address, "--format", "json"), 0)
    assert f'"name": {ESCAPED}' in out
    named_task(json.loads(out)["snapshot"])


def test_a_snapshot_saved_with_o_reads_back_with_the_same_name(
    address: str, tmp_path: Path
) -> None:
    path = tmp_path / "evidence.json"
    assert_clean(inspector("dump", address, "-o", str(path)), 0)
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # strict: the file is UTF-8
    assert f'"name": {ESCAPED}'.encode() in raw
    saved = protocol.decode_snapshot_file(text)
    assert [task.name for task in saved.tasks].count(NAME) == 1

    # Read back by the CLI, and saved again: the same bytes for the name.
    again = assert_clean(inspector("dump", str(path), "--format", "json"), 0)
    assert f'"name": {ESCAPED}' in again
    named_task(json.loads(again)["snapshot"])
    copy = tmp_path / "copy.json"
    assert_clean(inspector("dump", str(path), "-o", str(copy)), 0)
    assert protocol.decode_snapshot_file(copy.read_text(encoding="utf-8")).tasks == saved.tasks


def test_doctor_json_names_the_task_with_an_escape(address: str, tmp_path: Path) -> None:
    """The parked task waits on an Event nobody sets: doctor reports it by name."""
    time.sleep(0.3)  # older than --stuck-after
    for target in (address, _saved(address, tmp_path)):
        out = assert_clean(inspector("doctor", target, "--json", "--stuck-after", "0.2"), 0, 1)
        assert "x\\ud800y" in out and out.isascii()
        findings = json.loads(out)["findings"]
        assert any(NAME in finding["title"] for finding in findings), findings


def _saved(address: str, tmp_path: Path) -> str:
    path = tmp_path / "for-doctor.json"
    assert_clean(inspector("dump", address, "-o", str(path)), 0)
    return str(path)


def test_json_on_stdout_is_utf8_whatever_the_locale_says(tmp_path: Path) -> None:
    """JSON text is UTF-8: an ASCII-only stdout encoding neither crashes nor changes it."""
    snapshot = factories.rich_snapshot()
    named = dataclasses.replace(snapshot.tasks[0], name="café ✓ x\ud800y")
    path = tmp_path / "accents.json"
    path.write_text(
        protocol.encode_snapshot_file(dataclasses.replace(snapshot, tasks=(named,))),
        encoding="utf-8",
    )
    done = inspector("dump", str(path), "--format", "json", env={"PYTHONIOENCODING": "ascii"})
    out = assert_clean(done, 0)
    assert '"name": "café ✓ x\\ud800y"' in out
