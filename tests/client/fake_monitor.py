"""A scriptable telnet server that behaves like aiomonitor's termui, or misbehaves on purpose.

It speaks the same negotiation as prompt_toolkit's telnet server (nothing happens until the
client reports its terminal type), draws prompts in either style (full-screen with bracketed
paste markers, or plain text), and answers each typed line with whatever the test's `answer`
function returns. Hostile behaviours are small subclasses or answer functions in the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from inspector import protocol
from inspector.model import ProcessInfo

IAC, SB, SE, WILL, DO = 255, 250, 240, 251, 253
TTYPE, NAWS, LINEMODE, ECHO, SGA = 24, 31, 34, 1, 3

NEGOTIATION = bytes(
    [IAC, DO, LINEMODE, IAC, WILL, SGA, IAC, SB, LINEMODE, 1, 0, IAC, SE, IAC, WILL, ECHO]
    + [IAC, DO, NAWS, IAC, DO, TTYPE, IAC, SB, TTYPE, 1, IAC, SE]
)
BANNER = "\r\nAsyncio Monitor: 3 tasks running\r\nType help for available commands\r\n\r\n"
FULL_PROMPT = "\x1b[?12l\x1b[?25h\x1b[?2004h\x1b[0;1mmonitor >>> \x1b[12D\x1b[12C\x1b[0m"
PLAIN_PROMPT = "monitor >>> "

Answer = Callable[[str], "str | Awaitable[str | None] | None"]


class HangUp(str):
    """An answer after which the server closes the connection without a new prompt."""


def hello_frame(version: int = protocol.PROTOCOL_VERSION, pid: int = 4242) -> str:
    hello = protocol.Hello(
        protocol=version, agent_version="test", process=ProcessInfo(pid=pid, python="3.11.7")
    )
    frame = protocol.encode_message("hello", hello)
    if version != protocol.PROTOCOL_VERSION:
        frame = frame.replace(f'"protocol":{protocol.PROTOCOL_VERSION}', f'"protocol":{version}')
        body = frame[len(protocol.BEGIN) : -len(protocol.END)].split(":", 2)[2]
        frame = f"{protocol.BEGIN}json:{len(body)}:{body}{protocol.END}"
    return frame


def agent_answer(snapshot_frame: Callable[[str], str]) -> Answer:
    """Answers like an agent: a hello frame, and `snapshot_frame(line)` for snapshots."""

    def answer(line: str) -> str | None:
        if line == protocol.CMD_HELLO:
            return hello_frame() + "\n"
        if line.startswith(protocol.CMD_SNAPSHOT):
            return snapshot_frame(line) + "\n"
        if line.startswith(protocol.CMD_CANCEL):
            result = protocol.Result(ok=True, message="cancelled")
            return protocol.encode_message("result", result) + "\n"
        return f"\x1b[0m✗ \x1b[0mNo such command '{line.split()[0]}'.\r\n"

    return answer


@dataclass
class FakeMonitor:
    """One listening socket; `answer(line)` returns the text printed for a typed line."""

    answer: Answer
    full_screen: bool = True
    negotiate: bool = True
    banner: str = BANNER
    prompt_delay: float = 0.0
    lines: list[str] = field(default_factory=list)
    """Every line a client typed, in order."""
    concurrent: int = 0
    max_concurrent: int = 0
    port: int = 0
    _server: asyncio.AbstractServer | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> FakeMonitor:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def prompt(self) -> str:
        return FULL_PROMPT if self.full_screen else PLAIN_PROMPT

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self.session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.negotiate:
            writer.write(NEGOTIATION)
            await _read_terminal_type(reader)
        await asyncio.sleep(self.prompt_delay)
        writer.write((self.banner + self.prompt()).encode())
        async for line in _typed_lines(reader):
            self.lines.append(line)
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
            if self.full_screen:
                writer.write(f"\x1b[0;1mmonitor >>> \x1b[0m{line}\r\r\n\x1b[?2004l".encode())
            else:
                writer.write(f"{line}\r\r\n".encode())
            output = self.answer(line)
            if asyncio.iscoroutine(output) or isinstance(output, asyncio.Future):
                output = await output
            self.concurrent -= 1
            if output is None:
                return  # the answer function asked to hang up
            writer.write(output.replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode())
            if isinstance(output, HangUp):
                await writer.drain()
                return
            writer.write(self.prompt().encode())
            await writer.drain()


async def _read_terminal_type(reader: asyncio.StreamReader) -> str:
    """Read client bytes until the terminal type report (IAC SB TTYPE IS ... IAC SE)."""
    data = b""
    marker = bytes([IAC, SB, TTYPE, 0])
    while True:
        chunk = await reader.read(1024)
        if not chunk:
            raise ConnectionResetError
        data += chunk
        start = data.find(marker)
        end = data.find(bytes([IAC, SE]), start + 1) if start >= 0 else -1
        if end >= 0:
            return data[start + len(marker) : end].decode()


async def _typed_lines(reader: asyncio.StreamReader) -> AsyncIterator[str]:
    buffer = b""
    while True:
        chunk = await reader.read(4096)
        if not chunk:
            return
        buffer += _strip_iac(chunk)
        while b"\r" in buffer:
            line, _, buffer = buffer.partition(b"\r")
            buffer = buffer.lstrip(b"\n\x00")
            # A pasted line arrives in bracketed-paste markers; prompt_toolkit inserts the text.
            yield line.replace(b"\x1b[200~", b"").replace(b"\x1b[201~", b"").decode()


def _strip_iac(data: bytes) -> bytes:
    out = bytearray()
    index = 0
    while index < len(data):
        byte = data[index]
        if byte != IAC:
            out.append(byte)
            index += 1
            continue
        verb = data[index + 1] if index + 1 < len(data) else None
        if verb == SB:
            end = data.find(bytes([IAC, SE]), index)
            index = len(data) if end < 0 else end + 2
        else:
            index += 3
    return bytes(out)


@contextlib.asynccontextmanager
async def running(monitor: FakeMonitor) -> AsyncIterator[FakeMonitor]:
    await monitor.start()
    try:
        yield monitor
    finally:
        await monitor.stop()
