"""`inspector demo` end to end: the real demo server under the real agent, real traffic, the
real report. Every failure the demo app contains must be named at its marked line, nothing may
be said about the healthy endpoints, and nothing may be left running afterwards."""

from __future__ import annotations

import json
import os
import pty
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from inspector.demo.expected import (
    expected_for,
    healthy_violations,
    match_findings,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"ready on http://127\.0\.0\.1:(\d+), agent on 127\.0\.0\.1:(\d+) \(pid (\d+)")
RUN_TIMEOUT = 90


@dataclass(frozen=True)
class DemoRun:
    python: str
    version: tuple[int, int]
    returncode: int
    stdout: str
    stderr: str
    http_port: int
    agent_port: int
    server_pid: int

    @property
    def findings(self) -> list[dict[str, Any]]:
        document = json.loads(self.stdout)
        findings: list[dict[str, Any]] = document["findings"]
        return findings


def interpreters() -> list[Any]:
    """This interpreter, and a Python >= 3.12 one (swallowed exceptions) when CI provides it."""
    found = [pytest.param(sys.executable, id=f"py{sys.version_info[0]}{sys.version_info[1]}")]
    py312 = os.environ.get("INSPECTOR_PYTHON312")
    if py312 and sys.version_info < (3, 12):
        found.append(pytest.param(py312, id="py312"))
    return found


def version_of(python: str) -> tuple[int, int]:
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    major, minor = out.stdout.split()
    return int(major), int(minor)


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM first, so `inspector demo` stops its server on the way out; then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue


def run_demo(python: str, runtime_dir: Path) -> DemoRun:
    env = dict(os.environ, INSPECTOR_RUNTIME_DIR=str(runtime_dir), NO_COLOR="1")
    process = subprocess.Popen(
        [python, "-m", "inspector", "demo", "--headless", "--json", "--duration", "15"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        stop(process)
    ready = READY.search(stderr)
    assert ready, f"the demo never said it was ready:\n{stderr[-3000:]}"
    return DemoRun(
        python=python,
        version=version_of(python),
        returncode=process.returncode,
        stdout=stdout,
        stderr=stderr,
        http_port=int(ready.group(1)),
        agent_port=int(ready.group(2)),
        server_pid=int(ready.group(3)),
    )


@pytest.fixture(scope="module", params=interpreters())
def demo_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    run = run_demo(request.param, tmp_path_factory.mktemp("runtime"))
    assert run.returncode == 0, f"exit {run.returncode}:\n{run.stderr[-3000:]}"
    return run


def test_report_names_every_failure_of_the_demo_at_its_line(demo_run: DemoRun) -> None:
    matches = match_findings(demo_run.findings, expected_for(demo_run.version))
    missing = [
        f"{m.expected.name} ({'/'.join(m.expected.kinds)} via {m.expected.endpoint})"
        for m in matches
        if m.finding is None
    ]
    reported = sorted(
        f"{f['kind']} at {(f.get('location') or {}).get('line')}: {f['title']}"
        for f in demo_run.findings
    )
    report = "\n".join(reported)
    assert not missing, "not reported: " + "; ".join(missing) + "\nreported:\n" + report


def test_report_says_nothing_about_the_healthy_endpoints(demo_run: DemoRun) -> None:
    assert healthy_violations(demo_run.findings) == []


def test_nothing_is_left_running_or_listening(demo_run: DemoRun) -> None:
    assert not psutil.pid_exists(demo_run.server_pid) or (
        psutil.Process(demo_run.server_pid).status() == psutil.STATUS_ZOMBIE
    )
    leftovers = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getpgid(process.info["pid"]) == demo_run.server_pid:
                leftovers.append(process.info)
        except (ProcessLookupError, PermissionError):
            continue
    assert leftovers == []
    for port in (demo_run.http_port, demo_run.agent_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"
    assert "stopping demo server" in demo_run.stderr


def test_interactive_demo_quits_cleanly_and_stops_its_server(tmp_path: Path) -> None:
    """The UI mode on a pseudo-terminal, quitting by itself after a few seconds."""
    controller, terminal = pty.openpty()
    env = dict(os.environ, INSPECTOR_RUNTIME_DIR=str(tmp_path), TERM="xterm-256color")
    env.update(COLUMNS="120", LINES="40")
    process = subprocess.Popen(
        [sys.executable, "-m", "inspector", "demo", "--duration", "4"],
        cwd=ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,  # Textual draws on stderr: a pipe nobody reads would block it
        start_new_session=True,
    )
    os.close(terminal)
    screen = bytearray()
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(controller, selectors.EVENT_READ)
            while process.poll() is None and time.monotonic() < deadline:
                for _ in selector.select(timeout=0.5):
                    try:
                        screen += os.read(controller, 65536)
                    except OSError:
                        break
                if len(screen) > 5_000_000:
                    del screen[:-1_000_000]
        process.wait(timeout=10)
    finally:
        stop(process)
        os.close(controller)
    output = screen.decode(errors="replace")
    assert process.returncode == 0, output[-3000:]
    ready = READY.search(output)
    assert ready, output[-3000:]
    assert "stopping demo server" in output
    server_pid = int(ready.group(3))
    assert not psutil.pid_exists(server_pid) or (
        psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
    )
    for port in (int(ready.group(1)), int(ready.group(2))):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"
