"""Start the demo app under the agent in a child process, and stop it without leftovers.

The child runs `inspector run demo_app:app` in a session (process group) of its own, on free
loopback ports for HTTP and for the agent; its output goes to a log file so it never draws over
the terminal UI. Stopping signals the whole group: SIGINT (uvicorn's graceful shutdown), SIGINT
again (uvicorn's "force exit": the demo always has requests that never finish), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from inspector.demo.expected import demo_app_path
from inspector.errors import InspectorError

HOST: Final = "127.0.0.1"
APP: Final = "demo_app:app"
READY_TIMEOUT: Final = 45.0
"""Seconds to wait for the server and its agent (importing FastAPI and aiomonitor on a busy
machine takes a few)."""
GRACE: Final = 3.0
"""Seconds the server gets after each polite signal before the next, harder one."""


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(host: str, port: int, path: str, timeout: float = 2.0) -> int | None:
    """Status of a GET, or None when nothing (or not HTTP) answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            head = conn.recv(64)
    except OSError:
        return None
    try:
        return int(head.split()[1])
    except (IndexError, ValueError):
        return None


def supports_trace_exceptions(python: str = sys.executable) -> bool:
    """`--trace-exceptions` needs sys.monitoring (Python >= 3.12) in the server's interpreter."""
    if python == sys.executable:
        return sys.version_info >= (3, 12)
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info >= (3, 12))"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "True"


def run_command(
    python: str, http_port: int, agent_port: int, *, trace_exceptions: bool
) -> list[str]:
    """The child's argv: the demo app served by `inspector run` with the agent on its port."""
    argv = [
        python,
        "-m",
        "inspector",
        "run",
        APP,
        "--host",
        HOST,
        "--port",
        str(http_port),
        "--inspect-port",
        str(agent_port),
    ]
    if trace_exceptions:
        argv.append("--trace-exceptions")
    return argv


@dataclass
class DemoServer:
    """A running demo server: its ports, its process (group leader) and its log."""

    process: subprocess.Popen[bytes]
    http_port: int
    agent_port: int
    log_path: Path
    trace_exceptions: bool

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def agent_address(self) -> str:
        return f"{HOST}:{self.agent_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server and everything it started; idempotent, never raises."""
        for sig in (signal.SIGINT, signal.SIGINT, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            _signal_group(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=GRACE)
        # The leader is gone; anything it left in its group goes too.
        _signal_group(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=GRACE)


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the process that started us dies.

    The server runs in a session of its own (so stopping it can signal its whole group), which
    also puts it out of reach of a signal sent to ours: if `inspector demo` is killed outright,
    Linux's parent-death signal still takes the server down. A no-op elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


_PR_SET_PDEATHSIG: Final = 1


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def demo_root() -> Path:
    """The directory holding `demo_app.py` (the source tree's root)."""
    path = demo_app_path()
    if not path.is_file():
        raise InspectorError(
            f"the demo app is not at {path}: run `inspector demo` from a source checkout "
            "(git clone, then `pip install -e '.[demo]'`)"
        )
    return path.parent


def require_fastapi() -> None:
    import importlib.util

    if importlib.util.find_spec("fastapi") is None:
        raise InspectorError(
            "the demo needs FastAPI: pip install 'uvicorn-inspector[demo]' "
            "(or pip install -e '.[demo]' in a checkout)"
        )


def start_demo_server(
    *,
    http_port: int | None = None,
    agent_port: int | None = None,
    trace_exceptions: bool | None = None,
    python: str = sys.executable,
    progress: Callable[[str], None] = lambda text: None,
    ready_timeout: float = READY_TIMEOUT,
    extra_env: dict[str, str] | None = None,
    command: Callable[..., Sequence[str]] = run_command,
) -> DemoServer:
    """Start the demo under the agent and wait until both answer; raises InspectorError."""
    root = demo_root()
    http_port = http_port or free_port()
    agent_port = agent_port or free_port()
    if port_is_open(HOST, http_port):
        raise InspectorError(f"port {http_port} is already in use: pick another with --port")
    if trace_exceptions is None:
        trace_exceptions = supports_trace_exceptions(python)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(root), env.get("PYTHONPATH", "")) if part
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the child writes it; we keep the path
        prefix="inspector-demo-", suffix=".log", delete=False
    )
    argv = list(command(python, http_port, agent_port, trace_exceptions=trace_exceptions))
    progress("starting demo server…")
    try:
        process = subprocess.Popen(
            argv,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads run yet at this point
        )
    except OSError as error:
        raise InspectorError(f"could not start the demo server: {error}") from None
    finally:
        log.close()
    server = DemoServer(process, http_port, agent_port, Path(log.name), trace_exceptions)
    try:
        _wait_ready(server, ready_timeout)
    except BaseException:
        server.stop()
        raise
    progress(
        f"ready on {server.url}, agent on {server.agent_address} "
        f"(pid {server.pid}, log {server.log_path})"
    )
    return server


def _wait_ready(server: DemoServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise InspectorError(
                f"the demo server exited with status {server.process.returncode} while "
                f"starting; its log ({server.log_path}) ends with:\n{server.log_tail()}"
            )
        if http_status(HOST, server.http_port, "/health") == 200 and port_is_open(
            HOST, server.agent_port
        ):
            return
        time.sleep(0.1)
    raise InspectorError(
        f"the demo server did not answer within {timeout:g} s; its log ({server.log_path}) "
        f"ends with:\n{server.log_tail()}"
    )
