"""`inspector run` end to end: a real uvicorn subprocess, the real agent, the real termui socket."""

from __future__ import annotations

import json
import signal
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspector.model import Snapshot, Stall
from inspector.protocol import Hello
from tests.e2e.test_doctor_e2e import marked_line
from tests.helpers.server import (
    HOST,
    REPO_ROOT,
    RunningServer,
    free_port,
    free_port_run,
    inspector_run,
)
from tests.helpers.telnet import TermuiClient

pytestmark = pytest.mark.e2e

APP = "tests.apps.core_app:app"
APP_FILE = Path(__file__).resolve().parents[1] / "apps" / "core_app.py"
BLOCKING_LINE = next(
    number
    for number, text in enumerate(APP_FILE.read_text().splitlines(), start=1)
    if "BLOCKING-LINE" in text
)


@pytest.fixture(scope="module")
def asyncio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with inspector_run(APP, tmp_path_factory.mktemp("asyncio"), loop="asyncio") as server:
        yield server


def _snapshot(client: TermuiClient) -> Snapshot:
    message = client.command("inspector-snapshot")
    assert message.type == "snapshot", message
    assert isinstance(message.payload, Snapshot)
    return message.payload


def _wait_for_stall(client: TermuiClient, at_least: float, timeout: float = 5.0) -> Stall:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = [s for s in _snapshot(client).stalls if not s.ongoing and s.duration >= at_least]
        if finished:
            return finished[-1]
        time.sleep(0.05)
    raise AssertionError(f"no finished stall of {at_least} s within {timeout} s")


def _block_and_find_stall(server: RunningServer) -> Stall:
    with TermuiClient(*server.agent_address()) as client:
        before = {s.id for s in _snapshot(client).stalls}
        server.get("/block?seconds=1", timeout=15)
        stall = _wait_for_stall(client, at_least=0.5)
        assert stall.id not in before
        return stall


def test_hello_and_snapshot_round_trip(asyncio_server: RunningServer) -> None:
    host, port = asyncio_server.agent_address()
    assert (host, port) == (HOST, asyncio_server.inspect_port)
    with TermuiClient(host, port) as client:
        hello = client.command("inspector-hello")
        assert hello.type == "hello"
        assert isinstance(hello.payload, Hello)
        assert hello.payload.process.pid == asyncio_server.process.pid
        assert hello.payload.process.app == APP
        assert hello.payload.process.loop == "asyncio"
        assert "stalls" in hello.payload.capabilities
        timings = []
        for _ in range(10):
            started = time.perf_counter()
            snapshot = _snapshot(client)
            timings.append(time.perf_counter() - started)
        assert snapshot.process.pid == asyncio_server.process.pid
        assert snapshot.loop is not None and snapshot.loop.implementation == "asyncio"
        assert "watchdog" in snapshot.health.probes
    median_ms = statistics.median(timings) * 1000
    print(f"snapshot round trip: median {median_ms:.1f} ms, max {max(timings) * 1000:.1f} ms")
    # Nagle + delayed ACK alone would cost ~40 ms per answer; a loaded CI box gets slack.
    assert median_ms < 250


def _assert_stall_names_the_blocking_line(stall: Stall) -> None:
    assert 0.8 <= stall.duration <= 1.5, stall.duration
    assert stall.samples, "no stack sampled during the stall"
    innermost = stall.samples[0].frames[-1]
    assert Path(innermost.file).resolve() == APP_FILE
    assert innermost.line == BLOCKING_LINE
    assert innermost.function == "block"
    assert innermost.code is not None and "time.sleep" in innermost.code
    assert stall.task_id is not None, "the running (request) task was not named"
    assert stall.task_name
    assert stall.request_label is not None and "/block" in stall.request_label
    print(f"stall duration {stall.duration:.4f} s for a 1 s sleep")


def test_blocking_sleep_in_async_endpoint_is_a_stall_naming_the_line(
    asyncio_server: RunningServer,
) -> None:
    stall = _block_and_find_stall(asyncio_server)
    _assert_stall_names_the_blocking_line(stall)


def test_blocking_sleep_is_found_on_uvloop_too(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    with inspector_run(APP, tmp_path, loop="uvloop") as server:
        with TermuiClient(*server.agent_address()) as client:
            assert client.command("inspector-hello").payload.process.loop == "uvloop"
        stall = _block_and_find_stall(server)
        _assert_stall_names_the_blocking_line(stall)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_is_prompt_with_a_client_attached(tmp_path: Path, sig: int) -> None:
    with inspector_run(APP, tmp_path) as server:
        with TermuiClient(*server.agent_address()) as client:
            client.command("inspector-hello")
            seconds = server.stop(sig, timeout=10)
        print(f"exit {seconds:.2f} s after {signal.Signals(sig).name}")
        assert seconds < 3.0, server.output()
        assert server.registrations() == []


def _answers_at_once(host: str, port: int) -> Snapshot:
    """A snapshot from a fresh client, which must come within a few seconds."""
    started = time.monotonic()
    with TermuiClient(host, port, timeout=5) as other:
        snapshot = other.command("inspector-snapshot").payload
    assert time.monotonic() - started < 5.0, "another client waited on the one not reading"
    assert isinstance(snapshot, Snapshot)
    return snapshot


def test_client_that_stopped_reading_is_dropped_and_blocks_nobody(tmp_path: Path) -> None:
    with inspector_run(APP, tmp_path) as server:
        server.get("/spawn?count=2000")
        host, port = server.agent_address()
        # A tiny receive window, many large answers requested, and then nothing read.
        client = TermuiClient(host, port, rcvbuf=4096)
        try:
            client.wait_for_prompt()
            client.raw_socket().sendall(b"inspector-snapshot\r" * 400)
            deadline = time.monotonic() + 60
            while not _answers_at_once(host, port).health.clients_dropped:
                assert time.monotonic() < deadline, "the client not reading was never dropped"
                assert server.get("/"), "the app must keep serving"
                time.sleep(0.5)
            seconds = server.stop(signal.SIGTERM, timeout=10)
        finally:
            client.close()
        print(f"exit {seconds:.2f} s after SIGTERM, a client not reading dropped")
        assert seconds < 3.0, server.output()


def test_busy_inspect_port_is_a_clear_startup_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, 0))
        holder.listen(1)
        busy = holder.getsockname()[1]
        with inspector_run(APP, tmp_path, inspect_port=busy, wait_ready=False) as server:
            code = server.wait_exit(20)
            output = server.output()
    assert code is not None, "inspector run hung on a busy port"
    assert code != 0
    assert str(busy) in output and "already in use" in output
    assert "Traceback" not in output


def test_workers_get_one_agent_each(tmp_path: Path) -> None:
    base = free_port_run(2)
    with inspector_run(APP, tmp_path, workers=2, inspect_port=base) as server:
        registrations = server.registrations()
        assert len(registrations) == 2
        assert {r.port for r in registrations} == {base, base + 1}
        assert {r.worker for r in registrations} == {0, 1}
        assert all(r.ppid == server.process.pid for r in registrations)
        for registration in registrations:
            with TermuiClient(registration.host, registration.port) as client:
                hello = client.command("inspector-hello").payload
                assert hello.process.pid == registration.pid
        seconds = server.stop(signal.SIGTERM, timeout=10)
        assert seconds < 5.0
        assert server.registrations() == []


def _run_cli(*args: str, timeout: float = 30) -> tuple[int, str]:
    import subprocess

    from tests.helpers.server import REPO_ROOT

    completed = subprocess.run(
        [sys.executable, "-m", "inspector", "run", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return completed.returncode, completed.stdout + completed.stderr


def test_remote_inspect_host_needs_allow_remote() -> None:
    code, output = _run_cli(APP, "--inspect-host", "0.0.0.0", "--port", str(free_port()))
    assert code == 2
    assert "0.0.0.0" in output and "--allow-remote" in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_app_that_cannot_be_imported_is_one_line_and_exit_2() -> None:
    code, output = _run_cli(
        "tests.apps.core_no_such_module:app",
        *("--port", str(free_port()), "--inspect-port", str(free_port())),
    )
    assert code == 2
    assert "cannot load the app" in output and "core_no_such_module" in output
    assert len(output.strip().splitlines()) == 1


def test_an_app_whose_import_raises_shows_its_traceback_then_one_line() -> None:
    code, output = _run_cli(
        "tests.apps.import_raises_app:app",
        *("--port", str(free_port()), "--inspect-port", str(free_port())),
    )
    lines = output.strip().splitlines()
    app_file = str(REPO_ROOT / "tests" / "apps" / "import_raises_app.py")
    raising = marked_line("import_raises_app.py", "RAISES-LINE")
    assert code == 2
    assert lines[0] == "Traceback (most recent call last):"
    assert f'File "{app_file}", line {raising}, in load_settings' in output
    assert "ValueError: invalid literal for int() with base 10: 'four'" in output
    assert "/inspector/" not in output and "importlib" not in output
    assert lines[-1].startswith("inspector: cannot load the app: importing ")
    assert lines[-1].endswith(
        "raised ValueError: invalid literal for int() with base 10: 'four'; the traceback "
        "above ends at the line to fix"
    )


def test_an_app_attribute_that_does_not_exist_is_one_line_and_exit_2() -> None:
    code, output = _run_cli(
        "tests.apps.core_app:no_such_app",
        *("--port", str(free_port()), "--inspect-port", str(free_port())),
    )
    assert code == 2
    assert output.strip() == (
        "inspector: cannot load the app: module 'tests.apps.core_app' has no attribute "
        "'no_such_app'"
    )


@pytest.mark.parametrize("share", ["0", "1.5", "lots"])
def test_an_agent_cpu_share_outside_zero_to_one_is_refused(share: str) -> None:
    code, output = _run_cli(APP, "--agent-cpu", share)
    assert code == 2
    assert "--agent-cpu" in output and "Traceback" not in output


def test_help_teaches_with_examples() -> None:
    code, output = _run_cli("--help")
    assert code == 0
    assert "--inspect-port" in output and "--allow-remote" in output
    assert "inspector run main:app --workers 4" in output


def test_allow_remote_serves_on_another_address_with_a_warning(tmp_path: Path) -> None:
    args = ("--inspect-host", "0.0.0.0", "--allow-remote")
    with inspector_run(APP, tmp_path, args=args) as server:
        [registration] = server.registrations()
        assert registration.host == "0.0.0.0"
        with TermuiClient(HOST, registration.port) as client:
            assert client.command("inspector-hello").type == "hello"
        assert "WARNING" in server.output() and "without authentication" in server.output()


def test_run_freezes_its_own_start_up_objects_but_not_the_apps(tmp_path: Path) -> None:
    with inspector_run(APP, tmp_path) as server:
        seen = json.loads(server.get("/gc"))
    assert seen["frozen"] > 10_000, seen  # aiomonitor and its libraries, uvicorn, the stdlib
    assert seen["uvicorn_tracked"] is False, seen
    assert seen["app_tracked"] is True, seen  # the app's objects are collected as usual


def test_no_gc_freeze_leaves_the_collector_alone(tmp_path: Path) -> None:
    with inspector_run(APP, tmp_path, args=["--no-gc-freeze"]) as server:
        seen = json.loads(server.get("/gc"))
    assert seen == {"frozen": 0, "app_tracked": True, "uvicorn_tracked": True}, seen


def test_no_lifecycle_keeps_tasks_and_stalls_with_nothing_per_request(tmp_path: Path) -> None:
    from inspector.render import render_snapshot

    with inspector_run(APP, tmp_path, args=["--no-lifecycle"]) as server:
        server.get("/")
        with TermuiClient(*server.agent_address()) as client:
            hello = client.command("inspector-hello").payload
            assert isinstance(hello, Hello)
            assert {"tasks", "stacks", "stalls"} <= set(hello.capabilities)
            lifecycle = {"requests", "background", "threadpool", "exceptions"}
            assert not lifecycle & set(hello.capabilities)
        stall = _block_and_find_stall(server)
        innermost = stall.samples[0].frames[-1]
        assert (Path(innermost.file).resolve(), innermost.line) == (APP_FILE, BLOCKING_LINE)
        with TermuiClient(*server.agent_address()) as client:
            snapshot = _snapshot(client)
    assert snapshot.requests == () and snapshot.recent_requests == ()
    assert set(snapshot.health.probes) == {"watchdog", "tasks"}
    text = render_snapshot(snapshot)
    assert "Requests: not tracked by this agent (started with --no-lifecycle" in text


def test_trace_exceptions_without_lifecycle_is_a_clear_error() -> None:
    code, output = _run_cli(APP, "--no-lifecycle", "--trace-exceptions")
    assert code == 2
    assert output.strip() == (
        "inspector: --trace-exceptions needs the lifecycle probes: drop --no-lifecycle"
    )


def test_above_the_detail_rate_the_dump_says_the_requests_are_a_sample(tmp_path: Path) -> None:
    from inspector.render import render_snapshot

    with inspector_run(APP, tmp_path, args=["--request-detail-rate", "1"]) as server:
        deadline = time.monotonic() + 1.2
        sent = 0
        while time.monotonic() < deadline or sent < 20:
            server.get("/")
            sent += 1
        time.sleep(1.0)
        server.get("/")  # the second window: one request a second was asked for
        with TermuiClient(*server.agent_address()) as client:
            snapshot = _snapshot(client)
    assert snapshot.requests_detailed_every >= 5 and snapshot.requests_undetailed > 0
    assert 0 < len(snapshot.recent_requests) <= sent + 1
    text = render_snapshot(snapshot)
    assert f"Busy server: 1 in {snapshot.requests_detailed_every:,} requests is recorded" in text


def test_a_bad_detail_rate_is_a_clear_error() -> None:
    code, output = _run_cli(APP, "--request-detail-rate", "0")
    assert code == 2
    assert output.strip().splitlines()[-1] == (
        "inspector run: error: argument --request-detail-rate: not a number of requests a "
        "second or \"all\": '0'"
    )
