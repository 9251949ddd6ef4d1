"""`inspector inject PID` into plain uvicorn servers (started without the agent) through lldb/gdb.

For every CPython the machine has (this venv's; 3.10, 3.12, 3.13 in small venvs made here with
uvicorn and aiomonitor only, so the agent is imported from this checkout): an idle server with
a parked request and a keep-alive connection, and a server whose loop is blocked in
`time.sleep` when the agent arrives. On this venv's Python also a CPU-bound loop, uvloop, an
injection under wrk's load, `--detach`, `attach --pid` offering to inject, and the refusals.
Skipped, with the reason, where no debugger can attach.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from inspector.commands.inject_debugger import gdb_known_bad, installed
from inspector.model import Snapshot
from inspector.registration import ENV_RUNTIME_DIR
from tests.helpers.server import HOST, REPO_ROOT, RunningServer, free_port, launched
from tests.helpers.telnet import TermuiClient
from tests.helpers.terminal import Terminal

VENV_TIMEOUT = 300.0
"""Seconds to make a venv with uvicorn and aiomonitor for another Python (pip, cached or not)."""

# The first test on each Python also makes its venv; every wait inside is bounded on its own.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(VENV_TIMEOUT + 120)]

APP_DIR = REPO_ROOT / "tests" / "apps"
APP_FILE = APP_DIR / "inject_app.py"
MINE = f"{sys.version_info[0]}.{sys.version_info[1]}"
VERSIONS = ("3.10", "3.11", "3.12", "3.13")
STALL_VISIBLE_WITHIN = 3.0
"""The blocked loop must show in `doctor --pid` this soon after `inject` starts."""


def marked_line(marker: str) -> str:
    """ "inject_app.py:LINE" of the line marked `# inject-test: <marker>`."""
    lines = APP_FILE.read_text(encoding="utf-8").splitlines()
    [number] = [i for i, line in enumerate(lines, 1) if line.endswith(f"inject-test: {marker}")]
    return f"inject_app.py:{number}"


# --- the Pythons and the debugger -------------------------------------------------------------


def _interpreter(version: str) -> Path | None:
    if version == "3.12" and os.environ.get("INSPECTOR_PYTHON312"):
        return Path(os.environ["INSPECTOR_PYTHON312"])
    candidates = sorted((Path.home() / ".pyenv" / "versions").glob(f"{version}.*/bin/python3"))
    candidates.append(Path(f"/usr/bin/python{version}"))
    return next((path for path in candidates if path.exists()), None)


@pytest.fixture(scope="session", params=VERSIONS)
def target_python(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python of `version` that can serve the test app (uvicorn and aiomonitor installed)."""
    version: str = request.param
    if version == MINE:
        return Path(sys.executable)
    base = _interpreter(version)
    if base is None:
        pytest.skip(f"no Python {version} on this machine")
    if version == "3.12" and os.environ.get("INSPECTOR_PYTHON312"):
        return base  # CI's venv with the package installed
    venv = tmp_path_factory.mktemp(f"python{version}") / "venv"
    try:
        subprocess.run([str(base), "-m", "venv", str(venv)], check=True, timeout=120)
        pip = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "uvicorn", "aiomonitor"],
            capture_output=True,
            text=True,
            timeout=VENV_TIMEOUT,
        )
    except (subprocess.SubprocessError, OSError) as error:
        pytest.skip(f"cannot make a Python {version} venv here: {error}")
    if pip.returncode != 0:
        pytest.skip(f"cannot install uvicorn and aiomonitor for Python {version}: {pip.stderr}")
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def debugger() -> str:
    found = installed()
    if not found:
        pytest.skip("neither lldb nor gdb is installed (apt-get install lldb)")
    if found == ["gdb"] and gdb_known_bad():
        pytest.skip("only gdb is installed and it cannot call into processes on this CPU (AMX)")
    return found[0]


# --- servers and the CLI ------------------------------------------------------------------------


@contextmanager
def plain_server(python: Path, tmp_path: Path, loop: str = "asyncio") -> Iterator[RunningServer]:
    """`python -m uvicorn inject_app:app`, no agent; started outside the checkout, so the
    agent must come from the path the bootstrap adds (or the venv's own install)."""
    port = free_port()
    command = [
        str(python),
        *("-m", "uvicorn", "--app-dir", str(APP_DIR), "inject_app:app"),
        *("--host", HOST, "--port", str(port), "--loop", loop, "--no-access-log"),
    ]
    with launched(command, tmp_path, http_port=port, workers=0, cwd=tmp_path) as server:
        yield server


def cli(
    *args: str, server: RunningServer | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; with `server`, it sees that server's registrations."""
    env = dict(os.environ)
    if server is not None:
        env[ENV_RUNTIME_DIR] = str(server.runtime_dir)
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env=env,
    )


def inject(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    result = cli("inject", str(server.process.pid), *args, server=server)
    if result.returncode != 0 and (
        "not allowed to attach" in result.stderr or "could not attach" in result.stderr
    ):
        pytest.skip(f"no debugger can attach here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr + server.output()
    assert result.stderr == ""
    return result


def snapshot(server: RunningServer) -> Snapshot:
    with TermuiClient(*server.agent_address(), timeout=10) as client:
        payload = client.command("inspector-snapshot --no-stacks").payload
    assert isinstance(payload, Snapshot)
    return payload


def wait_for(condition: object, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


def request_in_background(server: RunningServer, path: str) -> threading.Thread:
    def call() -> None:
        try:
            urllib.request.urlopen(server.url(path), timeout=30).read()
        except Exception:
            pass

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def wait_until_main_thread_waits(server: RunningServer, timeout: float = 10.0) -> None:
    """Until the server's main thread sits in a system call (a blocking call, not bytecode)."""
    path = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/syscall")

    def waiting() -> bool:
        try:
            return path.read_text().split()[0] not in ("running", "-1")
        except (OSError, IndexError):
            return False

    wait_for(waiting, timeout, "the loop's thread waiting in the kernel")


def paths_seen(server: RunningServer) -> set[str]:
    shot = snapshot(server)
    return {r.path for r in (*shot.requests, *shot.recent_requests)}


# --- the tests ----------------------------------------------------------------------------------


def test_inject_into_an_idle_server(target_python: Path, debugger: str, tmp_path: Path) -> None:
    """Parked request and keep-alive connection before; new requests after; inject twice."""
    with plain_server(target_python, tmp_path) as server:
        kept = http.client.HTTPConnection(HOST, server.http_port, timeout=10)
        kept.request("GET", "/before")
        assert kept.getresponse().read() == b"ok"
        request_in_background(server, "/park")
        time.sleep(0.3)  # the parked request reaches its await
        assert server.registrations() == []

        started = time.monotonic()
        result = inject(server)
        assert "agent started" in result.stdout, result.stdout
        assert "already in flight" in result.stdout, result.stdout
        wait_for(lambda: server.registrations(), 10, "registration")
        shot = snapshot(server)
        first_snapshot = time.monotonic() - started
        print(f"\nPython {target_python}: inject to first snapshot {first_snapshot:.2f} s")
        assert shot.process.pid == server.process.pid
        [parked] = [r for r in shot.requests if r.path == "/park"]  # listed from the injection
        assert parked.start_unknown
        dump = cli("dump", "--pid", str(server.process.pid), server=server)
        unknown = "1 request was in flight before the agent was injected: its start time is unknown"
        assert dump.stdout.count(unknown) == 1, dump.stdout

        def parked_line_named() -> bool:  # stuck: in flight 0.5 s since the agent came
            pid = str(server.process.pid)
            doctor = cli("doctor", "--pid", pid, "--stuck-after", "0.5", server=server)
            named = doctor.returncode == 1 and marked_line("parked line") in doctor.stdout
            return named and doctor.stdout.count(unknown) == 1

        wait_for(parked_line_named, 10, "doctor naming the parked line")

        kept.request("GET", "/kept-alive")  # a connection opened before the agent came
        assert kept.getresponse().read() == b"ok"
        server.get("/after")
        wait_for(lambda: {"/kept-alive", "/after"} <= paths_seen(server), 10, "requests seen")
        kept.close()

        port = server.agent_address()[1]
        again = cli("inject", str(server.process.pid))  # without the registrations: asks it
        assert again.returncode == 0, again.stderr
        assert f"already runs an agent at 127.0.0.1:{port}" in again.stdout
        assert len(server.registrations()) == 1
        assert snapshot(server).process.pid == server.process.pid


def test_doctor_inject_starts_the_agent_and_names_the_parked_line(
    debugger: str, tmp_path: Path
) -> None:
    """`doctor --pid PID --inject` on a server without an agent: one command from nothing to
    the line to fix; `dump --inject` then finds the agent already there."""
    with plain_server(Path(sys.executable), tmp_path) as server:
        pid = str(server.process.pid)
        request_in_background(server, "/park")
        time.sleep(0.3)
        result = cli("doctor", "--pid", pid, "--inject", "--stuck-after", "0.5", server=server)
        if result.returncode == 2 and "attach" in result.stderr:
            pytest.skip(f"no debugger can attach here: {result.stderr.strip()}")
        assert result.returncode in (0, 1), result.stderr
        wait_for(lambda: server.registrations(), 10, "registration")

        def parked_line_named() -> bool:
            doctor = cli("doctor", "--pid", pid, "--stuck-after", "0.5", server=server)
            return doctor.returncode == 1 and marked_line("parked line") in doctor.stdout

        wait_for(parked_line_named, 10, "doctor naming the parked line")
        dump = cli("dump", "--pid", pid, "--inject", server=server)
        assert dump.returncode == 0, dump.stderr
        assert len(server.registrations()) == 1


def test_inject_while_the_loop_is_blocked(
    target_python: Path, debugger: str, tmp_path: Path
) -> None:
    """time.sleep on the loop when the agent arrives: the stall and its line show at once,
    requests are tracked once the loop is back."""
    with plain_server(target_python, tmp_path) as server:
        request_in_background(server, "/sleep?s=6")
        wait_until_main_thread_waits(server)
        time.sleep(0.2)

        started = time.monotonic()
        result = inject(server)
        assert "blocked right now" in result.stdout, result.stdout
        doctor = cli("doctor", "--pid", str(server.process.pid), server=server)
        elapsed = time.monotonic() - started
        print(f"\nPython {target_python}: blocked loop named {elapsed:.2f} s after inject began")
        assert doctor.returncode == 1, doctor.stderr
        assert "loop-blocked" in doctor.stdout and "blocked right now" in doctor.stdout
        assert "probes are waiting for the blocked loop to come back" in doctor.stdout
        assert "--no-lifecycle" not in doctor.stdout
        assert marked_line("blocking line") in doctor.stdout, doctor.stdout
        assert elapsed < STALL_VISIBLE_WITHIN

        def tracked() -> bool:
            server.get("/after-the-stall")
            return "/after-the-stall" in paths_seen(server)

        wait_for(tracked, 15, "a request after the stall")
        assert "requests" in snapshot(server).health.probes

        assert server.stop(signal.SIGTERM) < 10  # the agent closes with the server
        assert server.registrations() == []


def test_inject_into_a_cpu_bound_loop(debugger: str, tmp_path: Path) -> None:
    """A loop spinning in Python code holds the GIL: the launcher is queued for its next
    bytecode and the agent names the spinning line."""
    with plain_server(Path(sys.executable), tmp_path) as server:
        request_in_background(server, "/spin?s=8")
        time.sleep(0.5)
        result = inject(server)
        assert "next bytecode" in result.stdout and "blocked right now" in result.stdout
        doctor = cli("doctor", "--pid", str(server.process.pid), server=server)
        assert doctor.returncode == 1, doctor.stderr
        assert marked_line("spinning line") in doctor.stdout, doctor.stdout


@pytest.mark.parametrize("path", ["/recv?s=6", "/lock?s=6"])
def test_inject_while_the_loop_waits_in_a_read_or_a_lock(
    path: str, debugger: str, tmp_path: Path
) -> None:
    with plain_server(Path(sys.executable), tmp_path) as server:
        request_in_background(server, path)
        wait_until_main_thread_waits(server)
        time.sleep(0.2)
        result = inject(server)
        assert "while the main thread waited in" in result.stdout, result.stdout
        doctor = cli("doctor", "--pid", str(server.process.pid), server=server)
        marker = "reading line" if path.startswith("/recv") else "lock line"
        assert marked_line(marker) in doctor.stdout, doctor.stdout


def test_inject_into_uvloop(debugger: str, tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    with plain_server(Path(sys.executable), tmp_path, loop="uvloop") as server:
        inject(server)
        assert snapshot(server).process.loop == "uvloop"
        server.get("/on-uvloop")
        wait_for(lambda: "/on-uvloop" in paths_seen(server), 10, "request seen")


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def agent_in_ps(server: RunningServer) -> str | None:
    listed = json.loads(cli("ps", "--json", server=server).stdout)["targets"]
    [mine] = [t for t in listed if t["pid"] == server.process.pid]
    agent: str | None = mine["agent"]
    return agent


def refuses_connections(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=2).close()
    except OSError:
        return True
    return False


def test_detach_leaves_the_server_as_it_was_and_inject_works_again(
    debugger: str, tmp_path: Path
) -> None:
    with plain_server(Path(sys.executable), tmp_path) as server:
        pid = server.process.pid
        threads = thread_count(pid)
        inject(server)
        address = server.agent_address()
        assert agent_in_ps(server) == f"{address[0]}:{address[1]}"
        server.get("/tracked")
        wait_for(lambda: "/tracked" in paths_seen(server), 10, "request seen")

        detached = cli("inject", "--detach", str(pid), server=server)
        assert detached.returncode == 0, detached.stderr
        assert detached.stdout.strip() == (
            f"agent detached from pid {pid}: probes removed, {address[0]}:{address[1]} closed"
        ), detached.stdout
        assert server.registrations() == []
        assert refuses_connections(address)
        assert agent_in_ps(server) is None
        assert server.get("/after-detach") == b"ok"
        wait_for(lambda: thread_count(pid) == threads, 5, "the agent's threads gone")

        again = cli("inject", "--detach", str(pid), server=server)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == f"no agent in pid {pid}: nothing to detach"

        inject(server)  # a new agent, on a new port
        server.get("/reinjected")
        wait_for(lambda: "/reinjected" in paths_seen(server), 10, "request seen")
        assert "Traceback" not in server.output()


# --- under load ------------------------------------------------------------------------------

LOAD_SECONDS = 5
INJECT_AFTER = 1.5


def load_with_wrk(server: RunningServer, seconds: int) -> subprocess.Popen[str]:
    command = ["wrk", "-t1", "-c8", f"-d{seconds}s", "--timeout", "10s", server.url("/load")]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_failures(output: str) -> tuple[int, str]:
    """(requests served, what failed: "" when nothing did) from wrk's report."""
    served = re.search(r"(\d+) requests in", output)
    assert served is not None, output
    failed = [
        line.strip() for line in output.splitlines() if "Socket errors" in line or "Non-2xx" in line
    ]
    return int(served.group(1)), "; ".join(failed)


def load_in_python(server: RunningServer, stop: threading.Event, out: list[str]) -> None:
    """wrk's job when it is missing: keep-alive GETs on 4 connections until `stop`."""

    def client() -> None:
        connection = http.client.HTTPConnection(HOST, server.http_port, timeout=10)
        try:
            while not stop.is_set():
                connection.request("GET", "/load")
                response = connection.getresponse()
                body = response.read()
                out.append(
                    "ok" if response.status == 200 and body == b"ok" else str(response.status)
                )
        except Exception as error:
            out.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)


def test_inject_under_load_loses_no_request(debugger: str, tmp_path: Path) -> None:
    """wrk's keep-alive connections run through the injection: every request answered 200, no
    socket error, nothing raised in the server; the agent tracks the open connections' next
    requests."""
    with plain_server(Path(sys.executable), tmp_path) as server:
        wrk = load_with_wrk(server, LOAD_SECONDS) if shutil.which("wrk") else None
        stop = threading.Event()
        answers: list[str] = []
        python_load = None
        if wrk is None:  # wrk missing: the same check with a Python client
            python_load = threading.Thread(target=load_in_python, args=(server, stop, answers))
            python_load.start()
        try:
            time.sleep(INJECT_AFTER)
            inject(server)
            wait_for(lambda: "/load" in paths_seen(server), 10, "the load's requests tracked")
            if wrk is not None:
                output, _ = wrk.communicate(timeout=LOAD_SECONDS + 30)
                served, failed = wrk_failures(output)
            else:
                time.sleep(1)
                stop.set()
                python_load.join(30)  # type: ignore[union-attr]
                served = len(answers)
                failed = "; ".join(sorted({a for a in answers if a != "ok"}))
        finally:
            stop.set()
            if wrk is not None and wrk.poll() is None:
                wrk.kill()
                wrk.wait(10)
        assert served > 100, served
        assert failed == "", failed
        assert "Traceback" not in server.output() and "ERROR" not in server.output()


# --- attach --pid on a server without an agent ------------------------------------------------


@contextmanager
def attach_in_a_terminal(server: RunningServer, *args: str) -> Iterator[Terminal]:
    env = {**os.environ, ENV_RUNTIME_DIR: str(server.runtime_dir)}
    command = [sys.executable, "-m", "inspector", "attach", "--pid", str(server.process.pid)]
    terminal = Terminal([*command, *args], env, REPO_ROOT)
    try:
        yield terminal
    finally:
        terminal.stop()


def test_attach_offers_to_inject_once(debugger: str, tmp_path: Path) -> None:
    """No terminal: one line saying what to do. At a terminal: asked once, 'n' leaves the
    server alone, 'y' injects and opens the UI; --inject does not ask."""
    pytest.importorskip("textual")
    with plain_server(Path(sys.executable), tmp_path) as server:
        pid = server.process.pid
        env = {**os.environ, ENV_RUNTIME_DIR: str(server.runtime_dir)}
        piped = subprocess.run(
            [sys.executable, "-m", "inspector", "attach", "--pid", str(pid)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
            env=env,
        )
        line = one_line_refusal(piped)
        assert "pass --inject" in line and f"`inspector inject {pid}`" in line, line

        question = rf"pid {pid} \(.*inject_app:app.*\) has no agent; inject one now\? \[y/N\]"
        with attach_in_a_terminal(server) as terminal:
            terminal.wait_for(question)
            terminal.type("n\r")
            assert terminal.exit_status() == 2
            assert f"not injected: no agent in pid {pid}" in terminal.text
        assert server.registrations() == []

        with attach_in_a_terminal(server) as terminal:
            terminal.wait_for(question)
            terminal.type("y\r")
            terminal.wait_for(rf"agent started in pid {pid} at 127\.0\.0\.1:\d+", 20)
            assert len(server.registrations()) == 1
            terminal.wait_for(rf"live pid {pid}", 20)  # the UI shows the server
            assert terminal.process.poll() is None

        assert cli("inject", "--detach", str(pid), server=server).returncode == 0
        with attach_in_a_terminal(server, "--inject") as terminal:
            terminal.wait_for(rf"agent started in pid {pid}", 20)
            assert "[y/N]" not in terminal.text
            terminal.wait_for(rf"live pid {pid}", 20)
            assert terminal.process.poll() is None


# --- refusals: one line, exit 2 -------------------------------------------------------------


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextmanager
def process(*command: str) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(command, start_new_session=True)
    try:
        time.sleep(0.3)
        yield child
    finally:
        child.kill()
        child.wait(timeout=10)


def test_a_process_that_is_not_python_is_refused() -> None:
    with process("sleep", "30") as child:
        line = one_line_refusal(cli("inject", str(child.pid)))
    assert "is not a Python process" in line


def test_a_python_without_uvicorn_is_refused_and_left_alone(debugger: str) -> None:
    with process(sys.executable, "-c", "import time; time.sleep(30)") as child:
        result = cli("inject", str(child.pid))
        if "attach" in result.stderr:
            pytest.skip(f"no debugger can attach here: {result.stderr.strip()}")
        line = one_line_refusal(result)
        assert "without uvicorn" in line
        assert child.poll() is None


def test_no_debugger_says_which_package_to_install(tmp_path: Path) -> None:
    with plain_server(Path(sys.executable), tmp_path) as server:
        pid = server.process.pid
        for command in ("dump", "doctor"):  # what to do about a server without an agent
            line = one_line_refusal(cli(command, "--pid", str(pid), server=server))
            assert f"no agent in pid {pid}; run `inspector inject {pid}` or pass --inject" in line
        env = {**os.environ, "PATH": str(tmp_path / "empty")}
        result = subprocess.run(
            [sys.executable, "-m", "inspector", "inject", str(server.process.pid)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
            env=env,
        )
        line = one_line_refusal(result)
        assert "neither lldb nor gdb is installed" in line and "apt-get install lldb" in line


def test_no_ptrace_rights_says_how_to_get_them() -> None:
    """Root without CAP_SYS_PTRACE may not trace another user's process."""
    capsh, python = shutil.which("capsh"), "/usr/bin/python3"
    if os.geteuid() != 0 or capsh is None or not os.path.exists(python):
        pytest.skip("needs root, capsh and /usr/bin/python3 to play a process without rights")
    sleeper = [python, "-c", "import time; time.sleep(30)"]
    with process("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *sleeper) as child:
        command = f"{sys.executable} -m inspector inject {child.pid}"
        result = subprocess.run(
            [capsh, "--drop=cap_sys_ptrace", "--", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
        line = one_line_refusal(result)
        assert f"not allowed to attach to pid {child.pid}" in line
        assert "SYS_PTRACE" in line and "securityContext" in line
        assert child.poll() is None


@pytest.mark.parametrize("pid", ["0", "-5", "99999999"])
def test_bad_pids_get_one_line(pid: str) -> None:
    line = one_line_refusal(cli("inject", "--", pid))
    assert "no process with pid" in line
