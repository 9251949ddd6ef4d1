"""Waits that are meant to be long are not hangs: a long-poll under a timeout is healthy.

A real `inspector run` server holds long-poll requests open (under `asyncio.wait_for`,
`asyncio.timeout` and anyio's `move_on_after`) past `--stuck-after`; `doctor` must not warn about
them, while the same wait with no timeout is still reported.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_doctor_e2e import doctor
from tests.helpers.server import RunningServer, inspector_run

APP = "tests.apps.doctor_long_poll:app"
POLLS = {
    "asyncio": ("/poll/wait-for", "/poll/timeout", "/poll/anyio"),
    # uvloop's timers are out of reach: only wait_for's own timeout can be read there.
    "uvloop": ("/poll/wait-for",),
}


def hold(port: int, path: str) -> socket.socket:
    """A request sent and never read: it stays in flight."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=5)
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return connection


@pytest.fixture(params=["asyncio", "uvloop"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[RunningServer, str]]:
    with inspector_run(APP, tmp_path, loop=request.param) as running:
        yield running, request.param


def test_long_polls_under_a_timeout_are_not_hanging_but_a_wait_without_one_is(
    served: tuple[RunningServer, str],
) -> None:
    server, loop = served
    polls = POLLS[loop]
    held = [hold(server.http_port, path) for path in (*polls, "/stuck")]
    try:
        deadline = time.monotonic() + 30
        while True:
            _, document = doctor(server, "--stuck-after", "1")
            hanging = [f for f in document["findings"] if f["kind"] == "hanging-request"]
            if any("/stuck" in f["title"] for f in hanging):
                break
            assert time.monotonic() < deadline, f"the real hang was not found: {document}"
            time.sleep(0.3)
        warned = [f["title"] for f in document["findings"] if f["severity"] != "info"]
        print(f"\nwarnings with long-polls and one hang held open: {warned}")
        assert not any("/poll" in title for title in warned), warned
    finally:
        for connection in held:
            connection.close()
