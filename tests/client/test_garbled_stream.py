"""Bytes that are not UTF-8 from the agent's socket: read as U+FFFD, never a crash.

A scripted monitor sends real frames over a real socket, with bytes that are not UTF-8 put in
on the way out: inside a string they are text with replacement characters; anywhere else the
frame is refused with one line, and the next snapshot is read on a fresh connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from inspector import protocol
from inspector.client.agent_source import AgentSource
from inspector.client.source import DisconnectedError
from inspector.model import ProcessInfo, Snapshot, TaskInfo

from .fake_monitor import FakeMonitor, agent_answer, running

MARK = "@~@"
NOT_UTF8 = b"\xc3\x28\x80"
"""A lead byte without its continuation, then a stray continuation: read as "\\ufffd(\\ufffd",
three characters for the three of `MARK`, so the frame's length still matches."""


class _Garbling:
    """A stream writer that puts `NOT_UTF8` wherever `MARK` is written."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        self._writer.write(data.replace(MARK.encode(), NOT_UTF8))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class GarblingMonitor(FakeMonitor):
    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await super().session(reader, _Garbling(writer))  # type: ignore[arg-type]


def monitor_sending(frames: list[str]) -> GarblingMonitor:
    """An agent whose snapshot answers are `frames`, one per command, in order."""
    return GarblingMonitor(agent_answer(lambda line: frames.pop(0)))


def snapshot_named(name: str) -> Snapshot:
    task = TaskInfo(id=1, name=name, state="pending", coro="main")
    return Snapshot(process=ProcessInfo(pid=4242), taken_at=1_700_000_000.0, tasks=(task,))


async def test_bytes_that_are_not_utf8_in_a_name_arrive_as_replacement_characters() -> None:
    frame = protocol.encode_message("snapshot", snapshot_named(f"x{MARK}y"))
    async with running(monitor_sending([frame])) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        await source.connect()
        snapshot = await asyncio.wait_for(source.snapshot(), 10)
        await source.close()
    assert snapshot.tasks[0].name == "x\ufffd(\ufffdy"
    protocol.encode_snapshot_file(snapshot).encode("utf-8")  # and it can be saved


@pytest.mark.parametrize("where", ['"taken_at"', "1700000000.0", '"payload"'])
async def test_bytes_that_are_not_utf8_in_the_json_are_one_line_and_the_next_reads(
    where: str,
) -> None:
    good = protocol.encode_message("snapshot", snapshot_named("Task-1"))
    assert where in good
    bad = good.replace(where, where[:-3] + MARK, 1)  # a closing quote or a digit garbled
    async with running(monitor_sending([bad, good])) as monitor:
        source = AgentSource("127.0.0.1", monitor.port)
        await source.connect()
        with pytest.raises(DisconnectedError) as caught:
            await asyncio.wait_for(source.snapshot(), 10)
        assert "\n" not in str(caught.value)
        assert "the agent sent invalid JSON" in str(caught.value)
        assert (await asyncio.wait_for(source.snapshot(), 10)).tasks[0].name == "Task-1"
        await source.close()
