"""Waits inside client libraries are said in their terms: a pool's connection with its capacity,
how many are in use and who holds them; an HTTP call's response, with where it was sent.

Real httpx and aiohttp clients on a real loop thread, talking to a local server that accepts
requests and never answers, so the connections stay checked out; and a home-made pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from inspector.model import WaitInfo
from tests.agent.test_tasks import Inspected, LoopThread, inspecting, running_app


@pytest.fixture(params=["asyncio", "uvloop"])
def inspected(request: pytest.FixtureRequest) -> Iterator[Inspected]:
    for app in running_app(request.param):
        yield from inspecting(app)


def silent_server(app: LoopThread) -> tuple[asyncio.AbstractServer, str]:
    """A server on the loop that reads requests and never answers."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.Event().wait()

    async def start() -> tuple[asyncio.AbstractServer, str]:
        server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        return server, f"http://127.0.0.1:{port}/slow"

    return app.run(start())


def pool_wait_of(inspected: Inspected, task: asyncio.Task[Any]) -> WaitInfo:
    wait = inspected.waiting(task, "pool").waiting_on
    assert wait is not None
    return wait


def test_httpx_pool_says_it_is_full_and_which_tasks_hold_its_connections(
    inspected: Inspected,
) -> None:
    app = inspected.app
    server, url = silent_server(app)
    client = app.call(lambda: httpx.AsyncClient(limits=httpx.Limits(max_connections=2)))
    holders = [app.spawn(client.get(url), name=f"holder-{n}") for n in range(2)]
    for holder in holders:
        inspected.wait_for(holder, lambda t: t.waiting_on is not None)
    waiter = app.spawn(client.get(url), name="waiter")
    wait = pool_wait_of(inspected, waiter)
    assert (wait.capacity, wait.in_use, wait.waiters) == (2, 2, 1)
    assert set(wait.holder_task_ids) == {id(holder) for holder in holders}
    assert wait.description == ("a connection from httpx's pool: 2 of 2 in use, 1 waiting")
    app.call(server.close)


def test_aiohttp_connector_says_it_is_full(inspected: Inspected) -> None:
    app = inspected.app
    server, url = silent_server(app)

    async def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))

    client = app.run(session())

    async def fetch() -> None:
        async with client.get(url) as response:
            await response.read()

    holder = app.spawn(fetch(), name="holder")
    inspected.wait_for(holder, lambda t: t.waiting_on is not None)
    waiter = app.spawn(fetch(), name="waiter")
    wait = pool_wait_of(inspected, waiter)
    assert (wait.capacity, wait.in_use, wait.waiters) == (1, 1, 1)
    assert wait.holder_task_ids == (id(holder),)
    assert "aiohttp's connector: 1 of 1 in use" in wait.description
    app.call(server.close)


class ConnectionPool:
    """A pool as applications write one: connections in a Queue, `size` of them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: asyncio.Queue[object] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(object())

    async def acquire(self) -> object:
        return await self._idle.get()


def test_a_home_made_pool_on_a_queue_is_a_pool_wait(inspected: Inspected) -> None:
    app = inspected.app
    pool = app.call(lambda: ConnectionPool(2))
    for _ in range(2):
        app.run(pool.acquire())  # both checked out, never returned
    waiter = app.spawn(pool.acquire(), name="waiter")
    wait = pool_wait_of(inspected, waiter)
    assert (wait.capacity, wait.in_use) == (2, 2)
    assert wait.description.startswith("a connection from ConnectionPool: 2 of 2")


def test_a_queue_outside_any_pool_stays_a_queue_wait(inspected: Inspected) -> None:
    queue = inspected.app.call(asyncio.Queue)
    consumer = inspected.app.spawn(queue.get(), name="consumer")
    assert inspected.waiting(consumer, "queue-get").waiting_on is not None


def test_sqlalchemy_async_pool_is_found_inside_its_greenlet(
    inspected: Inspected, tmp_path: Path
) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    app = inspected.app
    url = f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}"
    engine = app.call(lambda: create_async_engine(url, pool_size=1, max_overflow=0))
    release = app.call(asyncio.Event)

    async def hold_a_connection() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
            await release.wait()

    async def query() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("select 2"))

    holder = app.spawn(hold_a_connection(), name="holder")
    inspected.wait_for(holder, lambda t: t.waiting_on is not None and t.waiting_on.kind == "event")
    waiter = app.spawn(query(), name="waiter")
    wait = pool_wait_of(inspected, waiter)
    assert (wait.capacity, wait.in_use, wait.waiters) == (1, 1, 1)
    assert wait.description.startswith("a connection from SQLAlchemy's pool: 1 of 1")
    app.call(release.set)
    inspected.wait_for_absence(waiter)
    app.run(engine.dispose())


# --- waits for an upstream's answer ----------------------------------------------------------


def test_an_httpx_call_waiting_for_its_response_says_so_and_where_to(
    inspected: Inspected,
) -> None:
    app = inspected.app
    server, url = silent_server(app)
    client = app.call(httpx.AsyncClient)
    caller = app.spawn(client.get(url), name="caller")
    wait = inspected.waiting(caller, "stream").waiting_on
    assert wait is not None
    port = url.split(":")[2].split("/")[0]
    assert wait.description == f"the response of an HTTP request to 127.0.0.1:{port} (httpx)"
    app.call(server.close)


def test_an_aiohttp_call_waiting_for_its_response_says_so(inspected: Inspected) -> None:
    app = inspected.app
    server, url = silent_server(app)

    async def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    client = app.run(session())

    async def fetch() -> None:
        async with client.get(url) as response:
            await response.read()

    caller = app.spawn(fetch(), name="caller")
    wait = inspected.waiting(caller, "stream").waiting_on
    assert wait is not None
    assert wait.description.startswith("the response of an HTTP request to 127.0.0.1:")
    assert wait.description.endswith("(aiohttp)")
    app.call(server.close)


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A real redis-server on a free port (Debian's `redis-server`), stopped afterwards."""
    import shutil
    import socket
    import subprocess
    import time

    from tests.helpers.processes import stop_process_group
    from tests.helpers.server import free_port

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("no redis-server (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        stop_process_group(process)


def test_redis_blocking_pool_is_a_pool_wait_with_its_capacity(
    inspected: Inspected, redis_port: int
) -> None:
    redis_asyncio = pytest.importorskip("redis.asyncio")
    app = inspected.app
    pool = app.call(
        lambda: redis_asyncio.BlockingConnectionPool(
            host="127.0.0.1", port=redis_port, max_connections=1, timeout=None
        )
    )
    client = app.call(lambda: redis_asyncio.Redis(connection_pool=pool))
    release = app.call(asyncio.Event)

    async def hold_a_connection() -> None:
        connection = await pool.get_connection()
        await release.wait()
        await pool.release(connection)

    holder = app.spawn(hold_a_connection(), name="holder")
    inspected.wait_for(holder, lambda t: t.waiting_on is not None and t.waiting_on.kind == "event")
    waiter = app.spawn(client.get("basket:7"), name="waiter")
    wait = pool_wait_of(inspected, waiter)
    assert (wait.capacity, wait.in_use) == (1, 1)
    assert wait.description.startswith("a connection from BlockingConnectionPool: 1 of 1")
    app.call(release.set)
    inspected.wait_for_absence(waiter)
    app.run(pool.disconnect())


@pytest.fixture
def postgres_port() -> Iterator[int]:
    """A real PostgreSQL (Debian's `postgresql`) on a free port, in a directory of its own,
    run as the `postgres` user (it refuses root); stopped and removed afterwards."""
    import glob
    import os
    import shutil
    import subprocess
    import tempfile
    import time

    from tests.helpers.processes import stop_process_group
    from tests.helpers.server import free_port

    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not binaries or shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("no PostgreSQL to start (apt-get install postgresql, as root)")
    bindir = binaries[-1]
    directory = tempfile.mkdtemp(prefix="inspector-pg-")
    shutil.chown(directory, "postgres")
    run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, f"{bindir}/initdb", "-D", f"{directory}/data", "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    process = subprocess.Popen(
        [
            *run_as,
            f"{bindir}/postgres",
            "-D",
            f"{directory}/data",
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            directory,
            "-c",
            "fsync=off",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(
            [f"{bindir}/pg_isready", "-h", "127.0.0.1", "-p", str(port)],
            capture_output=True,
            timeout=10,
        ).returncode:
            assert time.monotonic() < deadline, "PostgreSQL did not start"
            time.sleep(0.1)
        yield port
    finally:
        stop_process_group(process)
        shutil.rmtree(directory, ignore_errors=True)


def test_asyncpg_pool_is_a_pool_wait_with_its_capacity(
    inspected: Inspected, postgres_port: int
) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    app = inspected.app
    dsn = f"postgresql://postgres@127.0.0.1:{postgres_port}/postgres"

    async def connect() -> Any:
        return await asyncpg.create_pool(dsn, min_size=1, max_size=1)

    pool = app.run(connect())
    release = app.call(asyncio.Event)

    async def hold_a_connection() -> None:
        async with pool.acquire() as connection:
            await connection.fetchval("select 1")
            await release.wait()

    async def query() -> int:
        async with pool.acquire() as connection:
            return int(await connection.fetchval("select 2"))

    holder = app.spawn(hold_a_connection(), name="holder")
    inspected.wait_for(holder, lambda t: t.waiting_on is not None and t.waiting_on.kind == "event")
    waiter = app.spawn(query(), name="waiter")
    wait = pool_wait_of(inspected, waiter)
    assert (wait.capacity, wait.in_use) == (1, 1)
    assert wait.description.startswith("a connection from Pool: 1 of 1")
    app.call(release.set)
    inspected.wait_for_absence(waiter)
    app.run(pool.close())
