"""Server configurations under test, and starting/stopping them pinned to a core.

Each configuration is a way of serving `benchmarks/apps/bench_app.py`: plain uvicorn, asyncio
debug mode, aiomonitor with its task-factory hook, the inspector agent (idle, polled, tracing
exceptions). A configuration that cannot run here says why (`unavailable`) instead of failing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
APP: Final = "benchmarks.apps.bench_app:app"
HOST: Final = "127.0.0.1"
SERVER_CPU: Final = "0"
LOAD_CPU: Final = "1"
READY_TIMEOUT: Final = 45.0


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def http_status(port: int, path: str = "/", timeout: float = 2.0) -> int | None:
    import socket

    try:
        with socket.create_connection((HOST, port), timeout=timeout) as conn:
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            head = conn.recv(64)
        return int(head.split()[1])
    except (OSError, IndexError, ValueError):
        return None


def port_is_open(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


ENV_UNPINNED: Final = "INSPECTOR_BENCH_UNPINNED"
"""Set (to anything) to run everything unpinned, as users run it: the OS places each process."""


def pinned(argv: Sequence[str], cpu: str) -> list[str]:
    """`argv` pinned to `cpu` with taskset when there is one (and more than one core), unless
    `ENV_UNPINNED` is set."""
    if os.environ.get(ENV_UNPINNED):
        return list(argv)
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", cpu, *argv]
    return list(argv)


@dataclass(frozen=True)
class Python:
    """An interpreter that can serve the bench app (has the project and its deps)."""

    path: str
    version: tuple[int, int]

    @property
    def label(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


def probe_python(path: str) -> Python | str:
    """The interpreter, or why it cannot serve the bench app."""
    code = "import sys, fastapi, uvicorn, aiomonitor, inspector;print(*sys.version_info[:2])"
    try:
        out = subprocess.run(
            [path, "-c", code], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{path}: {error}"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["fails"])[-1]
        return f"{path}: {last}"
    major, minor = out.stdout.split()
    return Python(path, (int(major), int(minor)))


def find_python312(explicit: str | None) -> Python | str:
    """A Python >= 3.12 with the project installed, or how to get one."""
    candidates: list[str | None] = [
        explicit,
        os.environ.get("INSPECTOR_PYTHON312"),
        str(ROOT / ".venv312" / "bin" / "python"),
    ]
    reasons = []
    for candidate in filter(None, candidates):
        if not Path(candidate).exists():
            continue
        found = probe_python(candidate)
        if isinstance(found, Python) and found.version >= (3, 12):
            return found
        reasons.append(found if isinstance(found, str) else f"{candidate} is {found.label}")
    if sys.version_info >= (3, 12):
        return Python(sys.executable, sys.version_info[:2])  # type: ignore[arg-type]
    how = (
        "no Python >= 3.12 with the project installed (python3.12 -m venv .venv312 && "
        ".venv312/bin/pip install -e '.[dev]', or pass --python312 PATH)"
    )
    return "; ".join([how, *reasons])


@dataclass(frozen=True)
class LoopSet:
    """The event loop and HTTP parser uvicorn runs with."""

    name: str
    loop: str
    http: str

    def unavailable(self) -> str | None:
        if self.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            return "uvloop is not installed"
        if self.http == "httptools" and importlib.util.find_spec("httptools") is None:
            return "httptools is not installed"
        return None


LOOP_SETS: Final = (
    LoopSet("asyncio + h11", "asyncio", "h11"),
    LoopSet("uvloop + httptools", "uvloop", "httptools"),
)


@dataclass(frozen=True)
class Config:
    """One way of serving the bench app."""

    key: str
    label: str
    kind: str
    """"uvicorn" (plain `python -m uvicorn`) or "inspector" (`python -m inspector run`)."""
    python: Python | None = None
    """None: this interpreter."""
    env: tuple[tuple[str, str], ...] = ()
    agent_args: tuple[str, ...] = ()
    polled_hz: float | None = None
    """A client polls full snapshots at this rate during the measurement."""
    aiomonitor_hook: bool = False
    baseline: str = "plain"
    """Key of the configuration its ratios are taken against."""
    blocked: str | None = None
    """Why it cannot run here, decided before the run (None: it can)."""

    @property
    def interpreter(self) -> str:
        return self.python.path if self.python else sys.executable


def configurations(python312: Python | str) -> list[Config]:
    """Every configuration of the overhead table, each runnable or saying why not."""
    has_aiomonitor = importlib.util.find_spec("aiomonitor") is not None
    configs = [
        Config("plain", "plain uvicorn", "uvicorn"),
        Config(
            "asyncio-debug",
            "asyncio debug mode (PYTHONASYNCIODEBUG=1)",
            "uvicorn",
            env=(("PYTHONASYNCIODEBUG", "1"),),
        ),
        Config(
            "aiomonitor-hook",
            "aiomonitor, hook_task_factory=True",
            "uvicorn",
            aiomonitor_hook=True,
            blocked=None if has_aiomonitor else "aiomonitor is not installed",
        ),
        Config(
            "core-idle",
            "inspector agent --no-lifecycle, idle",
            "inspector",
            agent_args=("--no-lifecycle",),
        ),
        Config(
            "core-polled",
            "inspector agent --no-lifecycle, polled at 1 Hz",
            "inspector",
            agent_args=("--no-lifecycle",),
            polled_hz=1.0,
        ),
        Config("agent-idle", "inspector agent, idle", "inspector"),
        Config(
            "agent-polled",
            "inspector agent, full snapshot polled at 1 Hz",
            "inspector",
            polled_hz=1.0,
        ),
    ]
    if isinstance(python312, Python):
        label = f"py{python312.label}"
        configs.append(
            Config(
                "plain-py312",
                f"plain uvicorn ({label})",
                "uvicorn",
                python=python312,
            )
        )
        configs.append(
            Config(
                "agent-trace-exceptions",
                f"inspector agent, --trace-exceptions ({label})",
                "inspector",
                python=python312,
                agent_args=("--trace-exceptions",),
                baseline="plain-py312",
            )
        )
    else:
        configs.append(
            Config(
                "agent-trace-exceptions",
                "inspector agent, --trace-exceptions (Python >= 3.12)",
                "inspector",
                agent_args=("--trace-exceptions",),
                blocked=python312,
            )
        )
    return configs


@dataclass
class Server:
    """A running bench server (group leader), its ports and log."""

    config: Config
    process: subprocess.Popen[bytes]
    port: int
    agent_port: int | None
    log_path: Path
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for helper in self.extra:
            _stop_group(helper)
        _stop_group(self.process)
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGKILL):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=3)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=3)


class ServerError(Exception):
    """A configuration did not come up; the message says why in one line."""


def server_argv(config: Config, loop_set: LoopSet, port: int, agent_port: int | None) -> list[str]:
    common = ["--host", HOST, "--port", str(port), "--loop", loop_set.loop, "--http", loop_set.http]
    common += ["--log-level", "warning"]
    if config.kind == "inspector":
        assert agent_port is not None
        return [
            config.interpreter,
            "-m",
            "inspector",
            "run",
            APP,
            *common,
            "--inspect-port",
            str(agent_port),
            *config.agent_args,
        ]
    return [config.interpreter, "-m", "uvicorn", APP, *common]


def start_server(config: Config, loop_set: LoopSet, *, cpu: str = SERVER_CPU) -> Server:
    """Start `config` on `loop_set`, pinned to `cpu`, and wait until it answers."""
    port = free_port()
    agent_port = free_port() if config.kind == "inspector" else None
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    env.update(dict(config.env))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    runtime = Path(tempfile.gettempdir()) / f"inspector-bench-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env.setdefault("INSPECTOR_RUNTIME_DIR", str(runtime))
    if config.aiomonitor_hook:
        env["BENCH_AIOMONITOR_PORTS"] = ",".join(str(free_port()) for _ in range(3))
    log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)
    argv = pinned(server_argv(config, loop_set, port, agent_port), cpu)
    try:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    server = Server(config, process, port, agent_port, Path(log.name))
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            reason = _last_error(server.log_tail(20)) or f"exited with status {process.returncode}"
            server.stop()
            raise ServerError(reason)
        if http_status(port) == 200 and (agent_port is None or port_is_open(agent_port)):
            return server
        time.sleep(0.1)
    tail = _last_error(server.log_tail(20))
    server.stop()
    raise ServerError(f"did not answer within {READY_TIMEOUT:g} s" + (f": {tail}" if tail else ""))


def _last_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or line.startswith("inspector:"):
            return line[:200]
    return lines[-1][:200] if lines else ""


def rss_bytes(pid: int) -> int:
    import psutil  # type: ignore[import-untyped,unused-ignore]

    return int(psutil.Process(pid).memory_info().rss)


def server_pid(server: Server) -> int:
    """The pid that serves (taskset execs its command, so the leader is the server itself)."""
    return server.process.pid
