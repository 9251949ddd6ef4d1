"""Serve a scenario app under `inspector run`, set it off, and record what `doctor` says.

`doctor --watch --json` runs against the server as a person would run it; each finding it
prints is matched against the app's ``# bug:`` marks as it arrives, so the time from the first
request to each finding is measured too. Everything is bounded and every process is killed.

Used by the end-to-end corpus test (`tests/e2e/test_scenarios.py`) and by the benchmarks'
corpus section (`python -m benchmarks --only corpus`).
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.processes import stop_process_group
from tests.helpers.server import HOST, REPO_ROOT, ServerStartError, free_port, spawn
from tests.scenarios.spec import Call, Mark, Scenario, marks

SCENARIOS = Path(__file__).resolve().parent
KINDS_OF_SCENARIO = ("buggy", "healthy")
SLACK = 20.0
"""Seconds beyond the scenario's own watch before a stuck step counts as a harness failure."""


@dataclass(frozen=True)
class ScenarioFile:
    name: str
    """``buggy/orders_hang``: the directory and the module's name."""
    path: Path

    @property
    def module(self) -> str:
        return "tests.scenarios." + self.name.replace("/", ".")

    @property
    def healthy(self) -> bool:
        return self.name.startswith("healthy/")

    def load(self) -> Scenario:
        scenario = importlib.import_module(self.module).SCENARIO
        assert isinstance(scenario, Scenario), f"{self.name}: SCENARIO is not a Scenario"
        return scenario


def scenario_files() -> list[ScenarioFile]:
    return [
        ScenarioFile(f"{group}/{path.stem}", path)
        for group in KINDS_OF_SCENARIO
        for path in sorted((SCENARIOS / group).glob("*.py"))
        if not path.name.startswith("_")
    ]


@dataclass
class Outcome:
    """What doctor said about one scenario."""

    name: str
    healthy: bool
    marks: tuple[Mark, ...] = ()
    named: dict[int, float] = field(default_factory=dict)
    """Line of each mark doctor named → seconds from the first request to that finding."""
    findings: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    """The server did not start: a fault of the scenario, not of the diagnosis."""
    log: str = ""

    @property
    def missed(self) -> list[Mark]:
        return [mark for mark in self.marks if mark.line not in self.named]

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f["severity"] in ("critical", "warning")]

    @property
    def unmarked_warnings(self) -> list[dict[str, Any]]:
        """Warnings on no marked line: false alarms in a healthy app, extra noise in a buggy one."""
        lines = {mark.line for mark in self.marks}
        return [f for f in self.warnings if not (_lines_named(f, self.file_name) & lines)]

    @property
    def file_name(self) -> str:
        return self.name.split("/")[-1] + ".py"

    def explain(self) -> str:
        missed = "\n".join(f"  line {m.line} ({'|'.join(m.kinds)}): {m.text}" for m in self.missed)
        said = "\n".join(
            f"  {f['severity']} {f['kind']} at {_where(f)}: {f['title']}" for f in self.findings
        )
        return (
            f"{self.name}\nmissed:\n{missed or '  nothing'}\ndoctor said:\n{said or '  nothing'}"
            f"\n--- output ---\n{self.log[-4000:]}"
        )


def _where(finding: dict[str, Any]) -> str:
    location = finding.get("location")
    if not location:
        return "?"
    return f"{Path(location['file']).name}:{location['line']}"


def _lines_named(finding: dict[str, Any], file_name: str) -> set[int]:
    frames = [finding.get("location"), *finding.get("related", ())]
    return {frame["line"] for frame in frames if frame and Path(frame["file"]).name == file_name}


def interpreter_for(scenario: Scenario) -> str | None:
    """This Python if it is recent enough, else INSPECTOR_PYTHON312 for 3.12-only faults."""
    if sys.version_info[:2] >= scenario.min_python:
        return sys.executable
    other = os.environ.get("INSPECTOR_PYTHON312")
    if other and scenario.min_python <= (3, 12):
        return other
    return None


def run(item: ScenarioFile, workdir: Path) -> Outcome:
    """Serve, set off and diagnose one scenario; never raises for what the server does."""
    scenario = item.load()
    outcome = Outcome(item.name, item.healthy, marks(item.path))
    python = interpreter_for(scenario)
    if python is None:
        outcome.skipped = f"needs Python >= {'.'.join(map(str, scenario.min_python))}"
        return outcome
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, inspect_port = free_port(), free_port()
    command = [
        python, "-m", "inspector", "run", f"{item.module}:app",
        "--port", str(http_port), "--inspect-port", str(inspect_port),
        "--loop", scenario.loop, *scenario.run_args,
    ]  # fmt: skip
    try:
        server = spawn(command, workdir, http_port=http_port, inspect_port=inspect_port)
    except ServerStartError as error:
        outcome.error = str(error)
        return outcome
    doctor: subprocess.Popen[str] | None = None
    connections = Connections()
    try:
        doctor = _watch(inspect_port, scenario)
        arrivals: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        threading.Thread(target=_read_findings, args=(doctor, arrivals), daemon=True).start()
        started = time.monotonic()
        for call in scenario.calls:
            threading.Thread(target=connections.send, args=(http_port, call), daemon=True).start()
        _collect(outcome, arrivals, started, scenario.watch, stop_when_named=not item.healthy)
    finally:
        connections.close()
        if doctor is not None:
            stop_process_group(doctor)
            outcome.log += f"--- doctor stderr ---\n{doctor.stderr.read() if doctor.stderr else ''}"
        server.kill()
        outcome.log = server.output() + outcome.log
    return outcome


def run_all(items: Sequence[ScenarioFile], workdir: Path, jobs: int) -> dict[str, Outcome]:
    """Several scenarios at once: each waits mostly on its own server, not on the CPU."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {
            item.name: pool.submit(run, item, workdir / item.name.replace("/", "-"))
            for item in items
        }
        return {name: future.result() for name, future in futures.items()}


def _watch(inspect_port: int, scenario: Scenario) -> subprocess.Popen[str]:
    """`inspector doctor --watch --json` on the server, as a person would run it."""
    command = [
        sys.executable, "-m", "inspector", "doctor", f"{HOST}:{inspect_port}", "--json",
        "--watch", str(scenario.watch + SLACK), "--interval", "0.25",
        "--stuck-after", str(scenario.stuck_after),
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _read_findings(
    doctor: subprocess.Popen[str], arrivals: queue.Queue[tuple[float, dict[str, Any]]]
) -> None:
    assert doctor.stdout is not None
    for line in doctor.stdout:
        with contextlib.suppress(ValueError):
            for finding in json.loads(line)["findings"]:
                arrivals.put((time.monotonic(), finding))


def _collect(
    outcome: Outcome,
    arrivals: queue.Queue[tuple[float, dict[str, Any]]],
    started: float,
    watch: float,
    *,
    stop_when_named: bool,
) -> None:
    deadline = started + watch
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            arrived, finding = arrivals.get(timeout=min(remaining, 0.25))
        except queue.Empty:
            continue
        outcome.findings.append(finding)
        named = _lines_named(finding, outcome.file_name)
        for mark in outcome.marks:
            if mark.line in named and finding["kind"] in mark.kinds:
                outcome.named.setdefault(mark.line, round(arrived - started, 2))
        if stop_when_named and not outcome.missed:
            return


class Connections:
    """The client side of a scenario: raw HTTP/1.1 and websocket connections, all closed at
    the end, each bounded by a socket timeout."""

    def __init__(self) -> None:
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def send(self, port: int, call: Call) -> None:
        if self._closed.wait(call.after):
            return
        threads = [
            threading.Thread(target=self._one, args=(port, call), daemon=True)
            for _ in range(call.times)
        ]
        for thread in threads:
            thread.start()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.close()
            self._open.clear()

    def _one(self, port: int, call: Call) -> None:
        with contextlib.suppress(OSError):
            connection = socket.create_connection((HOST, port), timeout=30)
            with self._lock:
                if self._closed.is_set():
                    connection.close()
                    return
                self._open.append(connection)
            if call.mode == "load":
                connection.close()
                self._load(port, call)
                return
            connection.sendall(_request(call, port))
            if call.mode in ("complete", "stream", "websocket"):
                for _ in _drain(connection, self._closed):
                    pass
            if call.mode == "complete":
                connection.close()

    def _load(self, port: int, call: Call) -> None:
        until = time.monotonic() + call.seconds
        request = _request(call, port)
        while time.monotonic() < until and not self._closed.is_set():
            with socket.create_connection((HOST, port), timeout=10) as connection:
                connection.sendall(request)
                for _ in _drain(connection, self._closed):
                    pass


def _request(call: Call, port: int) -> bytes:
    headers = [f"{call.method} {call.path} HTTP/1.1", f"Host: {HOST}:{port}"]
    if call.mode == "websocket":
        key = base64.b64encode(os.urandom(16)).decode()
        headers += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
    else:
        headers.append("Connection: close")
    if call.body:
        headers += ["Content-Type: application/json", f"Content-Length: {len(call.body)}"]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + call.body


def _drain(connection: socket.socket, closed: threading.Event) -> Iterator[bytes]:
    """Read until the server closes, the scenario ends or the socket times out."""
    while not closed.is_set():
        try:
            chunk = connection.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def score(outcomes: Iterable[Outcome]) -> tuple[int, int, int, int]:
    """(marks named, marks, healthy apps with a warning, healthy apps) over run scenarios."""
    ran = [o for o in outcomes if o.skipped is None]
    named = sum(len(o.named) for o in ran if not o.healthy)
    total = sum(len(o.marks) for o in ran if not o.healthy)
    alarmed = sum(1 for o in ran if o.healthy and o.warnings)
    healthy = sum(1 for o in ran if o.healthy)
    return named, total, alarmed, healthy
