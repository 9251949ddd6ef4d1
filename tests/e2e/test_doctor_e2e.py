"""`inspector doctor` against real servers: a real uvicorn under `inspector run`, the real agent,
the real termui socket, and the doctor command as a person runs it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.server import HOST, RunningServer, inspector_run

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"


def marked_line(app_file: str, marker: str) -> int:
    """The line number of the line carrying `marker` in one of the test apps."""
    lines = (APPS / app_file).read_text().splitlines()
    return next(number for number, text in enumerate(lines, start=1) if marker in text)


def doctor_command(*args: str) -> list[str]:
    """`inspector doctor ARGS` as a person runs it, with this interpreter."""
    return [sys.executable, "-m", "inspector", "doctor", *args]


def doctor(server: RunningServer, *args: str) -> tuple[int, dict[str, Any]]:
    """Run `inspector doctor HOST:PORT --json` as a subprocess; its exit status and document."""
    host, port = server.agent_address()
    result = subprocess.run(
        doctor_command(f"{host}:{port}", "--json", *args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def doctor_until(
    server: RunningServer, found: Callable[[dict[str, Any]], bool], timeout: float = 15.0
) -> tuple[int, dict[str, Any]]:
    """Run doctor until `found(finding)` holds for one of its findings (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        status, document = doctor(server)
        if any(found(f) for f in document["findings"]):
            return status, document
        if time.monotonic() > deadline:
            raise AssertionError(f"not found within {timeout} s: {document}")
        time.sleep(0.2)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_time_sleep_in_an_async_endpoint_is_loop_blocked_at_its_line(
    tmp_path: Path, loop: str
) -> None:
    line = marked_line("doctor_block.py", "doctor-test: blocking line")
    with inspector_run("tests.apps.doctor_block:app", tmp_path, loop=loop) as server:
        server.get("/block")
        server.get("/block")
        status, document = doctor_until(
            server, lambda f: f["request"] == "GET /block" and f["count"] >= 2
        )
    # A loaded machine may add an "idle lag" note (severity info); nothing else may show.
    serious = [f for f in document["findings"] if f["severity"] != "info"]
    [finding] = serious
    assert status == 1
    assert finding["location"]["file"] == str(APPS / "doctor_block.py")
    assert finding["location"]["line"] == line
    assert finding["location"]["function"] == "block"
    assert finding["request"] == "GET /block"
    assert "time.sleep" in finding["title"]
    assert "await asyncio.sleep" in finding["hint"]
    assert finding["kind"] == "loop-blocked"
    assert finding["severity"] == "warning"  # 0.6 s each: under a second


def _hold_requests(port: int, paths: list[str]) -> list[socket.socket]:
    """Send requests and keep their connections open without reading the answers."""
    sockets = []
    for path in paths:
        connection = socket.create_connection((HOST, port), timeout=5)
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        sockets.append(connection)
    return sockets


def _cancel(server: RunningServer, task_ids: list[int]) -> None:
    """Cancel the deadlocked tasks so the server can shut down promptly (best effort)."""
    from inspector.client.target import open_source

    async def cancel() -> None:
        host, port = server.agent_address()
        source = open_source(f"{host}:{port}")
        try:
            await source.connect()
            for task_id in task_ids:
                await source.cancel(task_id)
        finally:
            await source.close()

    try:
        asyncio.run(cancel())
    except Exception:  # noqa: BLE001 - teardown kills the server anyway
        pass


def test_two_locks_taken_in_opposite_orders_is_a_deadlock(tmp_path: Path) -> None:
    line_a = marked_line("doctor_deadlock.py", "doctor-test: deadlock line a")
    line_b = marked_line("doctor_deadlock.py", "doctor-test: deadlock line b")
    with inspector_run("tests.apps.doctor_deadlock:app", tmp_path) as server:
        held = _hold_requests(server.http_port, ["/a-then-b", "/b-then-a"])
        try:
            status, document = doctor_until(server, lambda f: f["kind"] == "deadlock")
            assert server.get("/ok") == b'{"ok":true}'  # the rest of the server still works
            [finding] = [f for f in document["findings"] if f["kind"] == "deadlock"]
            _cancel(server, finding["task_ids"])
        finally:
            for connection in held:
                connection.close()
    assert status == 1
    assert finding["severity"] == "critical"
    lines = {finding["location"]["line"], *(r["line"] for r in finding["related"])}
    took_a = marked_line("doctor_deadlock.py", "doctor-test: took lock a")
    took_b = marked_line("doctor_deadlock.py", "doctor-test: took lock b")
    assert finding["location"]["line"] in (line_a, line_b)
    assert lines == {line_a, line_b, took_a, took_b}  # where each waits, where each took its lock
    assert finding["location"]["file"].endswith("tests/apps/doctor_deadlock.py")
    assert len(finding["task_ids"]) == 2
    assert "GET /a-then-b" in finding["title"] and "GET /b-then-a" in finding["title"]
    assert "`lock_b`" in finding["detail"] and "`lock_a`" in finding["detail"]


def test_stuck_background_tasks_are_confirmed_and_located(tmp_path: Path) -> None:
    event_line = marked_line("doctor_stuck.py", "doctor-test: event nobody sets")
    put_line = marked_line("doctor_stuck.py", "doctor-test: producer blocked")
    with inspector_run("tests.apps.doctor_stuck:app", tmp_path) as server:
        host, port = server.agent_address()
        started = time.monotonic()
        result = subprocess.run(
            doctor_command(f"{host}:{port}", "--json", "--stuck-after", "1"),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "watching them" in result.stderr  # first contact: the agent had never seen the tasks
    assert elapsed < 15
    stuck = {
        f["location"]["line"]: f
        for f in json.loads(result.stdout)["findings"]
        if f["kind"] == "stuck-task"
    }
    assert set(stuck) == {event_line, put_line}
    assert "Event nobody sets" in stuck[event_line]["title"]
    assert stuck[put_line]["count"] == 2
    assert "full queue nobody consumes" in stuck[put_line]["title"]
    [died] = [
        f
        for f in json.loads(result.stdout)["findings"]
        if f["kind"] == "task-exception-unretrieved"
    ]
    assert died["location"]["line"] == marked_line("doctor_stuck.py", "doctor-test: consumer dies")
    assert "long-lived worker" in died["detail"]


def test_watch_as_json_prints_findings_as_they_become_true(tmp_path: Path) -> None:
    with inspector_run("tests.apps.doctor_stuck:app", tmp_path) as server:
        host, port = server.agent_address()
        result = subprocess.run(
            doctor_command(
                f"{host}:{port}",
                "--json",
                "--watch",
                "3",
                "--interval",
                "0.25",
                "--stuck-after",
                "1",
            ),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    assert result.returncode == 1, result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(set(d) >= {"findings", "target", "taken_at"} for d in documents)
    kinds = [f["kind"] for d in documents for f in d["findings"]]
    assert kinds.count("stuck-task") == 2  # each printed once, when first past --stuck-after
    # The first poll already knows the consumer died; the stuck tasks only become findings once
    # the agent has watched them for longer than --stuck-after, in a later poll.
    assert [f["kind"] for f in documents[0]["findings"]] == ["task-exception-unretrieved"]
    assert any(f["kind"] == "stuck-task" for d in documents[1:] for f in d["findings"])


async def _load(base_url: str, total: int, concurrency: int) -> int:
    import httpx

    paths = ["/async", "/sync", "/background"]
    semaphore = asyncio.Semaphore(concurrency)
    ok = 0

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(index: int) -> None:
            nonlocal ok
            path = paths[index % len(paths)]
            async with semaphore:
                response = await (client.post(path) if path == "/background" else client.get(path))
            ok += response.status_code == 200

        await asyncio.gather(*(one(i) for i in range(total)))
    return ok


@pytest.fixture
def healthy_server(tmp_path: Path) -> Iterator[RunningServer]:
    with inspector_run("tests.apps.doctor_healthy:app", tmp_path) as server:
        yield server


def test_a_healthy_app_under_load_has_no_findings(healthy_server: RunningServer) -> None:
    answered = asyncio.run(_load(healthy_server.url(""), total=200, concurrency=20))
    assert answered == 200
    status, document = doctor(healthy_server)
    false_findings = document["findings"]
    serious = [f for f in false_findings if f["severity"] != "info"]
    print(
        f"\nhealthy app, 200 requests: {len(false_findings)} false findings "
        f"({len(serious)} at warning or above): {[f['title'] for f in false_findings]}"
    )
    assert serious == []
    assert status == 0


def test_watch_prints_a_new_problem_once_as_it_appears(tmp_path: Path) -> None:
    with inspector_run("tests.apps.doctor_block:app", tmp_path) as server:
        host, port = server.agent_address()
        watcher = subprocess.Popen(
            doctor_command(f"{host}:{port}", "--watch", "4", "--interval", "0.2"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            assert watcher.stdout is not None
            first = watcher.stdout.readline()  # printed once connected: the server is healthy
            assert first.startswith("Watching "), first + watcher.stderr.read()
            server.get("/block")
            server.get("/block")
            out, err = watcher.communicate(timeout=30)
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait(timeout=5)
    assert watcher.returncode == 1, err
    at_the_line = [
        line for line in out.splitlines() if line.startswith("  at ") and "doctor_block.py:" in line
    ]
    assert len(at_the_line) == 1, out  # the second stall is the same finding: printed once
    assert "Watched 4 s." in out


def test_pid_of_a_workers_parent_reports_every_worker(tmp_path: Path) -> None:
    with inspector_run("tests.apps.doctor_block:app", tmp_path, workers=2) as server:
        workers = sorted(r.pid for r in server.registrations())
        for _ in range(4):
            server.get("/block")
        result = subprocess.run(
            doctor_command("--pid", str(server.process.pid), "--json"),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env={**os.environ, "INSPECTOR_RUNTIME_DIR": str(server.runtime_dir)},
        )
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert sorted(document["workers"]) == workers
    line = marked_line("doctor_block.py", "doctor-test: blocking line")
    blocked = [f for f in document["findings"] if (f["location"] or {}).get("line") == line]
    assert blocked and all(f["worker"] in workers for f in blocked)
    assert sum(f["count"] for f in blocked) == 4  # every stall, in whichever worker served it
