"""AgentSource against scripted peers: a well-behaved monitor, and every kind of wrong one.

Each failure must surface as ConnectError / DisconnectedError / SourceError with one line a
person understands, and within the connect timeout (3 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from inspector import protocol
from inspector.client.agent_source import AgentSource
from inspector.client.source import ConnectError, DisconnectedError, SourceError
from inspector.model import ProcessInfo, Snapshot, TaskInfo

from .fake_monitor import FakeMonitor, HangUp, agent_answer, hello_frame, running

SNAPSHOT = Snapshot(
    process=ProcessInfo(pid=4242),
    taken_at=1_700_000_000.0,
    tasks=(TaskInfo(id=1, name="Task-1", state="pending", coro="main"),),
)


def snapshot_frame(line: str) -> str:
    return protocol.encode_message("snapshot", SNAPSHOT, "zjson" if "zjson" in line else "json")


def agent(**options: object) -> FakeMonitor:
    return FakeMonitor(agent_answer(snapshot_frame), **options)  # type: ignore[arg-type]


def agent_answering_snapshots(answer_snapshot: Callable[[str], object]) -> FakeMonitor:
    """An agent whose snapshot lines are answered by `answer_snapshot` (a coroutine function
    for an answer that is slow, late or never comes)."""
    base = agent_answer(snapshot_frame)

    def answer(line: str) -> object:
        return answer_snapshot(line) if line.startswith("inspector-snapshot") else base(line)

    return FakeMonitor(answer)  # type: ignore[arg-type]


def assert_one_line(error: BaseException) -> None:
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text


@contextlib.asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A plain TCP server (not telnet) running `handler` per connection; yields its port."""
    writers: list[asyncio.StreamWriter] = []
    handlers: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await handler(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


async def connect_error(port: int, **options: float) -> tuple[ConnectError, float]:
    source = AgentSource("127.0.0.1", port, **options)
    started = time.monotonic()
    with pytest.raises(ConnectError) as caught:
        await source.connect()
    elapsed = time.monotonic() - started
    await source.close()
    assert_one_line(caught.value)
    return caught.value, elapsed


# --- the good path ---------------------------------------------------------------------------


@pytest.mark.parametrize("full_screen", [True, False], ids=["full-screen prompt", "plain prompt"])
async def test_handshake_then_snapshots_reuse_one_connection(full_screen: bool) -> None:
    async with running(agent(full_screen=full_screen)) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        hello = await source.connect()
        assert hello.process.pid == 4242
        for _ in range(3):
            assert await source.snapshot() == SNAPSHOT
        assert (await source.snapshot(with_stacks=False)).tasks == SNAPSHOT.tasks
        result = await source.cancel(7)
        await source.close()
    assert result == protocol.Result(ok=True, message="cancelled")
    assert monitor.lines == [
        "inspector-hello",
        "inspector-snapshot",
        "inspector-snapshot",
        "inspector-snapshot",
        "inspector-snapshot --no-stacks",
        "inspector-cancel 7",
    ]


async def test_remote_hosts_ask_for_compressed_snapshots() -> None:
    async with running(agent()) as monitor:
        source = AgentSource("127.0.0.1", monitor.port, compress=True)
        assert await source.snapshot() == SNAPSHOT  # connects on first use
        await source.close()
    assert monitor.lines[-1] == "inspector-snapshot --enc zjson"
    assert not AgentSource("127.0.0.1", 1).compress
    assert AgentSource("10.1.2.3", 1).compress


async def test_concurrent_callers_are_served_one_command_at_a_time() -> None:
    async def slow_snapshot(line: str) -> str:
        await asyncio.sleep(0.02)
        return snapshot_frame(line) + "\n"

    async with running(agent_answering_snapshots(slow_snapshot)) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        await source.connect()
        results = await asyncio.gather(*(source.snapshot() for _ in range(5)))
        await source.close()
    assert results == [SNAPSHOT] * 5
    assert monitor.max_concurrent == 1


async def test_cursor_position_requests_are_answered() -> None:
    """A full-screen prompt that asks where the cursor is waits for the answer."""

    class AsksForCursor(FakeMonitor):
        async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"\xff\xfd\x18\xff\xfa\x18\x01\xff\xf0")
            await reader.read(100)
            writer.write(b"\x1b[6n")
            reply = await asyncio.wait_for(reader.readuntil(b"R"), 2)
            assert reply.endswith(b"\x1b[1;1R")
            await super().session(reader, writer)

    async with running(AsksForCursor(agent_answer(snapshot_frame), negotiate=False)) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        assert (await source.connect()).process.pid == 4242
        await source.close()


async def test_snapshot_reconnects_after_the_connection_dropped() -> None:
    async with running(agent()) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        await source.connect()
        for writer in list(monitor._writers):
            writer.transport.abort()
        await asyncio.sleep(0)  # nothing to wait for: the next call must cope either way
        with contextlib.suppress(DisconnectedError):
            await source.snapshot()
        assert await source.snapshot() == SNAPSHOT
        await source.close()
    assert monitor.lines.count("inspector-hello") == 2


async def test_cancelled_command_never_answers_the_next_one() -> None:
    """A snapshot cancelled mid-flight still gets answered later; that late answer must not be
    taken as the answer to the next command, so the connection is replaced."""
    release = asyncio.Event()
    served = 0

    async def late_snapshot(line: str) -> str:
        nonlocal served
        served += 1
        if served == 1:
            await release.wait()
            stale = dataclasses.replace(SNAPSHOT, taken_at=1.0)
            return protocol.encode_message("snapshot", stale) + "\n"
        return snapshot_frame(line) + "\n"

    async with running(agent_answering_snapshots(late_snapshot)) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        await source.connect()
        pending = asyncio.ensure_future(source.snapshot())
        await asyncio.sleep(0.05)
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        release.set()
        assert await source.snapshot() == SNAPSHOT
        await source.close()
    assert monitor.lines.count("inspector-hello") == 2


async def test_closing_during_a_command_says_so() -> None:
    async def never(line: str) -> str:
        await asyncio.sleep(30)
        return ""

    async with running(agent_answering_snapshots(never)) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        await source.connect()
        pending = asyncio.ensure_future(source.snapshot())
        await asyncio.sleep(0.05)
        await source.close()
        with pytest.raises(DisconnectedError) as caught:
            await pending
    assert str(caught.value) == f"the connection to 127.0.0.1:{monitor.port} was closed"


async def test_a_closed_source_stays_closed() -> None:
    async with running(agent()) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        await source.connect()
        await source.close()
        with pytest.raises(DisconnectedError, match="closed"):
            await source.snapshot()
        await source.close()  # twice is fine


# --- wrong peers at connect ------------------------------------------------------------------


async def test_closed_port_says_nothing_is_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        error, elapsed = await connect_error(port)
    assert str(error) == f"nothing is listening on 127.0.0.1:{port}"
    assert elapsed < 1


async def test_unresolvable_host_is_named() -> None:
    source = AgentSource("no-such-host.invalid", 20101)
    started = time.monotonic()
    with pytest.raises(ConnectError) as caught:
        await source.connect()
    assert time.monotonic() - started < 3.5
    assert str(caught.value) in (
        "cannot resolve host 'no-such-host.invalid'",
        "no answer from no-such-host.invalid:20101 within 3 s (is the host up? a firewall?)",
    )


async def test_http_server_is_not_an_agent() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()  # like uvicorn: wait for a request line, refuse a bad one
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(http) as port:
        error, elapsed = await connect_error(port)
    assert "is not an inspector agent" in str(error)
    assert "HTTP/1.1 400 Bad Request" in str(error)
    assert elapsed < 3


async def test_garbage_is_not_an_agent() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(bytes(range(256)) * 4)
        await writer.drain()
        await asyncio.sleep(5)

    async with raw_server(garbage) as port:
        error, elapsed = await connect_error(port)
    assert "is not an inspector agent" in str(error)
    assert elapsed < 1.5


async def test_silent_server_is_reported_within_the_connect_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    async with raw_server(silent) as port:
        error, elapsed = await connect_error(port)
    assert "sent nothing within 3 s" in str(error)
    assert 2.9 < elapsed < 3.5


async def test_server_that_hangs_up_is_not_an_agent() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with raw_server(hang_up) as port:
        error, elapsed = await connect_error(port)
    assert "closed the connection" in str(error)
    assert elapsed < 1


async def test_plain_aiomonitor_is_recognised() -> None:
    def plain(line: str) -> str:
        return f"\x1b[0m✗ \x1b[0mNo such command '{line}'.\n"

    async with running(FakeMonitor(plain)) as monitor:
        error, elapsed = await connect_error(monitor.port)
    assert str(error) == (
        f"127.0.0.1:{monitor.port} is an aiomonitor without the inspector agent (try "
        "`inspector attach`, which can read plain aiomonitor, or install the agent)"
    )
    assert elapsed < 1


async def test_other_telnet_service_is_not_an_agent() -> None:
    service = FakeMonitor(lambda line: "sh: command not found\n", banner="Welcome\r\n")
    async with running(service) as monitor:
        error, _ = await connect_error(monitor.port)
    assert str(error) == (
        f"127.0.0.1:{monitor.port} is a telnet service but not an inspector agent "
        "(it answered 'sh: command not found')"
    )


async def test_telnet_without_prompt_is_reported() -> None:
    async def negotiate_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\xff\xfd\x18\xff\xfa\x18\x01\xff\xf0")
        await asyncio.sleep(10)

    async with raw_server(negotiate_only) as port:
        error, elapsed = await connect_error(port, connect_timeout=1.0)
    assert "speaks telnet but showed no prompt within 1 s" in str(error)
    assert elapsed < 1.5


async def test_newer_protocol_is_refused_with_advice() -> None:
    def answer(line: str) -> str:
        return hello_frame(version=protocol.PROTOCOL_VERSION + 1) + "\n"

    async with running(FakeMonitor(answer)) as monitor:
        error, _ = await connect_error(monitor.port)
    assert f"speaks protocol {protocol.PROTOCOL_VERSION + 1}" in str(error)
    assert "install the same uvicorn-inspector version" in str(error)


async def test_hello_that_is_not_a_hello_is_refused() -> None:
    def answer(line: str) -> str:
        return protocol.BEGIN + "json:2:{}" + protocol.END + "\n"

    async with running(FakeMonitor(answer)) as monitor:
        error, _ = await connect_error(monitor.port)
    assert "is not a working inspector agent" in str(error)


# --- failures after a good handshake --------------------------------------------------------


async def snapshot_failure(answer_snapshot: Callable[[str], object], **options: object) -> str:
    async with running(agent_answering_snapshots(answer_snapshot)) as monitor:
        source = AgentSource("127.0.0.1", monitor.port, **options)  # type: ignore[arg-type]
        await source.connect()
        started = time.monotonic()
        with pytest.raises(SourceError) as caught:
            await source.snapshot()
        assert time.monotonic() - started < 3
        await source.close()
    assert_one_line(caught.value)
    return f"{type(caught.value).__name__}: {caught.value}"


async def test_truncated_frame_then_close() -> None:
    def truncated(line: str) -> HangUp:
        return HangUp(snapshot_frame(line)[:200])

    message = await snapshot_failure(truncated)
    assert message == (
        "DisconnectedError: 127.0.0.1:{port} closed the connection in the middle of an answer "
        "(did the server stop?)"
    ).replace("{port}", message.split("127.0.0.1:")[1].split(" ")[0])


async def test_huge_frame_is_refused_before_it_is_buffered() -> None:
    def huge(line: str) -> str:
        return protocol.BEGIN + "json:999999:" + "x" * 200_000 + "\n"

    message = await snapshot_failure(huge, max_frame_chars=50_000)
    assert message.startswith("DisconnectedError: ")
    assert "larger than 50,000 characters" in message


async def test_length_mismatch_is_a_corrupt_snapshot() -> None:
    def corrupt(line: str) -> str:
        frame = snapshot_frame(line)
        return frame.replace("json:", "json:1", 1) + "\n"

    message = await snapshot_failure(corrupt)
    assert message.startswith("DisconnectedError: ")
    assert "truncated" in message


async def test_endless_output_without_frames_times_out() -> None:
    async def endless(line: str) -> str:
        await asyncio.sleep(30)
        return ""

    class Endless(FakeMonitor):
        async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async def flood() -> None:
                while True:
                    writer.write(b"la la la " * 1000)
                    await writer.drain()
                    await asyncio.sleep(0.001)

            flooding: asyncio.Task[None] | None = None
            original_answer = self.answer

            def answer(line: str) -> object:
                nonlocal flooding
                if line.startswith("inspector-snapshot"):
                    flooding = asyncio.ensure_future(flood())
                    return endless(line)
                return original_answer(line)

            self.answer = answer  # type: ignore[assignment]
            try:
                await super().session(reader, writer)
            finally:
                if flooding is not None:
                    flooding.cancel()

    async with running(Endless(agent_answer(snapshot_frame))) as monitor:
        source = AgentSource("127.0.0.1", monitor.port, command_timeout=1.0)
        await source.connect()
        started = time.monotonic()
        with pytest.raises(DisconnectedError) as caught:
            await source.snapshot()
        elapsed = time.monotonic() - started
        await source.close()
    assert str(caught.value) == (
        f"127.0.0.1:{monitor.port} did not answer `inspector-snapshot` within 1 s "
        "(is the process frozen or its monitor thread stuck?)"
    )
    assert elapsed < 2


async def test_agent_error_is_reported_and_the_connection_kept() -> None:
    calls = 0

    def failing_once(line: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            result = protocol.Result(ok=False, message="collector crashed:\nKeyError 'x'")
            return protocol.encode_message("error", result) + "\n"
        return snapshot_frame(line) + "\n"

    async with running(agent_answering_snapshots(failing_once)) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        await source.connect()
        with pytest.raises(SourceError) as caught:
            await source.snapshot()
        assert await source.snapshot() == SNAPSHOT
        await source.close()
    assert str(caught.value) == (
        f"the agent at 127.0.0.1:{monitor.port} could not take a snapshot: "
        "collector crashed: KeyError 'x'"
    )
    assert monitor.lines.count("inspector-hello") == 1


async def test_rejected_command_line_is_quoted() -> None:
    def usage_error(line: str) -> str:
        return "\x1b[0m✗ \x1b[0mNo such option: --max-tasks\n"

    message = await snapshot_failure(usage_error, max_tasks=5)
    assert message == (
        "SourceError: the agent at 127.0.0.1:{port} rejected `inspector-snapshot --max-tasks 5`: "
        "No such option: --max-tasks"
    ).replace("{port}", message.split("127.0.0.1:")[1].split(" ")[0])


async def test_server_stops_between_commands() -> None:
    async with running(agent()) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        await source.connect()
    # The monitor is gone entirely now: reconnecting fails too.
    started = time.monotonic()
    with pytest.raises(DisconnectedError) as caught:
        await source.snapshot()
    assert time.monotonic() - started < 1
    assert_one_line(caught.value)
    await source.close()
