"""The telnet layer: what it answers to aiomonitor's negotiation, and what text it passes on."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from inspector.client import telnet
from inspector.client.telnet import TelnetProtocol

IAC, SB, SE, DO, DONT, WILL, WONT = 255, 250, 240, 253, 254, 251, 252

# What prompt_toolkit's telnet server sends on accept.
SERVER_HELLO = bytes(
    [IAC, DO, 34, IAC, WILL, 3, IAC, SB, 34, 1, 0, IAC, SE, IAC, WILL, 1]
    + [IAC, DO, 31, IAC, DO, 24, IAC, SB, 24, 1, IAC, SE]
)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True


class Recorder:
    def __init__(self) -> None:
        self.text = ""
        self.lost: list[Exception | None] = []

    def text_received(self, text: str) -> None:
        self.text += text

    def connection_lost(self, error: Exception | None) -> None:
        self.lost.append(error)


def make() -> tuple[TelnetProtocol, FakeTransport, Recorder]:
    recorder = Recorder()
    protocol = TelnetProtocol(recorder)
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport, recorder


def test_answers_aiomonitor_negotiation() -> None:
    protocol, transport, recorder = make()
    protocol.data_received(SERVER_HELLO)
    assert bytes(transport.written) == bytes(
        [IAC, WONT, 34]  # no LINEMODE
        + [IAC, DO, 3]  # suppress go-ahead
        + [IAC, DO, 1]  # the server echoes
        + [IAC, WILL, 31, IAC, SB, 31, 0x03, 0xE8, 0, 50, IAC, SE]  # window 1000 x 50
        + [IAC, WILL, 24]
        + [IAC, SB, 24, 0]
        + list(b"dumb")
        + [IAC, SE]
    )
    assert recorder.text == ""
    assert protocol.negotiated and not protocol.foreign


def test_refuses_unknown_options_and_answers_each_request_once() -> None:
    protocol, transport, _ = make()
    protocol.data_received(bytes([IAC, DO, 99, IAC, WILL, 98, IAC, DO, 99, IAC, DONT, 24]))
    assert bytes(transport.written) == bytes([IAC, WONT, 99, IAC, DONT, 98])


@pytest.mark.parametrize("cut", range(1, len(SERVER_HELLO) + 12))
def test_commands_split_anywhere_are_still_stripped(cut: int) -> None:
    data = b"ab" + SERVER_HELLO + "é>>> ".encode() + bytes([IAC, IAC]) + b"z"
    whole, whole_transport, whole_text = make()
    whole.data_received(data)
    split, split_transport, split_text = make()
    split.data_received(data[:cut])
    split.data_received(data[cut:])
    assert split_text.text == whole_text.text == "abé>>> \ufffdz"
    assert split_transport.written == whole_transport.written


def test_utf8_split_across_chunks_is_decoded_whole() -> None:
    protocol, _, recorder = make()
    encoded = "✗ No such command".encode()
    protocol.data_received(encoded[:1])
    protocol.data_received(encoded[1:])
    assert recorder.text == "✗ No such command"


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4])
def test_cursor_position_request_is_answered_even_when_split(cut: int) -> None:
    protocol, transport, recorder = make()
    data = b"x\x1b[6ny"
    protocol.data_received(data[: cut + 1])
    protocol.data_received(data[cut + 1 :])
    assert bytes(transport.written) == b"\x1b[1;1R"
    assert recorder.text == "x\x1b[6ny"


def test_two_cursor_requests_get_two_answers() -> None:
    protocol, transport, _ = make()
    protocol.data_received(b"\x1b[6n\x1b[6n")
    assert bytes(transport.written) == b"\x1b[1;1R" * 2


def test_a_peer_that_speaks_first_in_plain_text_is_foreign() -> None:
    protocol, _, recorder = make()
    protocol.data_received(b"HTTP/1.1 400 Bad Request\r\n")
    assert protocol.foreign and not protocol.negotiated
    assert protocol.first_bytes.startswith(b"HTTP/1.1 400")
    assert recorder.text.startswith("HTTP/1.1 400")


def test_send_line_pastes_the_line_then_presses_return_and_stops_after_close() -> None:
    protocol, transport, recorder = make()
    protocol.send_line("inspector-hello")
    pasted = b"\x1b[200~inspector-hello\x1b[201~\r"
    assert bytes(transport.written) == pasted
    protocol.close()
    protocol.send_line("ignored")
    assert bytes(transport.written) == pasted
    protocol.connection_lost(None)
    assert recorder.lost == [None]


def test_window_size_with_a_255_byte_is_escaped() -> None:
    assert telnet._naws_report(255, 50) == bytes([IAC, SB, 31, 0, IAC, IAC, 0, 50, IAC, SE])


def test_the_window_reported_is_the_one_asked_for() -> None:
    protocol = TelnetProtocol(Recorder(), (80, 4))
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(bytes([IAC, 253, 31]))  # DO NAWS
    assert bytes(transport.written).endswith(bytes([IAC, SB, 31, 0, 80, 0, 4, IAC, SE]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux socket limits")
async def test_open_telnet_sets_nodelay_and_a_large_receive_buffer() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        protocol = await telnet.open_telnet("localhost", port, Recorder())
        sock = protocol._transport.get_extra_info("socket")  # type: ignore[union-attr]

        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        # Linux grants up to net.core.rmem_max (and doubles it for bookkeeping).
        with open("/proc/sys/net/core/rmem_max") as limit:
            granted = min(telnet.RECEIVE_BUFFER_BYTES, int(limit.read()))
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= granted
        protocol.close()
    finally:
        server.close()
