"""The line to fix, and what kind of call holds the thread."""

from __future__ import annotations

import pytest

from inspector.diagnose.locate import (
    classify_samples,
    classify_stack,
    innermost_application_frame,
    is_application_frame,
    loop_work_frames,
    module_of,
)
from inspector.model import Frame
from tests.diagnose.factories import LOOP_RUNNER, loop_stack
from tests.factories import app, lib, std


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/srv/shop/app.py", True),
        ("/home/ana/project/api/routes/users.py", True),
        ("C:\\Users\\ana\\proj\\main.py", True),
        ("/usr/lib/python3.11/asyncio/locks.py", False),
        ("/root/.pyenv/versions/3.12.1/lib/python3.12/socket.py", False),
        ("/usr/lib64/python3.13t/threading.py", False),
        ("C:\\Python311\\Lib\\asyncio\\tasks.py", False),
        ("/srv/shop/.venv/lib/python3.11/site-packages/starlette/routing.py", False),
        ("/usr/lib/python3/dist-packages/requests/api.py", False),
        ("/srv/shop/.venv/bin/uvicorn", False),
        ("<frozen runpy>", False),
        ("<string>", False),
        ("/opt/venv/lib/python3.11/site-packages/inspector/agent/watchdog.py", False),
    ],
)
def test_application_frames_are_the_users_own_code(path: str, expected: bool) -> None:
    assert is_application_frame(Frame(path, 1, "f")) is expected


def test_inspector_itself_is_not_application_code() -> None:
    import inspector.diagnose.locate as module

    assert not is_application_frame(Frame(module.__file__, 10, "classify_stack"))


def test_innermost_application_frame_skips_libraries_below_it() -> None:
    stack = loop_stack(
        app(30, "export", "rows = fetch_all()"),
        app(12, "fetch_all", "return requests.get(URL).json()"),
        lib("requests/api.py", 73, "get"),
        std("socket.py", 706, "readinto"),
    )
    assert innermost_application_frame(stack) == app(
        12, "fetch_all", "return requests.get(URL).json()"
    )
    assert innermost_application_frame(LOOP_RUNNER) is None


def test_the_loop_runner_is_cut_so_main_py_is_not_blamed() -> None:
    main = Frame("/srv/shop/main.py", 20, "<module>", "uvicorn.run(app)")
    stack = (main,) + LOOP_RUNNER[1:] + (lib("fastapi/encoders.py", 300, "jsonable_encoder"),)
    work = loop_work_frames(stack)
    assert work == (lib("fastapi/encoders.py", 300, "jsonable_encoder"),)
    assert innermost_application_frame(work) is None


@pytest.mark.parametrize(
    ("path", "module"),
    [
        ("/usr/lib/python3.11/http/client.py", "http.client"),
        ("/x/site-packages/urllib3/connectionpool.py", "urllib3.connectionpool"),
        ("/x/site-packages/sqlalchemy/engine/__init__.py", "sqlalchemy.engine"),
        ("/srv/shop/app.py", None),
    ],
)
def test_module_names_come_from_paths(path: str, module: str | None) -> None:
    assert module_of(Frame(path, 1, "f")) == module


CLASSIFICATION_CASES = [
    # (name, innermost frames, expected kind, expected words in `what`)
    ("time.sleep", (app(14, "block", "time.sleep(2)"),), "sleep", "time.sleep"),
    ("from time import sleep", (app(14, "block", "sleep(0.5)"),), "sleep", "time.sleep"),
    (
        "sleep inside a library",
        (
            app(9, "call", "return retry(fetch)"),
            lib("tenacity/nap.py", 31, "sleep", "time.sleep(seconds)"),
        ),
        "sleep",
        "tenacity",
    ),
    (
        "requests",
        (
            app(12, "fetch", "return requests.get(URL)"),
            lib("requests/api.py", 73, "get", "return request('get', url)"),
            lib("urllib3/connectionpool.py", 537, "_make_request"),
            std("http/client.py", 1390, "getresponse"),
            std("socket.py", 706, "readinto", "return self._sock.recv_into(b)"),
        ),
        "io",
        "requests",
    ),
    (
        "httpx sync client",
        (
            app(12, "fetch", "return client.get(URL)"),
            lib("httpx/_client.py", 1055, "get"),
            lib("httpcore/_sync/connection_pool.py", 216, "handle_request"),
            lib("httpcore/_backends/sync.py", 126, "read", "return self._sock.recv(max_bytes)"),
        ),
        "io",
        "httpx",
    ),
    ("socket from app code", (app(20, "ping", "sock.recv(1024)"),), "io", "socket"),
    ("file I/O", (app(20, "load", "data = open(path).read()"),), "io", "file I/O"),
    (
        "pathlib",
        (app(20, "load", "return Path(p).read_text()"), std("pathlib.py", 1058, "read_text")),
        "io",
        "pathlib",
    ),
    (
        "subprocess",
        (
            app(20, "convert", "subprocess.run(['convert', f])"),
            std("subprocess.py", 1209, "communicate"),
        ),
        "io",
        "subprocess",
    ),
    (
        "sqlite3",
        (app(33, "list_items", "rows = conn.execute('SELECT * FROM items').fetchall()"),),
        "db",
        "database call",
    ),
    ("sqlite3 module named", (app(30, "connect", "conn = sqlite3.connect(DB)"),), "db", "sqlite3"),
    (
        "psycopg2 through SQLAlchemy",
        (
            app(33, "list_items", "return session.query(Item).all()"),
            lib("sqlalchemy/orm/query.py", 2673, "all"),
            lib("sqlalchemy/engine/base.py", 1967, "_exec_single_context"),
            lib(
                "sqlalchemy/engine/default.py",
                924,
                "do_execute",
                "cursor.execute(statement, parameters)",
            ),
        ),
        "db",
        "sqlalchemy",
    ),
    (
        "pymysql",
        (
            app(33, "q", "cur.execute(sql)"),
            lib("pymysql/cursors.py", 153, "execute"),
            lib("pymysql/connections.py", 758, "_read_bytes"),
        ),
        "db",
        "pymysql",
    ),
    (
        "future.result() on the loop",
        (
            app(40, "bridge", "return fut.result()"),
            std("concurrent/futures/_base.py", 451, "result", "self._condition.wait(timeout)"),
            std("threading.py", 320, "wait"),
        ),
        "thread-wait",
        "Future.result",
    ),
    ("a loop in app code", (app(50, "fib", "return fib(n - 1) + fib(n - 2)"),), "cpu", "fib"),
    (
        "serializing a big response",
        (
            lib("fastapi/routing.py", 155, "serialize_response"),
            lib("fastapi/encoders.py", 300, "jsonable_encoder"),
        ),
        "cpu",
        "serialization",
    ),
    (
        "awaited call is not blocking I/O",
        (app(50, "crunch", "total = sum(x * x for x in await load())"),),
        "cpu",
        "crunch",
    ),
]


@pytest.mark.parametrize(
    ("frames", "kind", "what"),
    [case[1:] for case in CLASSIFICATION_CASES],
    ids=[case[0] for case in CLASSIFICATION_CASES],
)
def test_blocking_calls_are_classified(frames: tuple[Frame, ...], kind: str, what: str) -> None:
    result = classify_stack(loop_work_frames(loop_stack(*frames)))
    assert result.kind == kind
    assert what in result.what
    assert result.frame == frames[-1]


def test_async_database_drivers_are_not_sync_drivers() -> None:
    frames = (
        app(33, "list_items", "return await session.execute(q)"),
        lib("sqlalchemy/ext/asyncio/session.py", 461, "execute"),
        lib("asyncpg/protocol/codecs.py", 10, "decode"),
    )
    assert classify_stack(frames).kind == "cpu"


def test_the_most_common_kind_wins_across_samples() -> None:
    sleeping = (app(14, "block", "time.sleep(2)"),)
    computing = (app(50, "fib", "x = x * 3"),)
    assert classify_samples([computing, sleeping, sleeping]).kind == "sleep"  # type: ignore[union-attr]
    assert classify_samples([]) is None


def test_an_async_clients_own_setup_is_not_called_its_sync_twin() -> None:
    """`httpx.AsyncClient()` loads certificates on the loop: that is ssl, not the sync Client."""
    stack = (
        app(12, "lifespan", "async with httpx.AsyncClient() as client:"),
        lib("httpx/_client.py", 1400, "AsyncClient.__init__"),
        lib("httpx/_config.py", 60, "create_ssl_context"),
        std("ssl.py", 700, "create_default_context"),
    )
    blocking = classify_stack(stack)
    assert "sync Client" not in blocking.what and "ssl" in blocking.what
