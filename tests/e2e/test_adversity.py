"""What an app does to its own loop must not blind the diagnosis.

Real servers under `inspector run`, diagnosed with the real `doctor` and `dump`: a lifespan
startup that never completes, an app that sets its own loop exception handler, locks of the
app's own classes, and an await chain far deeper than the agent reports.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_doctor_e2e import (
    REPO,
    _cancel,
    _hold_requests,
    doctor_until,
    marked_line,
)
from tests.helpers.server import HOST, RunningServer, free_port, inspector_run, launched

pytestmark = pytest.mark.e2e


def dump_json(server: RunningServer) -> dict[str, Any]:
    """`inspector dump HOST:PORT --format json` as a person runs it: the snapshot document."""
    host, port = server.agent_address()
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "dump", f"{host}:{port}", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def run_cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    host, port = server.agent_address()
    command, *rest = args
    return subprocess.run(
        [sys.executable, "-m", "inspector", command, f"{host}:{port}", *rest],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


# --- a lifespan startup that never completes -------------------------------------------------


def registered(server: RunningServer, timeout: float = 20.0) -> None:
    """Wait until the agent has registered: it is up before the HTTP port, at lifespan startup."""
    deadline = time.monotonic() + timeout
    while not server.registrations():
        assert server.process.poll() is None, server.output()
        assert time.monotonic() < deadline, f"no agent registered\n{server.output()}"
        time.sleep(0.05)


def refuses_http(server: RunningServer) -> bool:
    try:
        socket.create_connection((HOST, server.http_port), timeout=2).close()
    except OSError:
        return True
    return False


def assert_startup_found(server: RunningServer) -> None:
    line = marked_line("doctor_startup.py", "doctor-test: startup waits here")
    registered(server)
    doctor = run_cli(server, "doctor", "--json", "--stuck-after", "1")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    [finding] = json.loads(doctor.stdout)["findings"]
    assert finding["kind"] == "stuck-task"
    assert finding["severity"] == "critical"
    assert finding["location"]["line"] == line
    assert finding["location"]["function"] == "connect_to_database"
    assert "startup has not finished" in finding["title"]
    assert "no request is served" in finding["title"]
    assert "StreamReader.readexactly()" in finding["detail"]
    dump = run_cli(server, "dump", "--color", "never")
    assert dump.returncode == 0, dump.stderr
    assert "LifespanOn.main" in dump.stdout and "await reader.readexactly(4)" in dump.stdout
    assert refuses_http(server)  # what the finding says: nothing is served yet


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_lifespan_startup_that_never_completes_is_found_while_nothing_is_served(
    tmp_path: Path, loop: str
) -> None:
    app = "tests.apps.doctor_startup:app"
    with inspector_run(app, tmp_path, loop=loop, wait_ready=False) as server:
        assert_startup_found(server)


def test_a_stuck_startup_is_found_under_inspector_run_dash_dash_uvicorn(tmp_path: Path) -> None:
    port, inspect_port = free_port(), free_port()
    uvicorn = str(Path(sys.executable).parent / "uvicorn")
    command = [sys.executable, "-m", "inspector", "run", "--inspect-port", str(inspect_port)]
    command += ["--", uvicorn, "tests.apps.doctor_startup:app", "--port", str(port)]
    with launched(command, tmp_path, http_port=port, wait_ready=False) as server:
        assert_startup_found(server)


# --- locks of the app's own classes --------------------------------------------------------------


def test_deadlocks_between_the_apps_own_lock_and_semaphore_classes_are_found(
    tmp_path: Path,
) -> None:
    app = "doctor_deadlock_subclass.py"
    expected = {
        "lock": {marked_line(app, "lock line a"), marked_line(app, "lock line b")},
        "semaphore": {marked_line(app, "semaphore line a"), marked_line(app, "semaphore line b")},
    }
    taken = {  # where each task took the lock the other waits for: named beside the waits
        "lock": {marked_line(app, "lock taken a"), marked_line(app, "lock taken b")},
        "semaphore": {marked_line(app, "semaphore taken a"), marked_line(app, "semaphore taken b")},
    }
    paths = ["/a-then-b", "/b-then-a", "/slots-a-then-b", "/slots-b-then-a"]
    with inspector_run("tests.apps.doctor_deadlock_subclass:app", tmp_path) as server:
        held = _hold_requests(server.http_port, paths)
        try:
            status, document = doctor_until(
                server, lambda f: f["kind"] == "deadlock" and f["count"] == 1, timeout=20
            )
            deadlocks = [f for f in document["findings"] if f["kind"] == "deadlock"]
            if len(deadlocks) < 2:
                status, document = doctor_until(
                    server,
                    lambda f: f["kind"] == "deadlock" and "slots" in f["detail"],
                    timeout=20,
                )
                deadlocks = [f for f in document["findings"] if f["kind"] == "deadlock"]
            health = dump_json(server)["snapshot"]["health"]
            assert server.get("/ok") == b'{"ok":true}'
            _cancel(server, [t for f in deadlocks for t in f["task_ids"]])
        finally:
            for connection in held:
                connection.close()
    assert status == 1
    assert len(deadlocks) == 2, deadlocks
    by_lines = {
        frozenset({f["location"]["line"], *(r["line"] for r in f["related"])}): f for f in deadlocks
    }
    locks = by_lines[frozenset(expected["lock"] | taken["lock"])]
    slots = by_lines[frozenset(expected["semaphore"] | taken["semaphore"])]
    assert locks["severity"] == slots["severity"] == "critical"
    assert "GET /a-then-b" in locks["title"] and "GET /b-then-a" in locks["title"]
    assert "`lock_a`" in locks["detail"] and "`lock_b`" in locks["detail"]
    assert "`slots_a`" in slots["detail"] and "`slots_b`" in slots["detail"]
    assert not [e for e in health["recent_errors"] if "lock" in e.lower()], health


# --- an app that sets its own loop exception handler -----------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_an_apps_own_exception_handler_is_chained_not_lost(tmp_path: Path, loop: str) -> None:
    raise_line = marked_line("doctor_own_handler.py", "doctor-test: lost task raises")
    with inspector_run("tests.apps.doctor_own_handler:app", tmp_path, loop=loop) as server:
        for order in range(3):
            request = urllib.request.Request(server.url(f"/orders/{order}"), method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        deadline = time.monotonic() + 15
        while (seen := json.loads(server.get("/reported")))["count"] < 3:
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        status, document = doctor_until(
            server,
            lambda f: f["kind"] == "task-exception-unretrieved" and f["count"] == 3,
        )
        time.sleep(0.3)  # nothing more may arrive at the app's handler
        after = json.loads(server.get("/reported"))
        output = server.output()
    assert after == {"count": 3, "own_handler": True}  # each exception once; its handler kept
    [finding] = [f for f in document["findings"] if f["kind"] == "task-exception-unretrieved"]
    assert status == 1
    assert finding["location"]["line"] == raise_line
    assert "ConnectionError" in finding["title"]
    assert "POST /orders/" in finding["title"] + finding["detail"]
    assert output.count("Task exception was never retrieved") == 3  # asyncio's log, unchanged


# --- an await chain 500 deep ---------------------------------------------------------------------


def test_a_chain_500_deep_is_cut_visibly_and_its_wait_read_at_the_leaf(tmp_path: Path) -> None:
    leaf = marked_line("deep_chain.py", "doctor-test: deep leaf")
    recursion = marked_line("deep_chain.py", "doctor-test: deep recursion")
    with inspector_run("tests.apps.deep_chain:app", tmp_path) as server:
        deadline = time.monotonic() + 20
        while True:
            doctor = run_cli(server, "doctor", "--json", "--stuck-after", "1")
            assert doctor.returncode in (0, 1), doctor.stderr
            findings = json.loads(doctor.stdout)["findings"]
            stuck = [f for f in findings if f["kind"] == "stuck-task"]
            if stuck or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        text = run_cli(server, "dump", "--color", "never")
        document = dump_json(server)
    [walker] = [t for t in document["snapshot"]["tasks"] if t["name"] == "tree-walker"]
    # 500 coroutine frames and the Event's own `wait`: 64 shown, 437 left out.
    assert walker["stack_cut"] == {"outer": 8, "left_out": 437}
    assert len(walker["stack"]) == 64
    assert walker["stack"][0]["line"] == recursion
    assert walker["stack"][-2]["line"] == leaf
    assert walker["waiting_on"]["kind"] == "event"
    chain = text.stdout[text.stdout.index("tree-walker") :]
    note = chain.index("… 437 frames left out …")
    assert chain.count("walk (tests/apps/deep_chain.py:", 0, note) == 8
    assert "await tree_loaded.wait()" in chain[note:]
    assert "waiting on Event" in chain[note:]
    [finding] = stuck
    assert finding["location"]["line"] == leaf
    assert "Event nobody sets" in finding["title"]
