"""A stock aiomonitor without the agent, read through its own terminal commands."""

from __future__ import annotations

import asyncio
import sys
import threading
import urllib.request

import pytest

from inspector.client.aiomonitor_source import AiomonitorSource, probe_aiomonitor
from inspector.client.source import Source
from inspector.model import Snapshot
from inspector.protocol import Hello
from tests.fleet.conftest import APPS, Server

pytestmark = pytest.mark.e2e

APP = APPS / "fleet_aiomonitor_app.py"


def _line_of(text: str) -> int:
    lines = APP.read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if text in line)


def _start(servers: list[Server], *args: str) -> tuple[int, int]:
    server = Server([sys.executable, str(APP), *args])
    servers.append(server)
    match = server.wait_for_output(r"READY (\d+) (\d+)")
    return int(match.group(1)), int(match.group(2))


async def _read_once(source: Source) -> tuple[Hello, Snapshot]:
    """Connect, take one snapshot, close."""
    try:
        hello = await source.connect()
        return hello, await source.snapshot()
    finally:
        await source.close()


async def test_parked_task_with_its_stack_down_to_the_await(servers: list[Server]) -> None:
    _, termui = _start(servers)
    hello, snapshot = await _read_once(AiomonitorSource("127.0.0.1", termui))

    assert hello.process.pid == servers[0].pid
    assert snapshot.source == "aiomonitor"
    assert set(snapshot.capabilities) == {"tasks", "stacks", "cancel"}
    parked = next(t for t in snapshot.tasks if t.name == "parked-on-event")
    assert parked.coro == "wait_for_the_signal"
    app_frames = [f for f in parked.stack if f.file == str(APP)]
    assert app_frames[-1].function == "wait_for_the_signal"
    assert app_frames[-1].line == _line_of("await event.wait()  # parked")
    assert app_frames[-1].code is not None and "await event.wait()" in app_frames[-1].code
    assert parked.stack[-1].function == "wait"  # the stdlib Event.wait it sits in
    assert snapshot.loop_thread_stack, "the loop thread's stack comes from `stacktrace`"


async def test_cancel_a_task_and_refuse_an_unknown_one(servers: list[Server]) -> None:
    _, termui = _start(servers)
    source = AiomonitorSource("127.0.0.1", termui)
    try:
        await source.connect()
        parked = next(t for t in (await source.snapshot()).tasks if t.name == "parked-on-event")

        refused = await source.cancel(12345)
        cancelled = await source.cancel(parked.id)
        after = await source.snapshot(with_stacks=False)
    finally:
        await source.close()

    assert not refused.ok and "12345" in refused.message
    assert cancelled.ok, cancelled.message
    assert all(t.id != parked.id for t in after.tasks)


async def test_blocked_loop_shows_the_blocking_line(servers: list[Server]) -> None:
    http, termui = _start(servers)
    source = AiomonitorSource("127.0.0.1", termui)
    await source.connect()
    request = threading.Thread(
        target=lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{http}/block?s=2", timeout=10
        ).read()
    )
    try:
        request.start()
        snapshot = None
        for _ in range(40):  # the monitor keeps answering while the loop is held
            snapshot = await source.snapshot()
            if any(f.function == "block" for f in snapshot.loop_thread_stack):
                break
            await asyncio.sleep(0.05)
    finally:
        await source.close()
        request.join(timeout=10)

    assert snapshot is not None
    blocking = [f for f in snapshot.loop_thread_stack if f.function == "block"]
    assert blocking and blocking[-1].line == _line_of("time.sleep(float(")
    running = snapshot.task(snapshot.current_task_id) if snapshot.current_task_id else None
    assert running is not None and running.state == "running"
    assert any(f.function == "block" for f in running.stack)


async def test_hook_mode_reports_a_failed_task_and_creation_lines(servers: list[Server]) -> None:
    _, termui = _start(servers, "--hook")
    _, snapshot = await _read_once(AiomonitorSource("127.0.0.1", termui))

    doomed = next(t for t in snapshot.tasks if t.name == "doomed")
    assert doomed.state == "failed"
    assert doomed.exception == "RuntimeError('nobody awaited this task')"
    assert doomed.stack[-1].function == "fire_and_forget_failure"
    parked = next(t for t in snapshot.tasks if t.name == "parked-on-event")
    assert parked.created_at is not None
    assert parked.created_at.line == _line_of("asyncio.create_task(wait_for_the_signal(event)")
    assert all("/aiomonitor/" not in f.file for f in parked.stack), "hook wrapper hidden"


async def test_probe_tells_a_monitor_from_an_http_port(servers: list[Server]) -> None:
    http, termui = _start(servers)
    assert await probe_aiomonitor("127.0.0.1", termui)
    assert not await probe_aiomonitor("127.0.0.1", http, timeout=1.5)


async def test_agent_source_falls_back_to_the_plain_monitor(servers: list[Server]) -> None:
    from inspector.client.agent_source import AgentSource
    from inspector.client.aiomonitor_source import with_aiomonitor_fallback

    _, termui = _start(servers)
    source = with_aiomonitor_fallback(AgentSource("127.0.0.1", termui), "127.0.0.1", termui)
    hello, snapshot = await _read_once(source)

    assert hello.process.pid == servers[0].pid
    assert snapshot.source == "aiomonitor"
    assert any(t.name == "parked-on-event" for t in snapshot.tasks)


def test_dump_reads_a_plain_monitor(servers: list[Server]) -> None:
    import subprocess

    from tests.fleet.conftest import REPO, VENV_BIN

    _, termui = _start(servers)
    done = subprocess.run(
        [str(VENV_BIN / "inspector"), "dump", f"127.0.0.1:{termui}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    if done.returncode != 0 and "aiomonitor without the inspector agent" in done.stderr:
        pytest.skip("`inspector dump` does not fall back to a plain aiomonitor in this build")
    assert done.returncode == 0, done.stderr
    assert "parked-on-event" in done.stdout
    assert "wait_for_the_signal" in done.stdout
