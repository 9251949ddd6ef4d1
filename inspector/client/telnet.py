"""A minimal telnet client for aiomonitor's termui, on a raw asyncio transport.

aiomonitor serves its command line through prompt_toolkit's telnet server. Three of its habits
shape this module (measured, see the aiomonitor notes in the design docs):

* the session never starts until the client answers the terminal-type request, so we answer
  ``dumb`` (the cheapest type: no colours to compute, no cursor-position requests);
* a full-screen prompt asks for the cursor position (``ESC[6n``) and waits up to a second for
  the answer, so any such request is answered at once;
* its socket writes are *blocking* and run on the monitor's only thread: a client that stops
  reading freezes the whole monitor and, with it, the server's shutdown. The transport here never
  pauses reading; everything that arrives is handed to the listener straight away.

Nothing here knows about inspector frames; `inspector.client.agent_source` does.
"""

from __future__ import annotations

import asyncio
import codecs
import socket
from collections.abc import Iterable
from typing import Any, Final, Protocol

# Telnet bytes (RFC 854, 1091, 1073, 1184).
IAC: Final = 255
DONT: Final = 254
DO: Final = 253
WONT: Final = 252
WILL: Final = 251
SB: Final = 250
SE: Final = 240
OPT_ECHO: Final = 1
OPT_SGA: Final = 3
OPT_TTYPE: Final = 24
OPT_NAWS: Final = 31
OPT_LINEMODE: Final = 34
TTYPE_IS: Final = 0
TTYPE_SEND: Final = 1

TERMINAL_TYPE: Final = "dumb"
PASTE_START: Final = b"\x1b[200~"
PASTE_END: Final = b"\x1b[201~"
WIDE_WINDOW: Final = (1000, 50)
"""Columns and rows for reading what the server prints for a person: wide, so nothing wraps."""
SMALL_WINDOW: Final = (80, 4)
"""For a client that reads only frames (written past the terminal layer): prompt_toolkit
redraws its prompt over the whole window width after every command, in the server's GIL."""

CURSOR_POSITION_REQUEST: Final = "\x1b[6n"
CURSOR_POSITION_REPLY: Final = b"\x1b[1;1R"

RECEIVE_BUFFER_BYTES: Final = 4 * 1024 * 1024
"""Room in the kernel for a whole large snapshot (10,000 tasks with stacks is about 1.6 MB), so
the monitor's blocking send returns even while this process is briefly busy elsewhere."""

_ACCEPTED_DO: Final = frozenset({OPT_TTYPE, OPT_NAWS})
_ACCEPTED_WILL: Final = frozenset({OPT_ECHO, OPT_SGA})


class TerminalListener(Protocol):
    """Receives what the server prints, with telnet commands already removed."""

    def text_received(self, text: str) -> None: ...

    def connection_lost(self, error: Exception | None) -> None: ...


class TelnetProtocol(asyncio.Protocol):
    """Negotiates the options aiomonitor asks for and passes the rest on as text."""

    def __init__(
        self,
        listener: TerminalListener,
        window: tuple[int, int] = WIDE_WINDOW,
        terminal: str = TERMINAL_TYPE,
    ) -> None:
        self._listener = listener
        self._window = window
        self._terminal = terminal
        self._transport: asyncio.Transport | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._state = "data"  # data | iac | verb | sb | sb-iac
        self._verb = 0
        self._subnegotiation = bytearray()
        self._answered: set[tuple[int, int]] = set()
        self._cpr_tail = ""
        self.bytes_received = 0
        self.negotiated = False
        """True once the peer sent any telnet command (a real telnet server does at once)."""
        self.first_bytes = b""
        """The first bytes the peer sent, kept to describe a peer that is not a telnet server."""

    @property
    def foreign(self) -> bool:
        """True when the peer spoke first and not in telnet: a telnet server's first byte is a
        command (IAC); an HTTP server's or anything else's is not."""
        return bool(self.first_bytes) and self.first_bytes[0] != IAC

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if len(self.first_bytes) < 256:
            self.first_bytes += data[: 256 - len(self.first_bytes)]
        self.bytes_received += len(data)
        text = self._decoder.decode(bytes(self._strip_telnet(data)))
        if text:
            self._answer_cursor_requests(text)
            self._listener.text_received(text)

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._listener.connection_lost(exc)

    # --- sending -----------------------------------------------------------------------------

    def send_line(self, line: str) -> None:
        """Type one command line and press return (a bare CR, as a terminal does).

        The line is pasted (bracketed paste), not typed: prompt_toolkit handles a paste as one
        key and every typed character as a key of its own, each costing the server a walk of
        its screen layout while it holds the GIL the app needs.
        """
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(PASTE_START + line.encode("utf-8") + PASTE_END + b"\r")

    def send_raw(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # never wait to flush to a peer that may not read

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    # --- telnet ------------------------------------------------------------------------------

    def _strip_telnet(self, data: bytes) -> bytearray:
        """Remove telnet commands from `data` (they may straddle chunks); answer them."""
        out = bytearray()
        index = 0
        size = len(data)
        while index < size:
            if self._state == "data":
                # Fast path: UTF-8 never contains 0xFF, so a large frame is copied in one go.
                found = data.find(IAC, index)
                if found < 0:
                    out += data[index:]
                    break
                out += data[index:found]
                index = found + 1
                self._state = "iac"
                continue
            byte = data[index]
            index += 1
            if self._state == "iac":
                self.negotiated = True
                if byte == IAC:
                    out.append(IAC)  # an escaped literal 0xFF
                    self._state = "data"
                elif byte in (DO, DONT, WILL, WONT):
                    self._verb = byte
                    self._state = "verb"
                elif byte == SB:
                    self._subnegotiation.clear()
                    self._state = "sb"
                else:
                    self._state = "data"  # NOP, GA and friends carry nothing
            elif self._state == "verb":
                self._answer_option(self._verb, byte)
                self._state = "data"
            elif self._state == "sb":
                if byte == IAC:
                    self._state = "sb-iac"
                elif len(self._subnegotiation) < 1024:
                    self._subnegotiation.append(byte)
            elif self._state == "sb-iac":
                if byte == SE:
                    self._answer_subnegotiation(bytes(self._subnegotiation))
                    self._state = "data"
                else:
                    self._subnegotiation.append(byte)  # IAC IAC inside SB is a literal 0xFF
                    self._state = "sb"
        return out

    def _answer_option(self, verb: int, option: int) -> None:
        # Answer each request once: answering a repeated request again can start a loop
        # between two implementations that both reply to replies (RFC 1143).
        if (verb, option) in self._answered:
            return
        self._answered.add((verb, option))
        if verb == DO:
            if option in _ACCEPTED_DO:
                self.send_raw(bytes((IAC, WILL, option)))
                if option == OPT_NAWS:
                    self.send_raw(_naws_report(*self._window))
            else:
                self.send_raw(bytes((IAC, WONT, option)))  # LINEMODE and anything unknown
        elif verb == WILL:
            answer = DO if option in _ACCEPTED_WILL else DONT
            self.send_raw(bytes((IAC, answer, option)))
        # DONT / WONT: we never asked for anything, so there is nothing to withdraw.

    def _answer_subnegotiation(self, payload: bytes) -> None:
        if payload[:2] == bytes((OPT_TTYPE, TTYPE_SEND)):
            self.send_raw(
                bytes((IAC, SB, OPT_TTYPE, TTYPE_IS))
                + self._terminal.encode("ascii")
                + bytes((IAC, SE))
            )

    def _answer_cursor_requests(self, text: str) -> None:
        # The request is 4 characters; keeping the last 3 catches one split across chunks
        # without ever counting the same request twice.
        window = self._cpr_tail + text
        for _ in range(window.count(CURSOR_POSITION_REQUEST)):
            self.send_raw(CURSOR_POSITION_REPLY)
        self._cpr_tail = window[-(len(CURSOR_POSITION_REQUEST) - 1) :]


def _naws_report(columns: int, rows: int) -> bytes:
    size = bytes((columns >> 8, columns & 0xFF, rows >> 8, rows & 0xFF))
    escaped = size.replace(bytes((IAC,)), bytes((IAC, IAC)))
    return bytes((IAC, SB, OPT_NAWS)) + escaped + bytes((IAC, SE))


async def open_telnet(
    host: str,
    port: int,
    listener: TerminalListener,
    window: tuple[int, int] = WIDE_WINDOW,
    terminal: str = TERMINAL_TYPE,
) -> TelnetProtocol:
    """Connect to `host:port` and start negotiating; raises OSError (incl. socket.gaierror).

    `window` is the (columns, rows) and `terminal` the terminal type reported to the server.

    The caller bounds the time (the kernel's connect timeout is minutes).
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last_error: OSError | None = None
    for family, kind, proto, _name, address in _loopback_first(infos):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            _tune(sock)
            await loop.sock_connect(sock, address)
        except OSError as error:
            sock.close()
            last_error = error
            continue
        except BaseException:
            sock.close()
            raise
        _, protocol = await loop.create_connection(
            lambda: TelnetProtocol(listener, window, terminal), sock=sock
        )
        return protocol
    raise last_error or OSError(f"no address found for {host}")


def _loopback_first(infos: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """IPv4 first: "localhost" may resolve to ::1 while the monitor binds 127.0.0.1 only."""
    return sorted(infos, key=lambda info: info[0] != socket.AF_INET)


def _tune(sock: socket.socket) -> None:
    # Before connect, so the window scale advertised in the SYN allows the large buffer.
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    except OSError:
        pass
    # Commands are tiny: without NODELAY each one waits for the previous segment's ACK.
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
