"""`inspector demo` refuses bad input with one line, and its traffic driver keeps its schedule."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator

import pytest

from inspector.cli import main
from inspector.demo import server as demo_server
from inspector.demo.traffic import FINALE, FINALE_LEAD, DemoClient, Trigger, drive
from inspector.errors import InspectorError


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--duration", "soon"], "--duration takes a number of seconds"),
        (["demo", "--duration", "-3"], "--duration must be a positive number"),
        (["demo", "--port", "http"], "--port takes a port number"),
        (["demo", "--port", "70000"], "--port must be between 1 and 65535"),
        (["demo", "--json"], "--json and --check go with --headless"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_fastapi_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "fastapi" else real(name, *args),
    )
    with pytest.raises(InspectorError, match=r"pip install 'uvicorn-inspector\[demo\]'"):
        demo_server.require_fastapi()


def test_a_busy_port_is_refused_before_anything_starts() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InspectorError, match=f"port {port} is already in use"):
            demo_server.start_demo_server(http_port=port)


# --- the traffic driver, against a server that records what it gets --------------------------


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[int, list[tuple[float, str]]]]:
    seen: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        seen.append((loop.time(), line.decode().split(" ")[1] if line else ""))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], seen


async def test_headless_drive_fires_each_failure_once_and_ends_in_a_threadpool_burst(
    recorder: tuple[int, list[tuple[float, str]]],
) -> None:
    port, seen = recorder
    fired: list[str] = []

    async def ping(client: DemoClient, n: int) -> None:
        client.fire("GET", f"/ping/{n}")

    schedule = (Trigger("ping", 0.1, 0.2, ping),)
    client = DemoClient("127.0.0.1", port)
    started = asyncio.get_running_loop().time()
    await drive(
        client,
        asyncio.Event(),
        duration=FINALE_LEAD + 0.5,
        schedule=schedule,
        on_trigger=lambda t: fired.append(t.name),
    )
    elapsed = asyncio.get_running_loop().time() - started
    await client.close()
    assert FINALE_LEAD + 0.5 <= elapsed < FINALE_LEAD + 1.5
    assert fired == ["ping", FINALE.name]
    paths = [path for _, path in seen]
    assert paths.count("/ping/0") == 1 and "/ping/1" not in paths
    assert any(path.startswith("/health") or path.startswith("/items") for path in paths)


async def test_live_drive_repeats_failures_until_stopped(
    recorder: tuple[int, list[tuple[float, str]]],
) -> None:
    port, seen = recorder

    async def ping(client: DemoClient, n: int) -> None:
        client.fire("GET", f"/ping/{n}")

    stop = asyncio.Event()
    client = DemoClient("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    loop.call_later(1.0, stop.set)
    await asyncio.wait_for(
        drive(client, stop, schedule=(Trigger("ping", 0.1, 0.25, ping),)), timeout=5
    )
    await client.close()
    pings = [path for _, path in seen if path.startswith("/ping/")]
    assert 3 <= len(pings) <= 5
    assert pings[:3] == ["/ping/0", "/ping/1", "/ping/2"]


async def test_client_hangs_up_on_a_request_that_takes_too_long() -> None:
    closed = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # returns when the client hangs up
        closed.set()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    async with server:
        client = DemoClient("127.0.0.1", server.sockets[0].getsockname()[1])
        assert await client.request("GET", "/slow", timeout=0.2) is None
        await asyncio.wait_for(closed.wait(), 2)
    assert client.stats.abandoned == 1
