"""What a termui client sends, parsed with hard bounds: lines out, telnet commands answered.

Everything that arrives on the agent's port comes from someone we do not trust. The parser keeps
at most one partial line (`MAX_LINE_BYTES`) and one partial sub-negotiation
(`MAX_SUBNEGOTIATION_BYTES`); a client that goes past either is in violation and is dropped.
So a connection costs the same few kilobytes whether it sends a command, 70 KB of random bytes,
an unterminated sub-negotiation followed by 100 MB, or a megabyte pasted into a telnet session.

Plain text, the usual case, is scanned with one regular-expression search per chunk (no Python
work per byte), so junk costs the agent's thread about as much as reading it.
"""

from __future__ import annotations

import re
from typing import Final

MAX_LINE_BYTES: Final = 4096
"""The longest command line accepted; the inspector's own are under 100 bytes."""
MAX_SUBNEGOTIATION_BYTES: Final = 64
"""Room for a terminal type (RFC 1091 allows 40 characters) or a window size."""

# Telnet bytes (RFC 854, 1091).
IAC: Final = 255
DONT: Final = 254
DO: Final = 253
WONT: Final = 252
WILL: Final = 251
SB: Final = 250
SE: Final = 240
IP: Final = 244
OPT_TTYPE: Final = 24
TTYPE_IS: Final = 0
TTYPE_SEND: Final = 1

GREETING: Final = bytes((IAC, DO, OPT_TTYPE, IAC, SB, OPT_TTYPE, TTYPE_SEND, IAC, SE))
"""Ask for the terminal type at once: the inspector's client names itself there."""

_PASTE_MARKERS: Final = re.compile(rb"\x1b\[20[01]~")
"""Bracketed-paste brackets, which the inspector's client wraps each command line in."""
_SPECIAL: Final = re.compile(rb"[\xff\r\n\x00\x03\x04]")
_CTRL_C: Final = 0x03
_CTRL_D: Final = 0x04


class InputViolation(Exception):
    """The client went past a bound; the message says which, for the agent's health."""


class TelnetInput:
    """Feed it bytes; it returns complete lines and collects the replies telnet needs.

    States: plain data, after IAC, after a verb (DO/DONT/WILL/WONT), inside a sub-negotiation,
    after IAC inside a sub-negotiation. `replies` holds bytes to send back (refusals of options
    we do not support, answered once each, RFC 1143); `terminal` is the terminal type once the
    client said it; `ended` is set by Ctrl-D.
    """

    def __init__(
        self,
        max_line: int = MAX_LINE_BYTES,
        max_subnegotiation: int = MAX_SUBNEGOTIATION_BYTES,
    ) -> None:
        self.max_line = max_line
        self.max_subnegotiation = max_subnegotiation
        self.terminal: str | None = None
        self.terminal_refused = False
        self.ended = False
        self.replies = bytearray()
        self._line = bytearray()
        self._after_cr = False
        self._state = 0  # 0 data, 1 iac, 2 verb, 3 sb, 4 sb-iac
        self._verb = 0
        self._subnegotiation = bytearray()
        self._answered: set[tuple[int, int]] = set()

    def feed(self, data: bytes) -> list[str]:
        """The lines `data` completes (terminators and paste brackets removed); raises
        InputViolation when the client goes past a bound."""
        lines: list[str] = []
        index, size = 0, len(data)
        while index < size and not self.ended:
            if self._state == 0:
                match = _SPECIAL.search(data, index)
                end = match.start() if match else size
                if end > index:
                    self._after_cr = False
                    self._append(data[index:end])
                if match is None:
                    break
                index = end + 1
                self._special(data[end], lines)
            else:
                self._telnet(data[index])
                index += 1
        return lines

    # --- plain data ------------------------------------------------------------------------

    def _append(self, chunk: bytes) -> None:
        if len(self._line) + len(chunk) > self.max_line:
            raise InputViolation(f"a line longer than {self.max_line} bytes")
        self._line += chunk

    def _special(self, byte: int, lines: list[str]) -> None:
        if byte == IAC:
            self._state = 1
        elif byte in (0x0D, 0x0A):
            if byte == 0x0A and self._after_cr:  # CR LF is one end of line
                self._after_cr = False
                return
            self._after_cr = byte == 0x0D
            lines.append(self._take_line())
        elif byte == 0x00:
            pass  # CR NUL is a bare CR (RFC 854); a NUL elsewhere carries nothing
        elif byte == _CTRL_C:
            self._line.clear()
        elif byte == _CTRL_D:
            self.ended = True

    def _take_line(self) -> str:
        text = _PASTE_MARKERS.sub(b"", bytes(self._line)).decode("utf-8", "replace")
        self._line.clear()
        return text

    # --- telnet commands -------------------------------------------------------------------

    def _telnet(self, byte: int) -> None:
        state = self._state
        if state == 1:
            if byte == IAC:  # an escaped 0xFF belongs to the line
                self._state = 0
                self._append(b"\xff")
            elif byte in (DO, DONT, WILL, WONT):
                self._verb, self._state = byte, 2
            elif byte == SB:
                self._subnegotiation.clear()
                self._state = 3
            else:
                self._state = 0
                if byte == IP:  # "interrupt process": forget the line being typed
                    self._line.clear()
        elif state == 2:
            self._state = 0
            self._option(self._verb, byte)
        elif state == 3:
            if byte == IAC:
                self._state = 4
            else:
                self._grow_subnegotiation(byte)
        elif byte == SE:  # state 4
            self._state = 0
            self._subnegotiated(bytes(self._subnegotiation))
            self._subnegotiation.clear()
        else:
            self._state = 3
            self._grow_subnegotiation(byte)  # IAC IAC inside SB is a literal 0xFF

    def _grow_subnegotiation(self, byte: int) -> None:
        if len(self._subnegotiation) >= self.max_subnegotiation:
            raise InputViolation(f"a telnet sub-negotiation longer than {self.max_subnegotiation}")
        self._subnegotiation.append(byte)

    def _option(self, verb: int, option: int) -> None:
        if option == OPT_TTYPE and verb in (WILL, WONT):
            self.terminal_refused = verb == WONT
            return  # the answer to our own DO
        if (verb, option) in self._answered:
            return
        self._answered.add((verb, option))
        if verb == WILL:
            self.replies += bytes((IAC, DONT, option))
        elif verb == DO:
            self.replies += bytes((IAC, WONT, option))

    def _subnegotiated(self, payload: bytes) -> None:
        if len(payload) >= 2 and payload[0] == OPT_TTYPE and payload[1] == TTYPE_IS:
            self.terminal = payload[2:].decode("ascii", "replace").strip().lower()
