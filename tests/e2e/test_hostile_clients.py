"""The agent's port against hostile clients and a busy server, on a real `inspector run` server.

Each test is one way a local user, a buggy script or plain load went wrong for an agent that
trusted its clients: the server must keep serving, the agent must keep answering, and nothing a
client sends may cost the server more than a small, fixed amount.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from inspector.agent.termui_server import MAX_CONNECTIONS
from inspector.model import Snapshot
from tests.helpers.server import HOST, RunningServer, inspector_run
from tests.helpers.telnet import TermuiClient

pytestmark = [pytest.mark.e2e]

APP = "tests.apps.hostile_app:app"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with inspector_run(APP, tmp_path_factory.mktemp("hostile")) as running:
        yield running


@pytest.fixture(scope="module")
def read_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    args = ["--read-only", "--webui-port", "0"]
    with inspector_run(APP, tmp_path_factory.mktemp("read-only"), args=args) as running:
        yield running


def process_of(server: RunningServer) -> psutil.Process:
    return psutil.Process(server.registrations()[0].pid)


def snapshot_of(server: RunningServer, timeout: float = 10.0) -> Snapshot:
    host, port = server.agent_address()
    with TermuiClient(host, port, timeout=timeout) as client:
        payload = client.command("inspector-snapshot --no-stacks").payload
    assert isinstance(payload, Snapshot)
    return payload


def seconds_to_snapshot(server: RunningServer) -> float:
    started = time.monotonic()
    snapshot_of(server)
    return time.monotonic() - started


def address_of(server: RunningServer) -> str:
    host, port = server.agent_address()
    return f"{host}:{port}"


def cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def raw_connection(server: RunningServer) -> socket.socket:
    sock = socket.create_connection(server.agent_address(), timeout=10)
    sock.settimeout(10)
    return sock


def send_until_closed(sock: socket.socket, chunk: bytes, total: int) -> int:
    """Send `chunk` until `total` bytes went out or the agent closed the connection; the bytes
    that went out."""
    sent = 0
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:  # reset or broken pipe: the agent cut the client off
        pass
    return sent


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- a busy server -------------------------------------------------------------------------


def test_ten_thousand_connections_leave_no_descriptor_or_memory_behind(
    server: RunningServer,
) -> None:
    process = process_of(server)
    address = server.agent_address()

    def connect_and_leave(times: int) -> None:
        """Each client waits for the agent's first byte, so each connection was accepted and
        served: a client that leaves while still in the kernel's queue tests nothing of ours."""
        for _ in range(times):
            with socket.create_connection(address, timeout=10) as sock:
                assert sock.recv(1)

    connect_and_leave(5_000)  # the allocator's working set for a burst, reached once
    wait_for(lambda: snapshot_of(server).health is not None)
    fds, rss = process.num_fds(), process.memory_info().rss
    connect_and_leave(10_000)
    wait_for(lambda: process.num_fds() <= fds + 5, timeout=15)
    assert process.memory_info().rss - rss < 3 * MB
    assert seconds_to_snapshot(server) < 2.0


def test_past_a_thousand_file_descriptors_the_agent_answers_and_does_not_spin(
    server: RunningServer,
) -> None:
    highest = json.loads(server.get("/hold-fds?count=5000"))["highest"]
    assert highest > 5000
    process = process_of(server)
    done = cli("dump", address_of(server), timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Tasks" in done.stdout
    # The watchdog still works: a blocked loop is reported at its line.
    blocker = threading.Thread(target=server.get, args=("/block?seconds=0.6",))
    blocker.start()
    blocker.join(15)
    doctor = cli("doctor", address_of(server), "--json")
    findings = json.loads(doctor.stdout)["findings"]
    assert any(
        f["kind"] == "loop-blocked" and f["location"]["file"].endswith("hostile_app.py")
        for f in findings
    ), findings
    # And nothing keeps running once the clients are gone.
    before = process.cpu_times()
    time.sleep(2.0)
    after = process.cpu_times()
    assert (after.user + after.system) - (before.user + before.system) < 0.3
    assert json.loads(server.get("/"))["pid"] == process.pid


def test_a_burst_of_clients_is_accepted_at_once(server: RunningServer) -> None:
    address = server.agent_address()
    sockets: list[socket.socket] = []
    started = time.monotonic()
    try:
        for _ in range(100):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(address)
            sockets.append(sock)
        for sock in sockets:
            sock.settimeout(10)
            sock.recv(1)  # the agent's first byte: it accepted this client
        assert time.monotonic() - started < 2.0
    finally:
        for sock in sockets:
            sock.close()


def test_past_the_client_limit_newcomers_are_told_and_counted(server: RunningServer) -> None:
    address = server.agent_address()
    held = [socket.create_connection(address, timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:
            sock.recv(1)
        with socket.create_connection(address, timeout=10) as late:
            said = b""
            while chunk := late.recv(4096):
                said += chunk
        assert b"too many clients" in said
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: snapshot_of(server).health.clients_refused >= 1)


# --- bounded input -------------------------------------------------------------------------


def test_random_bytes_cost_one_connection_and_nothing_else(server: RunningServer) -> None:
    junk = random.Random(70).randbytes(70 * 1024)
    with raw_connection(server) as sock:
        send_until_closed(sock, junk, len(junk))
        try:  # the agent ends the session (junk holds a Ctrl-D, a runaway line, a bad SB…)
            while sock.recv(65536):
                pass
        except OSError:
            pass
    assert seconds_to_snapshot(server) < 2.0
    done = cli("dump", address_of(server))
    assert done.returncode == 0, done.stderr


def test_an_endless_subnegotiation_is_cut_off_within_a_few_bytes(server: RunningServer) -> None:
    process = process_of(server)
    rss = process.memory_info().rss
    answers: list[float] = []
    flooding = threading.Event()

    def ask_while_flooded() -> None:
        while flooding.is_set():
            answers.append(seconds_to_snapshot(server))

    with raw_connection(server) as sock:
        flooding.set()
        asker = threading.Thread(target=ask_while_flooded)
        asker.start()
        try:
            sock.sendall(bytes((255, 250, 24)))  # IAC SB TTYPE, never ended
            sent = send_until_closed(sock, b"x" * 65536, 100 * MB)
        finally:
            flooding.clear()
            asker.join(15)
    assert sent < 100 * MB, "the agent read 100 MB of one sub-negotiation"
    assert process.memory_info().rss - rss < 16 * MB
    assert answers and max(answers) < 1.0


def test_a_person_pasting_megabytes_is_cut_off_and_costs_nothing(server: RunningServer) -> None:
    process = process_of(server)
    rss = process.memory_info().rss
    host, port = server.agent_address()
    with TermuiClient(host, port, terminal="xterm") as person:
        person.wait_for_prompt()
        sent = send_until_closed(person.raw_socket(), b"a" * 65536, 4 * MB)
    assert sent < 4 * MB
    with TermuiClient(host, port, terminal="xterm") as person:
        assert "Commands" in person.say("help")
        lines = b"ps\r" * 20_000  # 60 KB of commands typed ahead
        person.raw_socket().sendall(lines)
    assert process.memory_info().rss - rss < 16 * MB
    assert seconds_to_snapshot(server) < 2.0


def test_a_persons_session_shows_target_text_escaped(server: RunningServer) -> None:
    host, port = server.agent_address()
    with TermuiClient(host, port, terminal="xterm") as person:
        text = person.say(f"where {json.loads(server.get('/park'))['id']}")
        assert "victim" in text or "Event.wait" in text
        shown = person.say("help \x1b]52;c;cm0gLXJmIH4K\x07")
    assert "\x1b" not in shown and "\x07" not in shown


# --- read-only means read-only -------------------------------------------------------------


def test_read_only_refuses_every_action_over_telnet(read_only_server: RunningServer) -> None:
    server = read_only_server
    task_id = json.loads(server.get("/park"))["id"]
    host, port = server.agent_address()
    with TermuiClient(host, port, terminal="xterm") as person:
        for line in (f"cancel {task_id}", f"ca {task_id}", "signal SIGSTOP", "signal SIGTERM"):
            assert "refused: the agent is read-only" in person.say(line), line
        assert "not available" in person.say("console")
        assert "Commands" in person.say("help")  # looking is still allowed
        assert "victim" in person.say("ps")
    assert json.loads(server.get(f"/task/{task_id}")) == {"done": False}
    assert json.loads(server.get("/"))["pid"] == process_of(server).pid  # not stopped
    assert snapshot_of(server).health.actions_refused >= 4


def test_the_web_ui_is_off_by_default(server: RunningServer) -> None:
    [registration] = server.registrations()
    assert not registration.webui_port
    connections = process_of(server).net_connections("tcp")
    listening = {c.laddr.port for c in connections if c.status == "LISTEN"}
    assert listening == {server.http_port, registration.port}


def _web(port: int, path: str, method: str = "GET", host: str | None = None) -> int:
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method)
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_the_web_ui_honours_read_only_and_checks_the_host(read_only_server: RunningServer) -> None:
    server = read_only_server
    [registration] = server.registrations()
    port = registration.webui_port
    assert port
    task_id = json.loads(server.get("/park"))["id"]
    assert _web(port, f"/api/task?task_id={task_id}", "DELETE") == 403
    assert json.loads(server.get(f"/task/{task_id}")) == {"done": False}
    assert _web(port, "/") == 200
    assert _web(port, "/", host=f"localhost:{port}") == 200
    assert _web(port, "/", host=f"attacker.example:{port}") == 421  # DNS rebinding
    listening = {
        c.laddr.ip for c in process_of(server).net_connections("tcp") if c.laddr.port == port
    }
    assert listening == {"127.0.0.1"}


def test_without_read_only_the_web_ui_can_cancel(tmp_path: Path) -> None:
    with inspector_run(APP, tmp_path, args=["--webui-port", "0"]) as server:
        [registration] = server.registrations()
        task_id = json.loads(server.get("/park"))["id"]
        assert _web(registration.webui_port or 0, f"/api/task?task_id={task_id}", "DELETE") == 200
        wait_for(lambda: json.loads(server.get(f"/task/{task_id}"))["done"])
