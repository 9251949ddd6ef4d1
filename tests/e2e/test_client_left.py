""" "The client left 3 s ago" means three seconds since the client left, even when nobody took a
snapshot in between and the app never reads from the connection again."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.e2e.test_adversity import dump_json
from tests.helpers.server import HOST, inspector_run

pytestmark = pytest.mark.e2e

LEFT_FOR = 3.0


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_the_time_since_a_client_left_counts_from_when_it_left(tmp_path: Path, http: str) -> None:
    with inspector_run("tests.apps.own_frames_app:app", tmp_path, args=("--http", http)) as server:
        with socket.create_connection((HOST, server.http_port), timeout=5) as client:
            client.sendall(b"GET /hang HTTP/1.1\r\nHost: test\r\n\r\n")
            time.sleep(0.5)  # the request is in flight
        left = time.time()
        time.sleep(LEFT_FOR)
        document = dump_json(server)["snapshot"]  # the first snapshot since the client left
        server.get("/release")
    [request] = [r for r in document["requests"] if r["path"] == "/hang"]
    assert request["disconnected"] is True
    assert request["disconnected_at"] == pytest.approx(left, abs=0.5)
    assert document["taken_at"] - request["disconnected_at"] >= LEFT_FOR - 0.1
