"""`inspector dump` and AgentSource against real servers: `inspector run` with the agent, and a
plain aiomonitor without it. Every process is killed in teardown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from inspector import protocol
from inspector.client.agent_source import AgentSource
from inspector.client.source import ConnectError, DisconnectedError
from tests.helpers.processes import OutputProcess
from tests.helpers.server import RunningServer, inspector_run

pytestmark = pytest.mark.e2e

APP = "tests.client.parked_app:app"
REPO = Path(__file__).resolve().parents[2]
PARKED_LINE = "await EVENT.wait()  # parked here on purpose"


def dump(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", "dump", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def address(server: RunningServer) -> str:
    host, port = server.agent_address()
    return f"{host}:{port}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the tests that only read from it."""
    with inspector_run(APP, tmp_path_factory.mktemp("parked")) as running:
        yield running


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_text_dump_shows_the_parked_task_and_its_await_chain(server: RunningServer) -> None:
    done = dump(address(server))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"Process {server.process.pid}: ")
    entry = out[out.index("order-worker-") :]
    end = entry.find("\n  ", entry.index("+ 2 more tasks"))  # the next entry, if any: tasks
    entry = entry if end == -1 else entry[:end]  # first seen together have no fixed order
    chain = [
        "order_worker (tests/client/parked_app.py:",
        "await handle_order()",
        "handle_order (tests/client/parked_app.py:",
        "await wait_for_release()",
        "wait_for_release (tests/client/parked_app.py:",
        PARKED_LINE,
    ]
    positions = [entry.index(step) for step in chain]
    assert positions == sorted(positions)
    assert "waiting on Event 0x" in entry and "3 waiting" in entry
    assert "+ 2 more tasks with the same stack" in entry


def test_saved_json_reads_back_the_same(server: RunningServer, tmp_path: Path) -> None:
    saved = tmp_path / "f.json"
    done = dump(address(server), "--format", "json", "-o", str(saved))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    original = protocol.decode_snapshot_file(saved.read_text())
    again = tmp_path / "g.json"
    assert dump(str(saved), "-o", str(again)).returncode == 0
    read_back = protocol.decode_snapshot_file(again.read_text())
    assert read_back.source == "file"
    assert read_back.tasks == original.tasks
    assert read_back.process == original.process
    text = dump(str(saved))
    assert text.returncode == 0 and PARKED_LINE in text.stdout
    assert "from saved file" in text.stdout


def test_pid_finds_the_agent_through_its_registration(server: RunningServer) -> None:
    done = dump(
        "--pid",
        str(server.process.pid),
        "--no-stacks",
        env={"INSPECTOR_RUNTIME_DIR": str(server.runtime_dir)},
    )
    assert done.returncode == 0, done.stderr
    assert "order-worker-0" in done.stdout and PARKED_LINE not in done.stdout


async def test_one_connection_serves_many_snapshots(server: RunningServer) -> None:
    host, port = server.agent_address()
    source = AgentSource(host, port)
    hello = await source.connect()
    assert hello.process.pid == server.process.pid
    for _ in range(5):
        snapshot = await source.snapshot(with_stacks=False)
        assert sum(t.name.startswith("order-worker-") for t in snapshot.tasks) == 3
    await source.close()


def test_plain_prompt_when_the_servers_terminal_is_dumb(tmp_path: Path) -> None:
    """A server started with TERM=dumb draws aiomonitor's prompt as plain text."""
    with inspector_run(APP, tmp_path, env={"TERM": "dumb"}) as dumb:
        done = dump(address(dumb), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert len(protocol.decode_snapshot_file(done.stdout).tasks) >= 3


def test_target_killed_while_connected_is_one_line(tmp_path: Path) -> None:
    with inspector_run(APP, tmp_path) as victim:
        host, port = victim.agent_address()

        async def scenario() -> str:
            source = AgentSource(host, port)
            await source.connect()
            victim.process.send_signal(signal.SIGSTOP)  # frozen mid-conversation ...
            snapshot = asyncio.ensure_future(source.snapshot())
            await asyncio.sleep(0)
            os.killpg(victim.process.pid, signal.SIGKILL)  # ... then gone
            started = time.monotonic()
            with pytest.raises(DisconnectedError) as caught:
                await snapshot
            assert time.monotonic() - started < 3
            await source.close()
            return str(caught.value)

        message = asyncio.run(scenario())
    assert message == f"{host}:{port} closed the connection (did the server stop?)"


def test_dump_of_a_target_killed_during_the_dump_exits_2(tmp_path: Path) -> None:
    with inspector_run(APP, tmp_path) as victim:
        target = address(victim)
        port = victim.agent_address()[1]
        victim.process.send_signal(signal.SIGSTOP)
        child = subprocess.Popen(
            [sys.executable, "-m", "inspector", "dump", target],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def connected() -> bool:
                return any(
                    c.raddr and c.raddr.port == port
                    for c in psutil.Process(child.pid).net_connections()
                )

            wait_until(connected)
            os.killpg(victim.process.pid, signal.SIGKILL)
            out, err = child.communicate(timeout=5)
        finally:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            child.wait(timeout=5)
    assert child.returncode == 2
    assert out == ""
    assert err.startswith(f"inspector: {target} closed the connection")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_frozen_target_times_out_with_one_line(tmp_path: Path) -> None:
    with inspector_run(APP, tmp_path) as frozen:
        target = address(frozen)
        frozen.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            done = dump(target, "--timeout", "1")
            elapsed = time.monotonic() - started
        finally:
            frozen.process.send_signal(signal.SIGCONT)
    assert done.returncode == 2
    assert done.stderr == (
        f"inspector: {target} accepted the connection but sent nothing within 1 s: "
        "not an inspector agent, or its process is frozen\n"
    )
    assert elapsed < 3


@pytest.fixture
def plain_aiomonitor() -> Iterator[int]:
    """A plain aiomonitor (no agent) in a subprocess; yields its termui port."""
    monitor = OutputProcess([sys.executable, str(Path(__file__).with_name("monitor_app.py"))])
    try:
        yield int(monitor.wait_for_output(r"READY (\d+)").group(1))
    finally:
        monitor.stop()


async def test_agent_source_tells_a_plain_aiomonitor_apart(plain_aiomonitor: int) -> None:
    source = AgentSource("127.0.0.1", plain_aiomonitor)
    started = time.monotonic()
    with pytest.raises(ConnectError) as caught:
        await source.connect()
    assert time.monotonic() - started < 3
    assert str(caught.value) == (
        f"127.0.0.1:{plain_aiomonitor} is an aiomonitor without the inspector agent (try "
        "`inspector attach`, which can read plain aiomonitor, or install the agent)"
    )


def test_dump_reads_a_plain_aiomonitor_with_fewer_facts(plain_aiomonitor: int) -> None:
    done = dump(f"127.0.0.1:{plain_aiomonitor}")
    assert done.returncode == 0, done.stderr
    assert "from plain aiomonitor" in done.stdout
    assert "Requests: not available without the inspector agent" in done.stdout
    assert "Tasks (" in done.stdout
