"""A minimal blocking client for the agent's termui, for tests only.

It speaks just enough telnet to get aiomonitor's prompt (terminal type ``dumb`` unless told, a
wide window), types one command line at a time and extracts the answer frame with
`inspector.protocol` (`command`), or returns the text printed for a person (`say`). It is
deliberately independent of the product's client, so agent tests do not depend on it.

    with TermuiClient("127.0.0.1", port) as client:
        hello = client.command("inspector-hello").payload      # protocol.Hello
        snapshot = client.command("inspector-snapshot").payload
"""

from __future__ import annotations

import socket
import time
from types import TracebackType

from inspector import protocol
from inspector.protocol import FrameReader, Message

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SGA, TTYPE, NAWS, LINEMODE = 1, 3, 24, 31, 34
TTYPE_IS, TTYPE_SEND = 0, 1
PROMPT = "monitor >>>"


class TermuiError(Exception):
    pass


class _TelnetFilter:
    """Strips telnet commands from received bytes and produces the replies they need."""

    def __init__(self, terminal: bytes = b"dumb") -> None:
        self._pending = b""
        self._terminal = terminal

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        buffer = self._pending + data
        self._pending = b""
        text = bytearray()
        replies = bytearray()
        i = 0
        while i < len(buffer):
            byte = buffer[i]
            if byte != IAC:
                text.append(byte)
                i += 1
                continue
            if i + 1 >= len(buffer):
                self._pending = buffer[i:]
                break
            command = buffer[i + 1]
            if command == IAC:
                text.append(IAC)
                i += 2
            elif command in (DO, DONT, WILL, WONT):
                if i + 2 >= len(buffer):
                    self._pending = buffer[i:]
                    break
                replies += self._answer(command, buffer[i + 2])
                i += 3
            elif command == SB:
                end = buffer.find(bytes([IAC, SE]), i + 2)
                if end < 0:
                    self._pending = buffer[i:]
                    break
                body = buffer[i + 2 : end]
                if body[:2] == bytes([TTYPE, TTYPE_SEND]):
                    replies += bytes([IAC, SB, TTYPE, TTYPE_IS]) + self._terminal + bytes([IAC, SE])
                i = end + 2
            else:
                i += 2
        return bytes(text), bytes(replies)

    @staticmethod
    def _answer(command: int, option: int) -> bytes:
        if command == DO and option == TTYPE:
            return bytes([IAC, WILL, TTYPE])
        if command == DO and option == NAWS:
            # 1000 columns x 50 rows: nothing gets wrapped.
            return bytes([IAC, WILL, NAWS, IAC, SB, NAWS, 3, 232, 0, 50, IAC, SE])
        if command == DO:
            return bytes([IAC, WONT, option])
        if command == WILL and option in (ECHO, SGA):
            return bytes([IAC, DO, option])
        if command == WILL:
            return bytes([IAC, DONT, option])
        return b""


class TermuiClient:
    """One connection to an agent's termui. Every wait is bounded by `timeout`."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = 10.0,
        rcvbuf: int | None = None,
        terminal: str = "dumb",
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # must be set before connect to limit the TCP window
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._sock.settimeout(timeout)
        self._sock.connect((host, port))
        self._filter = _TelnetFilter(terminal.encode("ascii"))
        self._text = ""

    def __enter__(self) -> TermuiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    def _receive(self, deadline: float) -> str:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TermuiError("timed out waiting for the agent")
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise TermuiError("timed out waiting for the agent") from None
        if not data:
            raise TermuiError("the agent closed the connection")
        text, replies = self._filter.feed(data)
        if replies:
            self._sock.sendall(replies)
        decoded = text.decode("utf-8", errors="replace")
        if "\x1b[6n" in decoded:  # cursor position request: answer it or lose a second
            self._sock.sendall(b"\x1b[1;1R")
        return decoded

    def wait_for_prompt(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while PROMPT not in self._text:
            self._text = (self._text + self._receive(deadline))[-8192:]
        self._text = ""

    def send_line(self, line: str) -> None:
        self._sock.sendall(line.encode("utf-8") + b"\r")

    def command(self, line: str, timeout: float | None = None) -> Message:
        """Type `line` at the prompt and return the decoded answer frame."""
        self.wait_for_prompt(timeout)
        self.send_line(line)
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        reader = FrameReader()
        tail = ""
        while True:
            chunk = self._receive(deadline)
            tail = (tail + chunk)[-65536:]
            frames = reader.feed(chunk)
            if frames:
                # Keep what followed the frame: the next prompt may already be in it.
                self._text = tail[tail.rfind(protocol.END) + len(protocol.END) :]
                return protocol.decode_frame(frames[0])

    def say(self, line: str, timeout: float | None = None) -> str:
        """Type `line` at the prompt as a person would; the text printed before the next
        prompt."""
        self.wait_for_prompt(timeout)
        self.send_line(line)
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        text = ""
        while PROMPT not in text:
            text += self._receive(deadline)
        answer, _, self._text = text.partition(PROMPT)
        self._text = PROMPT + self._text  # the prompt is still there for the next line
        return answer

    def raw_socket(self) -> socket.socket:
        return self._sock
