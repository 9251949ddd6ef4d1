"""`inspector doctor` on saved snapshots and bad input: exit statuses, JSON, colour."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from inspector import protocol
from inspector.cli import main
from inspector.model import Snapshot
from tests.diagnose.factories import healthy_snapshot, loop_stack, task_stack
from tests.factories import app, error, exception_event, request, snapshot, stall, std, task, wait

REPO = Path(__file__).resolve().parents[2]


def save(tmp_path: Path, snap: Snapshot, name: str = "snap.json") -> str:
    path = tmp_path / name
    path.write_text(protocol.encode_snapshot_file(snap))
    return str(path)


def blocked_snapshot() -> Snapshot:
    return snapshot(
        stalls=(
            stall(
                1, 2.0, loop_stack(app(14, "block", "time.sleep(2)")), request_label="GET /block"
            ),
        )
    )


def test_a_healthy_snapshot_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", save(tmp_path, healthy_snapshot())]) == 0
    out = capsys.readouterr().out
    assert "No problems found." in out
    assert "\x1b[" not in out


def test_findings_exit_1_and_name_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", save(tmp_path, blocked_snapshot())]) == 1
    out = capsys.readouterr().out
    assert "CRITICAL Event loop blocked 2.0 s by time.sleep in GET /block" in out
    assert "at app.py:14 in block" in out  # relative to the server's working directory
    assert out.rstrip().endswith("1 finding: 1 critical")


def test_info_only_exits_0(tmp_path: Path) -> None:
    swallowed = exception_event(
        1, "exception-swallowed", error("KeyError", "k"), location=app(3, "f", "except KeyError:")
    )
    assert main(["doctor", save(tmp_path, snapshot(exceptions=(swallowed,)))]) == 0


def test_json_has_the_contract_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save(tmp_path, blocked_snapshot())
    assert main(["doctor", path, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["target"] == path
    assert document["taken_at"] == blocked_snapshot().taken_at
    [finding] = document["findings"]
    assert finding == {
        "kind": "loop-blocked",
        "severity": "critical",
        "title": "Event loop blocked 2.0 s by time.sleep in GET /block",
        "detail": finding["detail"],
        "hint": finding["hint"],
        "location": {"file": "/srv/shop/app.py", "line": 14, "function": "block"},
        "related": [],
        "task_ids": [],
        "request": "GET /block",
        "count": 1,
    }


def test_json_of_a_healthy_snapshot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", save(tmp_path, healthy_snapshot()), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_stuck_after_moves_the_threshold(tmp_path: Path) -> None:
    waiting = task(
        1,
        stack=task_stack(app(27, "wait", "await ev.wait()"), std("asyncio/locks.py", 213, "wait")),
        waiting_on=wait("event", object_id=1, is_set=False),
        age=3.0,
        request_id=1,
    )
    path = save(
        tmp_path,
        snapshot(tasks=(waiting,), requests=(request(1, "GET", "/wait", age=3.0, task_id=1),)),
    )
    assert main(["doctor", path]) == 0
    assert main(["doctor", path, "--stuck-after", "2"]) == 1
    assert main(["doctor", path, "--stuck-after", "2.5"]) == 1


def test_watch_on_a_saved_file_diagnoses_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", save(tmp_path, blocked_snapshot()), "--watch", "30"]) == 1
    captured = capsys.readouterr()
    assert "saved snapshot: nothing to watch" in captured.err
    assert captured.out.count("Event loop blocked") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stuck-after", "abc"], "--stuck-after takes a number of seconds, not 'abc'"),
        (["--stuck-after", "0"], "--stuck-after must be a positive number"),
        (["--watch", "-3"], "--watch must be a positive number"),
        (["--interval", "nan"], "--interval must be a positive number"),
        (["no/such/snapshot.json"], "no such file"),
        (["127.0.0.1:99999"], "invalid port"),
        (["127.0.0.1:20101", "--pid", "1"], "not both"),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_a_corrupt_snapshot_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        '{"kind": "uvicorn-inspector-snapshot", "protocol": 1, "snapshot": {"taken_at": "x"}}'
    )
    assert main(["doctor", str(path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_nothing_listening_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["doctor", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inspector: ")
    assert len(err.strip().splitlines()) == 1


def _doctor_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "inspector", "doctor", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=30,
        cwd=REPO,
    )


def test_piped_output_is_plain_and_force_color_colours_it(tmp_path: Path) -> None:
    path = save(tmp_path, blocked_snapshot())
    piped = _doctor_process([path], {})
    assert piped.returncode == 1
    assert "\x1b[" not in piped.stdout and "Event loop blocked" in piped.stdout
    forced = _doctor_process([path], {"FORCE_COLOR": "1"})
    assert "\x1b[1;31mCRITICAL" in forced.stdout
    assert "\x1b[" not in _doctor_process([path, "--json"], {"FORCE_COLOR": "1"}).stdout


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run doctor with its stdout on a pseudo-terminal, as a person would."""
    primary, secondary = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    full_env.update(env)
    process = subprocess.Popen(
        [sys.executable, "-m", "inspector", "doctor", *args],
        stdout=secondary,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=REPO,
    )
    os.close(secondary)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal closed when the process exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=30)
    finally:
        os.close(primary)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    return b"".join(chunks).decode()


def test_a_terminal_gets_colour_unless_no_color(tmp_path: Path) -> None:
    path = save(tmp_path, blocked_snapshot())
    assert "\x1b[1;31mCRITICAL" in _on_a_terminal([path], {"TERM": "xterm"})
    plain = _on_a_terminal([path], {"TERM": "xterm", "NO_COLOR": "1"})
    assert "CRITICAL" in plain and "\x1b[" not in plain


def test_an_agent_without_lifecycle_probes_is_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    core = dataclasses.replace(
        healthy_snapshot(), capabilities=("tasks", "stacks", "stalls", "cancel")
    )
    assert main(["doctor", save(tmp_path, core)]) == 0
    out = capsys.readouterr().out
    assert "cannot report requests, background, threadpool, exceptions" in out
    assert "(its agent runs with --no-lifecycle, or a probe failed)" in out
