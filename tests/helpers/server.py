"""Run `inspector run APP` as a real subprocess in tests, and always clean it up.

Usage (everything is bounded; the process group is killed on exit from the block)::

    from tests.helpers.server import inspector_run

    def test_something(tmp_path):
        with inspector_run("tests.apps.core_app:app", tmp_path) as server:
            server.get("/")                           # HTTP on a free port
            host, port = server.agent_address()       # the agent's termui
            server.registrations()                    # registration files it wrote
            seconds = server.stop(signal.SIGTERM)     # time until it exited

API:

* ``inspector_run(app, tmp_path, *, args=(), workers=None, inspect_port=None, loop=None,
  wait_ready=True, ready_timeout=30.0, env=None)`` — context manager yielding a
  `RunningServer`. ``inspect_port=None`` picks a free port (for ``--workers N``, a free run of N
  ports); pass ``0`` to let the agent pick. ``args`` are extra ``inspector run`` arguments.
  With ``wait_ready`` it returns once HTTP answers and every worker's registration file exists
  (raising `ServerStartError` with the output if the process exits or the deadline passes).
* ``start_inspector_run(...)`` — the same without the context manager; call ``.kill()``.
* `RunningServer`: ``process`` (Popen), ``http_port``, ``inspect_port``, ``runtime_dir``
  (``INSPECTOR_RUNTIME_DIR`` of the child), ``log_path``; ``url(path)``, ``get(path)``,
  ``output()``, ``registrations()``, ``agent_address()``, ``wait_exit(timeout)``,
  ``stop(sig, timeout)`` (seconds until exit), ``kill()`` (SIGTERM, wait, SIGKILL the group).
* ``launched(command, tmp_path, *, http_port, workers=1, ...)`` / ``spawn(...)`` — the same for
  any command (``inspector run -- uvicorn ...``, gunicorn, ``python main.py``): ready once HTTP
  answers on ``http_port`` and ``workers`` agents have registered.
* ``free_port()`` and ``free_port_run(count)`` ask the OS for unused ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.agent import ports
from inspector.registration import ENV_RUNTIME_DIR, Registration, read_registrations
from tests.helpers.processes import stop_process_group

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


class ServerStartError(AssertionError):
    """The server did not become ready; the message carries its output."""


def free_port(host: str = HOST) -> int:
    return ports.free_port(host)


def free_port_run(count: int, host: str = HOST, attempts: int = 50) -> int:
    """A base port such that base .. base+count-1 are all free right now."""
    for _ in range(attempts):
        base = free_port(host)
        if base + count - 1 <= 65535 and all(
            ports.port_is_free(host, base + i) for i in range(count)
        ):
            return base
    raise RuntimeError(f"no run of {count} free ports found")


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    http_port: int
    inspect_port: int | None
    runtime_dir: Path
    log_path: Path
    workers: int = 1
    _log_handle: object = field(default=None, repr=False)

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.http_port}{path}"

    def get(self, path: str = "/", timeout: float = 10.0) -> bytes:
        with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
            body: bytes = response.read()
            return body

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def registrations(self) -> list[Registration]:
        return read_registrations(self.runtime_dir)

    def agent_address(self) -> tuple[str, int]:
        """The agent of a single-process server (from its registration file)."""
        registrations = self.registrations()
        if not registrations:
            raise AssertionError(f"no registration file\n{self.output()}")
        return registrations[0].host, registrations[0].port

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
        """Send `sig`; return the seconds until the process exited (inf if it did not)."""
        started = time.monotonic()
        self.process.send_signal(sig)
        if self.wait_exit(timeout) is None:
            return float("inf")
        return time.monotonic() - started

    def kill(self) -> None:
        """Terminate, wait briefly, then SIGKILL the whole process group. Never raises."""
        stop_process_group(self.process)
        handle = self._log_handle
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.close()  # type: ignore[attr-defined]


def _ready(server: RunningServer) -> bool:
    if len(server.registrations()) < server.workers:
        return False
    try:
        server.get("/", timeout=2.0)
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it serves
    except (OSError, urllib.error.URLError):
        return False
    return True


START_ATTEMPTS = 3
"""A free port is only free until someone else binds it: start again when that happens."""


def start_inspector_run(
    app: str,
    tmp_path: Path,
    *,
    args: Sequence[str] = (),
    workers: int | None = None,
    inspect_port: int | None = None,
    loop: str | None = None,
    wait_ready: bool = True,
    ready_timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> RunningServer:
    for attempt in range(1, START_ATTEMPTS + 1):
        http_port = free_port()
        try:
            return _start(
                app,
                tmp_path,
                http_port,
                args=args,
                workers=workers,
                inspect_port=inspect_port,
                loop=loop,
                wait_ready=wait_ready,
                ready_timeout=ready_timeout,
                env=env,
            )
        except ServerStartError as error:
            taken = f"'{HOST}', {http_port}): address already in use" in str(error)
            if not taken or attempt == START_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _start(
    app: str,
    tmp_path: Path,
    http_port: int,
    *,
    args: Sequence[str],
    workers: int | None,
    inspect_port: int | None,
    loop: str | None,
    wait_ready: bool,
    ready_timeout: float,
    env: Mapping[str, str] | None,
) -> RunningServer:
    count = workers or 1
    if inspect_port is None:
        inspect_port = free_port_run(count) if count > 1 else free_port()
    command = [
        sys.executable,
        "-m",
        "inspector",
        "run",
        app,
        "--port",
        str(http_port),
        "--inspect-port",
        str(inspect_port),
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    if loop is not None:
        command += ["--loop", loop]
    command += list(args)
    return spawn(
        command,
        tmp_path,
        http_port=http_port,
        inspect_port=inspect_port or None,
        workers=count,
        wait_ready=wait_ready,
        ready_timeout=ready_timeout,
        env=env,
    )


def spawn(
    command: Sequence[str],
    tmp_path: Path,
    *,
    http_port: int,
    inspect_port: int | None = None,
    workers: int = 1,
    wait_ready: bool = True,
    ready_timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
) -> RunningServer:
    """Start any server command in its own process group, logging to a file; with `wait_ready`,
    return once HTTP answers on `http_port` and `workers` agents have registered."""
    runtime_dir = tmp_path / "runtime"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    child_env = dict(os.environ)
    child_env.update({ENV_RUNTIME_DIR: str(runtime_dir), "PYTHONUNBUFFERED": "1"})
    child_env.update(env or {})
    log_path = tmp_path / f"server-{http_port}.log"
    log_handle = open(log_path, "wb")  # noqa: SIM115 (closed by kill())
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=log_handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: kill() reaches the workers too
    )
    server = RunningServer(
        process=process,
        http_port=http_port,
        inspect_port=inspect_port,
        runtime_dir=runtime_dir,
        log_path=log_path,
        workers=workers,
        _log_handle=log_handle,
    )
    if not wait_ready:
        return server
    deadline = time.monotonic() + ready_timeout
    try:
        while not _ready(server):
            if process.poll() is not None:
                raise ServerStartError(
                    f"{command[0]} exited with {process.returncode}\n{server.output()}"
                )
            if time.monotonic() > deadline:
                raise ServerStartError(f"not ready after {ready_timeout} s\n{server.output()}")
            time.sleep(0.05)
    except BaseException:
        server.kill()
        raise
    return server


@contextlib.contextmanager
def launched(command: Sequence[str], tmp_path: Path, **kwargs: Any) -> Iterator[RunningServer]:
    """`spawn` as a context manager that always kills the server."""
    server = spawn(command, tmp_path, **kwargs)
    try:
        yield server
    finally:
        server.kill()


@contextlib.contextmanager
def inspector_run(app: str, tmp_path: Path, **kwargs: object) -> Iterator[RunningServer]:
    """`start_inspector_run` as a context manager that always kills the server."""
    server = start_inspector_run(app, tmp_path, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.kill()
