"""`blocking_calls.identify`: the call that held the loop, in its own words."""

from __future__ import annotations

import pytest

from inspector.diagnose.blocking_calls import (
    COMPRESSION,
    DNS,
    FILE_IO,
    NETWORK,
    SERIALIZATION,
    THREAD_LOCK,
    THREAD_WAIT,
    identify,
)
from inspector.diagnose.rules.base import Settings
from inspector.diagnose.rules.loop import loop_blocked
from tests.diagnose.factories import loop_stack
from tests.factories import app, lib, snapshot, stall, std


@pytest.mark.parametrize(
    ("code", "family", "name"),
    [
        ("with self._lock:", THREAD_LOCK, None),
        ("cache_lock.acquire()", THREAD_LOCK, None),
        ("with self._mutex:", THREAD_LOCK, None),
        ("with registry[key]:", THREAD_LOCK, None),
        ("chunk = compressor.compress(block)", COMPRESSION, ".compress"),
        ("os.fsync(receipt.fileno())", FILE_IO, "os.fsync"),
        ("data = open(path).read()", FILE_IO, "open"),
        ("packed = zlib.compress(payload, 9)", COMPRESSION, "zlib.compress"),
        ("blob = pickle.dumps(events, protocol=0)", SERIALIZATION, "pickle.dumps"),
        ("infos = socket.getaddrinfo(host, 443)", DNS, "socket.getaddrinfo"),
        ("return pending.result(timeout=2)", THREAD_WAIT, ".result"),
        ("conn.sendall(frame)", NETWORK, ".sendall"),
    ],
)
def test_calls_into_c_are_known_by_their_line(code: str, family: object, name: object) -> None:
    call = identify(loop_stack(app(30, "handler", code)))
    assert call is not None and call.family is family and call.name == name


def test_a_threading_semaphore_is_a_lock_though_a_condition_waits_underneath() -> None:
    stack = loop_stack(
        app(30, "reserve", "with self._slots:"),
        std("threading.py", 475, "Semaphore.acquire", "self._cond.wait(timeout)"),
        std("threading.py", 324, "Condition.wait", "waiter.acquire()"),
    )
    call = identify(stack)
    assert call is not None and call.family is THREAD_LOCK
    event = loop_stack(
        app(30, "ready", "done.wait()"),
        std("threading.py", 622, "Event.wait", "signaled = self._cond.wait(timeout)"),
        std("threading.py", 324, "Condition.wait", "waiter.acquire()"),
    )
    call = identify(event)
    assert call is not None and call.family is THREAD_WAIT


def test_plain_python_is_none_of_them() -> None:
    assert identify(loop_stack(app(30, "rollup", "totals[key] += value * 1.0"))) is None
    assert identify(loop_stack(app(30, "wait", "await lock.acquire()"))) is None
    opening = identify(loop_stack(app(30, "enter", "with open(path) as handle:")))
    assert opening is not None and opening.family is FILE_IO


def test_the_innermost_library_decides_and_the_entry_call_names_it() -> None:
    urlopen = loop_stack(
        app(64, "forward", "with urllib.request.urlopen(request, timeout=5) as reply:"),
        std("urllib/request.py", 216, "urlopen", "return opener.open(url, data, timeout)"),
        std("http/client.py", 1386, "HTTPConnection.getresponse", "response.begin()"),
        std("socket.py", 706, "SocketIO.readinto", "return self._sock.recv_into(b)"),
    )
    call = identify(urlopen)
    assert call is not None and call.family is NETWORK and call.name == "urllib.request.urlopen"
    resolving = loop_stack(
        app(64, "forward", "urllib.request.urlopen(url)"),
        std("urllib/request.py", 216, "urlopen"),
        std("socket.py", 827, "create_connection"),
        std("socket.py", 962, "getaddrinfo", "for res in _socket.getaddrinfo(host, port):"),
    )
    call = identify(resolving)
    assert call is not None and call.family is DNS and call.name == "socket.getaddrinfo"
    dumping = loop_stack(
        app(85, "snapshot", "body = json.dumps(index, indent=1)"),
        std("json/__init__.py", 238, "dumps"),
        std("json/encoder.py", 432, "_iterencode_dict"),
    )
    call = identify(dumping)
    assert call is not None and call.family is SERIALIZATION and call.name == "json.dumps"


def test_a_loop_blocked_finding_speaks_of_the_call_and_its_fix() -> None:
    lock_line = app(48, "town", "with self._lock:")
    shot = snapshot(stalls=(stall(1, 0.8, loop_stack(lock_line)),))
    [finding] = loop_blocked(shot, Settings())
    assert "threading lock" in finding.title
    assert "waiting for a threading lock that another thread holds" in finding.detail
    assert "CPU-bound" not in finding.title + finding.detail
    assert finding.hint == THREAD_LOCK.hint
    assert finding.location == lock_line
    lzma_line = app(82, "relay_batch", "packed = lzma.compress(batch, preset=6)")
    frames = loop_stack(lzma_line, std("lzma.py", 332, "compress", "return comp.compress(data)"))
    [finding] = loop_blocked(snapshot(stalls=(stall(2, 0.5, frames),)), Settings())
    assert "compression (lzma.compress)" in finding.title
    assert finding.hint == COMPRESSION.hint


def test_an_async_clients_own_setup_is_named_by_what_blocked_not_as_a_network_call() -> None:
    stack = (
        app(12, "lifespan", "async with httpx.AsyncClient() as client:"),
        lib("httpx/_client.py", 1400, "AsyncClient.__init__"),
        lib("httpx/_config.py", 60, "create_ssl_context"),
        std("ssl.py", 700, "SSLContext.load_verify_locations"),
    )
    call = identify(stack)
    assert call is not None and call.name is not None and "AsyncClient" not in call.name
