"""Whose code a frame is, for the path shapes real servers report, on every OS."""

from __future__ import annotations

import asyncio
import os

import pytest

import inspector
from inspector.frame_kinds import FrameKind, classify, is_application, library_path, module_name

INSPECTOR_DIR = os.path.dirname(inspector.__file__)

CASES: list[tuple[str, str, FrameKind]] = [
    # the user's code
    ("project checkout", "/srv/shop/app/main.py", "app"),
    ("relative path", "app.py", "app"),
    ("home directory project", "/home/ana/project/api/routes/users.py", "app"),
    ("editable install", "/home/ana/src/shop/shop/views.py", "app"),
    ("project with a lib folder", "/srv/shop/lib/helpers.py", "app"),
    ("project under /Library", "/Library/WebServer/app/main.py", "app"),
    ("zipapp", "/opt/shop/shop.pyz/shop/main.py", "app"),
    ("Windows project", "C:\\Users\\ana\\proj\\main.py", "app"),
    ("Windows project lib folder", "C:\\Users\\ana\\proj\\lib\\util.py", "app"),
    ("the inspector's demo app", os.path.join(INSPECTOR_DIR, "demo", "server.py"), "app"),
    # installed libraries
    ("venv", "/srv/shop/.venv/lib/python3.11/site-packages/starlette/routing.py", "library"),
    ("Debian dist-packages", "/usr/lib/python3/dist-packages/requests/api.py", "library"),
    ("pip on Debian", "/usr/local/lib/python3.11/dist-packages/anyio/to_thread.py", "library"),
    ("Fedora", "/usr/lib64/python3.11/site-packages/psycopg2/extras.py", "library"),
    ("Docker python image", "/usr/local/lib/python3.12/site-packages/uvicorn/main.py", "library"),
    (
        "macOS framework build",
        "/Library/Frameworks/Python.framework/Versions/3.11/lib/python3.11/site-packages/"
        "fastapi/routing.py",
        "library",
    ),
    (
        "pyenv",
        "/home/ana/.pyenv/versions/3.11.4/lib/python3.11/site-packages/httpx/_client.py",
        "library",
    ),
    ("conda", "/opt/conda/envs/shop/lib/python3.11/site-packages/redis/client.py", "library"),
    ("Windows venv", "C:\\proj\\.venv\\Lib\\site-packages\\starlette\\routing.py", "library"),
    (
        "Windows user site",
        "C:\\Users\\ana\\AppData\\Roaming\\Python\\Python311\\site-packages\\jinja2\\runtime.py",
        "library",
    ),
    ("egg", "/opt/app/deps/requests-2.0-py3.11.egg/requests/api.py", "library"),
    (
        "pex wheel",
        "/root/.pex/installed_wheels/ab12/requests-2.31.0-py3-none-any.whl/requests/api.py",
        "library",
    ),
    ("PEP 582", "/srv/shop/__pypackages__/3.11/lib/orjson/__init__.py", "library"),
    ("console script", "/srv/shop/.venv/bin/uvicorn", "library"),
    ("Windows console script", "C:\\proj\\.venv\\Scripts\\uvicorn.exe\\__main__.py", "library"),
    ("generated code", "<string>", "library"),
    ("attrs generated", "<attrs generated init shop.models.Item>", "library"),
    ("no file", "", "library"),
    # the standard library
    ("this interpreter", asyncio.__file__, "stdlib"),
    ("Debian system Python", "/usr/lib/python3.11/asyncio/locks.py", "stdlib"),
    ("Fedora/RHEL system Python", "/usr/lib64/python3.11/asyncio/tasks.py", "stdlib"),
    ("free-threaded build", "/usr/lib64/python3.13t/threading.py", "stdlib"),
    ("Docker python image", "/usr/local/lib/python3.12/logging/__init__.py", "stdlib"),
    (
        "macOS framework build",
        "/Library/Frameworks/Python.framework/Versions/3.11/lib/python3.11/logging/__init__.py",
        "stdlib",
    ),
    (
        "Homebrew",
        "/opt/homebrew/Cellar/python@3.12/3.12.1/Frameworks/Python.framework/Versions/3.12/"
        "lib/python3.12/socket.py",
        "stdlib",
    ),
    ("pyenv", "/root/.pyenv/versions/3.12.1/lib/python3.12/socket.py", "stdlib"),
    ("conda", "/opt/conda/lib/python3.11/concurrent/futures/_base.py", "stdlib"),
    ("Nix", "/nix/store/abc-python3-3.11.6/lib/python3.11/selectors.py", "stdlib"),
    ("lib-dynload", "/usr/lib/python3.11/lib-dynload/_asyncio.py", "stdlib"),
    ("PyPy", "/opt/pypy3.10/lib/pypy3.10/asyncio/events.py", "stdlib"),
    ("zipped stdlib", "/usr/lib/python311.zip/encodings/utf_8.py", "stdlib"),
    ("Windows", "C:\\Python311\\Lib\\asyncio\\tasks.py", "stdlib"),
    ("Windows forward slashes", "C:/Python311/Lib/asyncio/tasks.py", "stdlib"),
    (
        "Windows per-user install",
        "C:\\Users\\ana\\AppData\\Local\\Programs\\Python\\Python312\\Lib\\socket.py",
        "stdlib",
    ),
    ("conda on Windows", "C:\\Users\\ana\\miniconda3\\Lib\\threading.py", "stdlib"),
    ("frozen module", "<frozen importlib._bootstrap>", "stdlib"),
    ("frozen runpy", "<frozen runpy>", "stdlib"),
    # the inspector itself
    ("its own package", os.path.join(INSPECTOR_DIR, "agent", "instrumented.py"), "inspector"),
    ("its CLI", os.path.join(INSPECTOR_DIR, "commands", "run_app.py"), "inspector"),
    ("its entry point", os.path.join(INSPECTOR_DIR, "__main__.py"), "inspector"),
    (
        "an installed copy",
        "/opt/venv/lib/python3.11/site-packages/inspector/agent/probes/requests.py",
        "inspector",
    ),
    ("another checkout", "/home/dev/uvicorn-inspector/inspector/agent/watchdog.py", "inspector"),
    (
        "on Windows",
        "C:\\proj\\.venv\\Lib\\site-packages\\inspector\\agent\\probes\\threadpool.py",
        "inspector",
    ),
]


@pytest.mark.parametrize(
    ("path", "expected"), [pytest.param(p, k, id=f"{k}: {name}") for name, p, k in CASES]
)
def test_each_path_shape_is_classified(path: str, expected: FrameKind) -> None:
    assert classify(path) == expected
    assert is_application(path) is (expected == "app")


@pytest.mark.parametrize(
    ("path", "module"),
    [
        ("/usr/lib/python3.11/http/client.py", "http.client"),
        ("/usr/lib64/python3.11/asyncio/__init__.py", "asyncio"),
        ("/x/site-packages/urllib3/connectionpool.py", "urllib3.connectionpool"),
        ("/x/site-packages/sqlalchemy/engine/__init__.py", "sqlalchemy.engine"),
        ("/usr/lib/python3/dist-packages/requests/api.py", "requests.api"),
        ("C:\\Python311\\Lib\\logging\\__init__.py", "logging"),
        ("C:\\proj\\.venv\\Lib\\site-packages\\psycopg\\cursor.py", "psycopg.cursor"),
        ("/usr/lib/python311.zip/encodings/utf_8.py", "encodings.utf_8"),
        ("/srv/shop/__pypackages__/3.11/lib/orjson/__init__.py", "orjson"),
        ("<frozen runpy>", "runpy"),
        ("/srv/shop/app.py", None),
        ("/srv/shop/.venv/lib/python3.11/site-packages/inspector/agent/tasks.py", None),
    ],
)
def test_module_names_come_from_paths(path: str, module: str | None) -> None:
    assert module_name(path) == module


@pytest.mark.parametrize(
    ("path", "short"),
    [
        ("/srv/.venv/lib/python3.11/site-packages/starlette/routing.py", "starlette/routing.py"),
        ("C:\\Python311\\Lib\\asyncio\\tasks.py", "asyncio/tasks.py"),
        ("/usr/lib64/python3.11/asyncio/tasks.py", "asyncio/tasks.py"),
        ("/srv/shop/app.py", None),
        ("<string>", None),
    ],
)
def test_library_paths_start_below_their_root(path: str, short: str | None) -> None:
    assert library_path(path) == short
