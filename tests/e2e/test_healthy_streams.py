"""No false alarm on healthy long-lived work: streams that keep sending past --stuck-after, open
websockets waiting for their clients, a TaskGroup fan-out, per-request tasks that are kept and
finish."""

from __future__ import annotations

import socket
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from inspector.model import Snapshot
from tests.e2e.test_doctor_e2e import doctor
from tests.helpers.server import RunningServer, inspector_run
from tests.helpers.telnet import TermuiClient

pytestmark = [pytest.mark.e2e]

STUCK_AFTER = 1.5


def read_all(url: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            while response.read(1024):
                pass
    except OSError:
        pass


def open_websocket(port: int) -> socket.socket:
    """A websocket handshake, then silence: the connection stays open and idle."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(
        b"GET /live HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert b" 101 " in connection.recv(4096)
    return connection


def in_flight(server: RunningServer) -> list[str]:
    host, port = server.agent_address()
    with TermuiClient(host, port, timeout=10) as client:
        snapshot = client.command("inspector-snapshot --no-stacks").payload
    assert isinstance(snapshot, Snapshot)
    return [f"{request.method} {request.path}" for request in snapshot.requests]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup needs Python 3.11")
def test_streams_fan_outs_and_kept_tasks_raise_no_warning(tmp_path: Path) -> None:
    with inspector_run("tests.apps.doctor_streams:app", tmp_path) as server:
        readers = [
            threading.Thread(target=read_all, args=(server.url(path),), daemon=True)
            for path in ("/events?seconds=6", "/download?seconds=6")
        ]
        for reader in readers:
            reader.start()
        sockets = [open_websocket(server.http_port) for _ in range(3)]
        for n in range(30):
            request = urllib.request.Request(server.url(f"/orders/{n}"), method="POST")
            urllib.request.urlopen(request, timeout=10).read()
            server.get("/fan-out")
        for _ in range(3):  # the streams are well past --stuck-after by now
            threading.Event().wait(1.0)
            status, document = doctor(server, "--stuck-after", str(STUCK_AFTER))
            loud = [f for f in document["findings"] if f["severity"] != "info"]
            assert loud == [], loud
            assert status == 0
        # What doctor looked at: the streams and the sockets, all in flight past --stuck-after.
        live = in_flight(server)
        assert live.count("WS /live") == 3
        assert "GET /events" in live and "GET /download" in live
        for connection in sockets:
            connection.close()
