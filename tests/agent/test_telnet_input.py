"""The termui input parser: lines out, telnet answered, every bound enforced."""

from __future__ import annotations

import pytest

from inspector.agent.line_session import command_name, refusal
from inspector.agent.telnet_input import (
    DO,
    IAC,
    SB,
    SE,
    WILL,
    WONT,
    InputViolation,
    TelnetInput,
)

TTYPE = 24


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"ps\r"], ["ps"]),
        ([b"ps\r\n", b"where 1\n"], ["ps", "where 1"]),
        ([b"ps\r\x00help\r\x00"], ["ps", "help"]),
        ([b"p", b"s", b"\r"], ["ps"]),
        ([b"\x1b[200~inspector-hello\x1b[201~\r"], ["inspector-hello"]),
        ([b"oops\x03ps\r"], ["ps"]),  # Ctrl-C forgets the line being typed
        ([b"caf\xc3", b"\xa9\r"], ["café"]),
        ([b"bad \xff\xff byte\r"], ["bad \ufffd byte"]),  # IAC IAC is a literal 0xFF
        ([bytes((IAC, 244)) + b"ps\r"], ["ps"]),  # IAC IP
        ([b"a\r", b"\n", b"b\r"], ["a", "b"]),  # CR LF split across chunks is one end
    ],
)
def test_lines(chunks: list[bytes], lines: list[str]) -> None:
    parser = TelnetInput()
    assert [line for chunk in chunks for line in parser.feed(chunk)] == lines


def test_the_terminal_type_is_read_and_options_we_do_not_offer_are_refused_once() -> None:
    parser = TelnetInput()
    said = bytes((IAC, WILL, TTYPE, IAC, SB, TTYPE, 0)) + b"XTERM" + bytes((IAC, SE))
    assert parser.feed(said + bytes((IAC, WILL, 31, IAC, WILL, 31, IAC, DO, 1))) == []
    assert parser.terminal == "xterm"
    assert bytes(parser.replies) == bytes((IAC, 254, 31, IAC, WONT, 1))


def test_a_client_refusing_the_terminal_type_is_noted() -> None:
    parser = TelnetInput()
    parser.feed(bytes((IAC, WONT, TTYPE)))
    assert parser.terminal is None and parser.terminal_refused


def test_ctrl_d_ends_the_session() -> None:
    parser = TelnetInput()
    assert parser.feed(b"ps\r\x04help\r") == ["ps"]
    assert parser.ended


@pytest.mark.parametrize(
    "data",
    [
        b"a" * 4097,
        b"a" * 4000 + b"\x1b[200~" + b"b" * 100,
        bytes((IAC, SB, TTYPE)) + b"x" * 65,
        bytes((IAC, SB, TTYPE)) + bytes((IAC, IAC)) * 65,
    ],
)
def test_past_a_bound_the_client_is_in_violation(data: bytes) -> None:
    parser = TelnetInput()
    with pytest.raises(InputViolation):
        for start in range(0, len(data), 1000):
            parser.feed(data[start : start + 1000])


def test_a_line_at_the_bound_is_accepted() -> None:
    assert TelnetInput().feed(b"a" * 4096 + b"\r") == ["a" * 4096]


@pytest.mark.parametrize(
    ("line", "name"),
    [("ps", "ps"), ("p", "ps"), ("ca 12", "cancel"), ("signal SIGTERM", "signal"), ("x", None)],
)
def test_command_names_resolve_aliases(line: str, name: str | None) -> None:
    assert command_name(line) == name


@pytest.mark.parametrize(
    ("line", "read_only", "refused"),
    [
        ("ps", True, False),
        ("where 1", True, False),
        ("inspector-snapshot", True, False),
        ("cancel 1", True, True),
        ("ca 1", True, True),
        ("signal SIGSTOP", True, True),
        ("cancel 1", False, False),
        ("signal SIGUSR1", False, False),
        ("console", False, True),
        ("console", True, True),
        ("no-such-command", True, False),  # click says it does not exist
    ],
)
def test_what_may_run(line: str, read_only: bool, refused: bool) -> None:
    import inspector.agent.commands  # noqa: F401  (registers the inspector's commands)

    assert (refusal(line, read_only) is not None) is refused
