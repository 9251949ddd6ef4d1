"""Errors keep their type across the client boundary and say whether trying again can help.

A poller retries what can come back (a refused, reset or silent connection) and stops on what
cannot (another protocol version, a peer that is not an agent, a payload that fails the model);
the CLI prints the same error as one line.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

from inspector import protocol
from inspector.client.agent_source import AgentSource
from inspector.client.source import ConnectError, DisconnectedError, SourceError, is_retryable
from inspector.model import ProcessInfo, Snapshot
from inspector.protocol import (
    CorruptFrameError,
    NotAnAgentError,
    PlainAiomonitorError,
    SchemaError,
    VersionMismatchError,
)

from .fake_monitor import FakeMonitor, agent_answer, hello_frame, running

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = Snapshot(process=ProcessInfo(pid=4242), taken_at=1_700_000_000.0)


def snapshot_frame(line: str) -> str:
    return protocol.encode_message("snapshot", SNAPSHOT)


def other_version(line: str) -> str:
    return hello_frame(version=protocol.PROTOCOL_VERSION + 1) + "\n"


async def connect_error(port: int, **options: float) -> ConnectError:
    source = AgentSource("127.0.0.1", port, **options)
    with pytest.raises(ConnectError) as caught:
        await source.connect()
    await source.close()
    return caught.value


async def snapshot_error(answer_snapshot: object) -> SourceError:
    base = agent_answer(snapshot_frame)

    def answer(line: str) -> object:
        if line.startswith(protocol.CMD_SNAPSHOT):
            return answer_snapshot(line)  # type: ignore[operator]
        return base(line)

    async with running(FakeMonitor(answer)) as monitor:  # type: ignore[arg-type]
        source = AgentSource("127.0.0.1", monitor.port)
        await source.connect()
        with pytest.raises(SourceError) as caught:
            await source.snapshot()
        await source.close()
    return caught.value


# --- at connect -------------------------------------------------------------------------------


async def test_a_closed_port_is_worth_another_try() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        error = await connect_error(sock.getsockname()[1])
    assert error.retryable and error.protocol_error is None and is_retryable(error)


async def test_another_protocol_version_is_not() -> None:
    async with running(FakeMonitor(other_version)) as monitor:
        error = await connect_error(monitor.port)
    assert not error.retryable and not is_retryable(error)
    assert isinstance(error.protocol_error, VersionMismatchError)
    assert f"speaks protocol {protocol.PROTOCOL_VERSION + 1}" in str(error)


async def test_a_plain_aiomonitor_is_typed_and_not_retried() -> None:
    def plain(line: str) -> str:
        return f"\x1b[0m✗ \x1b[0mNo such command '{line}'.\n"

    async with running(FakeMonitor(plain)) as monitor:
        error = await connect_error(monitor.port)
    assert isinstance(error.protocol_error, PlainAiomonitorError)
    assert not error.retryable


async def test_another_telnet_service_is_not_an_agent_for_good() -> None:
    service = FakeMonitor(lambda line: "sh: command not found\n", banner="Welcome\r\n")
    async with running(service) as monitor:
        error = await connect_error(monitor.port)
    assert isinstance(error.protocol_error, NotAnAgentError) and not error.retryable


async def test_a_server_that_hangs_up_may_be_restarting() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        error = await connect_error(server.sockets[0].getsockname()[1])
    finally:
        server.close()
    assert isinstance(error.protocol_error, NotAnAgentError)
    assert error.retryable  # "not an inspector agent, or the server stopped"


# --- after the handshake ----------------------------------------------------------------------


async def test_a_snapshot_that_fails_the_model_is_not_retried() -> None:
    def malformed(line: str) -> str:
        frame = protocol.encode_message("snapshot", SNAPSHOT)
        body = frame[len(protocol.BEGIN) : -len(protocol.END)].split(":", 2)[2]
        body = body.replace('"pid":4242', '"pid":"many"')
        return f"{protocol.BEGIN}json:{len(body)}:{body}{protocol.END}\n"

    error = await snapshot_error(malformed)
    assert type(error) is DisconnectedError
    assert isinstance(error.protocol_error, SchemaError) and not error.retryable


async def test_a_damaged_frame_is_retried() -> None:
    def damaged(line: str) -> str:
        return snapshot_frame(line).replace("json:", "json:1", 1) + "\n"

    error = await snapshot_error(damaged)
    assert type(error.protocol_error) is CorruptFrameError and error.retryable


async def test_an_agent_that_rejects_the_command_is_another_version() -> None:
    error = await snapshot_error(lambda line: "\x1b[0m✗ \x1b[0mNo such option: --enc\n")
    assert type(error) is SourceError and not error.retryable


async def test_an_agent_that_failed_once_may_succeed_next_time() -> None:
    def failed(line: str) -> str:
        result = protocol.Result(ok=False, message="collector crashed")
        return protocol.encode_message("error", result) + "\n"

    error = await snapshot_error(failed)
    assert type(error) is SourceError and error.retryable


def test_transport_errors_are_retryable() -> None:
    assert is_retryable(ConnectionResetError()) and is_retryable(TimeoutError())


# --- the CLI ----------------------------------------------------------------------------------


async def test_dump_of_an_agent_of_another_version_is_one_line_and_exit_2() -> None:
    async with running(FakeMonitor(other_version)) as monitor:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "inspector",
            "dump",
            f"127.0.0.1:{monitor.port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
            env={**os.environ, "NO_COLOR": "1"},
        )
        stdout, stderr = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 2
    assert stdout == b""
    assert stderr.decode() == (
        f"inspector: 127.0.0.1:{monitor.port}: the agent speaks protocol "
        f"{protocol.PROTOCOL_VERSION + 1}, this client speaks {protocol.PROTOCOL_VERSION}: "
        "install the same uvicorn-inspector version on both sides\n"
    )
    assert monitor.lines.count(protocol.CMD_HELLO) == 1  # asked once, not retried
