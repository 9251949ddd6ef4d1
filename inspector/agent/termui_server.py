"""The agent's termui server: aiomonitor's command line over telnet, safe to leave open.

aiomonitor serves its command line through prompt_toolkit's telnet server. In someone's
production server that server was the weak point (each failure measured on 0.7.1 / 3.0.53):

* every connection's input goes through an OS pipe read with ``select()``: past 1,024 open file
  descriptors (a busy server) that raises, and the agent's thread retries it forever;
* a pipe leaks with each connection (one file descriptor and about 9 KB each);
* the listen backlog is 4, so a burst of clients waits seconds for the kernel to retry;
* writes are blocking: a client that sends and never reads freezes the agent's thread;
* a sub-negotiation is buffered until it ends, and a paste is rendered key by key: an
  unterminated one followed by 100 MB took the server to 5.7 GB.

This server keeps aiomonitor's thread, loop and click commands and replaces the transport: an
asyncio server on that loop (epoll: any file descriptor number), non-blocking writes that wait
for the client with a deadline, input parsed with hard bounds (`inspector.agent.telnet_input`),
at most `MAX_CONNECTIONS` clients at once, and every byte a client makes the agent read charged
to the agent's CPU budget. What each connection runs is `inspector.agent.line_session`.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Final

from inspector.agent.telnet_input import GREETING, InputViolation, TelnetInput
from inspector.escape import printable

LISTEN_BACKLOG: Final = 128
"""Connections the kernel holds while the agent's thread is busy (a burst of `doctor`s)."""
MAX_CONNECTIONS: Final = 2 * LISTEN_BACKLOG
"""Clients served at once. A UI, a few dumps and a scraper fit many times over; above the
backlog, so that one burst accepted at once (clients that already left among them) never
fills the slots by itself. Each costs a few kilobytes until it sends something."""
IDLE_EVICT_AFTER: Final = 30.0
"""Seconds without a byte after which a connection may be closed to make room for a new one."""
MAX_QUEUED_LINES: Final = 8
"""Lines typed ahead of their answers; past this the client is not read until it catches up."""
WRITE_HIGH_WATER: Final = 256 * 1024
SEND_TIMEOUT_BASE: Final = 10.0
"""Seconds a client gets to take an answer, plus one per `SEND_BYTES_PER_SECOND`."""
SEND_BYTES_PER_SECOND: Final = 512 * 1024

Session = Callable[["TermuiConnection"], Awaitable[None]]


class ClientNotReading(Exception):
    """The client did not take an answer within its deadline; it was disconnected."""


class ServerEvents:
    """What the server reports to the agent: CPU to charge, and clients it had to turn away.

    The defaults do nothing, for a server without an agent (tests, a plain monitor)."""

    def pace(self) -> None:
        """Charge the CPU used so far; may wait when clients ask for more than their share."""

    def client_dropped(self, reason: str) -> None:
        """A client broke a bound or stopped reading and was disconnected."""

    def client_refused(self) -> None:
        """A client was turned away: `MAX_CONNECTIONS` were open and none was idle."""


class TermuiConnection(asyncio.Protocol):
    """One client: bounded input in, escaped text and frames out, never a blocking call."""

    def __init__(self, server: TermuiServer) -> None:
        self._server = server
        self.input = TelnetInput()
        self.stdout = ConnectionOutput(self)
        self.last_active = time.monotonic()
        self.closed = False
        self._transport: asyncio.Transport | None = None
        self._lines: collections.deque[str] = collections.deque()
        self._changed = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading_paused = False
        self._ended = False
        self._task: asyncio.Task[None] | None = None

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:  # answers are one write each: without this each waits for a delayed ACK
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if not self._server.admit(self):
            self.write_text("✗ too many clients on the inspector agent; try again later\n")
            self.abort()
            return
        transport.write(GREETING)
        self._task = asyncio.get_running_loop().create_task(self._server.run_session(self))

    def data_received(self, data: bytes) -> None:
        self._server.events.pace()
        self.last_active = time.monotonic()
        try:
            lines = self.input.feed(data)
        except InputViolation as violation:
            self.drop(f"sent {violation}")
            return
        if self.input.replies and self._transport is not None:
            self._transport.write(bytes(self.input.replies))
            self.input.replies.clear()
        if lines:
            self._lines.extend(lines)
            if len(self._lines) >= MAX_QUEUED_LINES and self._transport is not None:
                self._transport.pause_reading()
                self._reading_paused = True
        if self.input.ended:
            self._ended = True
        self._changed.set()

    def eof_received(self) -> bool:
        self._ended = True
        self._changed.set()
        return False  # close our side as well

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        self._writable.set()
        self._changed.set()
        self._server.forget(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # --- what a session uses -----------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """False while the client's receive window and our buffer are full."""
        return self._writable.is_set()

    @property
    def ended(self) -> bool:
        """The client has gone, said Ctrl-D, or was cut off: nothing more will be read."""
        return self._ended or self.closed

    @property
    def terminal(self) -> str | None:
        """The terminal type the client reported, lower case; None when it did not (yet)."""
        return self.input.terminal

    async def wait_terminal(self, seconds: float) -> str | None:
        """The terminal type, waiting up to `seconds` for a client that has not said it yet."""
        deadline = time.monotonic() + seconds
        while self.input.terminal is None and not self.input.terminal_refused:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed or self._ended:
                break
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return self.input.terminal

    async def next_line(self) -> str | None:
        """The next line typed; None once the client has gone or ended the session."""
        while not self._lines:
            if self.closed or self._ended:
                return None
            self._changed.clear()
            await self._changed.wait()
        line = self._lines.popleft()
        if self._reading_paused and len(self._lines) < MAX_QUEUED_LINES // 2:
            self._reading_paused = False
            if self._transport is not None:
                self._transport.resume_reading()
        return line

    def write_text(self, text: str) -> None:
        """Text for a person: control characters escaped, new lines as telnet's CR LF."""
        if self._transport is not None:
            data = printable(text, multiline=True).replace("\n", "\r\n")
            self._transport.write(data.encode("utf-8", "backslashreplace"))

    def write_frame(self, data: bytes) -> None:
        """Bytes that are already safe (an ASCII frame), as they are."""
        if self._transport is not None:
            self._transport.write(data)

    async def drain(self) -> None:
        """Wait until the client has taken what was written, within a deadline that grows
        with the amount; past it the client is disconnected and ClientNotReading raised."""
        transport = self._transport
        if transport is None or self._writable.is_set():
            return
        pending = transport.get_write_buffer_size()
        seconds = SEND_TIMEOUT_BASE + pending / SEND_BYTES_PER_SECOND
        try:
            await asyncio.wait_for(self._writable.wait(), seconds)
        except asyncio.TimeoutError:
            self.drop("stopped reading")
            raise ClientNotReading from None

    def drop(self, reason: str) -> None:
        """Disconnect a client that broke a bound, and say so in the agent's health."""
        if not self.closed:
            self._server.events.client_dropped(reason)
        self.write_text(f"✗ disconnected: the client {reason}\n")
        self.abort()

    def abort(self) -> None:
        """Close at once, dropping anything not yet sent (never wait on a client)."""
        self._ended = True
        self._changed.set()
        if self._transport is not None:
            self._transport.abort()

    def cancel_session(self) -> asyncio.Task[None] | None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        return self._task


class ConnectionOutput:
    """The file-like `stdout` aiomonitor's commands (and click, and traceback) write to."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def __init__(self, connection: TermuiConnection) -> None:
        self._connection = connection

    @property
    def connection(self) -> TermuiConnection:
        return self._connection

    def write(self, text: str) -> int:
        self._connection.write_text(text)
        return len(text)

    def flush(self) -> None:
        pass  # every write goes to the transport at once

    def isatty(self) -> bool:
        return False  # so click strips styles, and prompt_toolkit sends no screen codes


class TermuiServer:
    """Listens on the agent's termui port and runs one session per connection."""

    def __init__(
        self,
        session: Session,
        events: ServerEvents | None = None,
        *,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.events = events or ServerEvents()
        self.max_connections = max_connections
        self._session = session
        self._connections: set[TermuiConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        """Bind and listen; raises OSError when the port is taken."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: TermuiConnection(self),
            host,
            port,
            backlog=LISTEN_BACKLOG,
            reuse_address=True,
        )

    @property
    def port(self) -> int:
        """The port listened on (useful after binding port 0); 0 before `start`."""
        sockets = self._server.sockets if self._server is not None else ()
        return int(sockets[0].getsockname()[1]) if sockets else 0

    @property
    def connections(self) -> int:
        return len(self._connections)

    @property
    def stalled_writers(self) -> int:
        """Connections whose client has stopped reading: their answers wait in the buffer."""
        return sum(1 for connection in tuple(self._connections) if not connection.writable)

    def admit(self, connection: TermuiConnection) -> bool:
        """Make room for a new connection when every slot is taken: first from clients that
        have already left (a burst of connects ends faster than it is cleaned up), then from
        the longest-idle one if it has been idle long enough; otherwise refuse the newcomer."""
        self.events.pace()
        if len(self._connections) >= self.max_connections:
            gone = [c for c in self._connections if c.ended]
            for left in gone:
                left.abort()
                self._connections.discard(left)
        if len(self._connections) >= self.max_connections:
            idle = min(self._connections, key=lambda c: c.last_active)
            if time.monotonic() - idle.last_active < IDLE_EVICT_AFTER:
                self.events.client_refused()
                return False
            idle.drop("was idle and its place was needed")
            self._connections.discard(idle)
        self._connections.add(connection)
        return True

    def forget(self, connection: TermuiConnection) -> None:
        self._connections.discard(connection)

    async def run_session(self, connection: TermuiConnection) -> None:
        try:
            await self._session(connection)
        except asyncio.CancelledError:
            pass
        except ClientNotReading:
            pass
        except Exception as error:  # a session's bug must end that session only
            self.events.client_dropped(f"session failed: {error!r}")
        finally:
            connection.abort()

    async def close(self, timeout: float = 1.0) -> None:
        """Stop listening, end every session, and wait for them briefly."""
        if self._server is not None:
            self._server.close()
        tasks = [t for c in list(self._connections) if (t := c.cancel_session()) is not None]
        for connection in list(self._connections):
            connection.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        self._connections.clear()
