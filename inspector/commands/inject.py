"""`inspector inject PID`: start the agent inside a server that is already running (Python 3.14+).

Python 3.14's `sys.remote_exec(pid, script)` makes the target run a script on its main thread,
between two bytecodes. In uvicorn that thread runs the event loop, so the script must not start
anything itself: it finds the running loop, schedules `start_agent` on it with
`call_soon_threadsafe`, and returns. The agent then starts on the loop's thread like any other.
The script reports back through a result file (and the agent's registration file).

What an injected agent cannot do: the ASGI app is already built, so the request middleware is
not installed (no requests, no background jobs); tasks, stalls, the threadpool, threads and
unretrieved task exceptions work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from inspector.errors import ExitStatus, InspectorError

MIN_PYTHON: Final = (3, 14)
RESULT_TIMEOUT: Final = 10.0
"""Seconds the target gets to run the script and start the agent (uvicorn's main loop wakes
every 0.1 s; a loop blocked in C code wakes later)."""
_CAP_SYS_PTRACE_BIT: Final = 19

BOOTSTRAP = r"""
# Run inside the target by `inspector inject`, on its main thread, between two bytecodes.
# Only schedules the agent's start on the running event loop and returns.
def _inspector_inject(result_path, package_parent, host, port):
    import json, os, sys

    def report(**data):
        temporary = result_path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(data, handle)
        os.replace(temporary, result_path)

    try:
        import asyncio
        try:
            import inspector.agent  # noqa: F401
        except ImportError:
            sys.path.append(package_parent)
            import inspector.agent  # noqa: F401
        loop = asyncio.events._get_running_loop()
        if loop is None:
            import gc
            running = [
                obj for obj in gc.get_objects()
                if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running()
            ]
            loop = running[0] if len(running) == 1 else None
        if loop is None:
            report(ok=False, error="no running asyncio event loop found in this process")
            return

        def start():
            try:
                from inspector.agent import AgentConfig, start_agent
                agent = start_agent(loop, AgentConfig(host=host, port=port))
                report(ok=True, host=agent.host, port=agent.port, pid=os.getpid())
            except BaseException as error:
                report(ok=False, error=f"{type(error).__name__}: {error}")

        loop.call_soon_threadsafe(start)
    except BaseException as error:
        report(ok=False, error=f"{type(error).__name__}: {error}")


_inspector_inject(RESULT_PATH, PACKAGE_PARENT, HOST, PORT)
del _inspector_inject
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inject",
        help="start the agent inside a running server (Python 3.14+, needs ptrace rights)",
        description=(
            "Start the inspector agent inside a uvicorn process that is already running, "
            "through Python 3.14's sys.remote_exec. Needs the same Python version as the "
            "server, the right to ptrace it, and uvicorn-inspector importable by the server. "
            "Requests and background jobs are not tracked by an injected agent."
        ),
    )
    parser.add_argument("pid", type=int, help="the worker process to inject into")
    parser.add_argument("--host", default="127.0.0.1", help="agent address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=0, help="agent termui port (default: a free port)"
    )
    parser.add_argument(
        "--timeout", type=float, default=RESULT_TIMEOUT, help="seconds to wait for the agent"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    check_python()
    target = check_target(args.pid)
    existing = _registered_address(args.pid)
    if existing is not None:
        print(f"pid {args.pid} already runs an agent at {existing}: inspector attach {existing}")
        return ExitStatus.OK
    check_same_python(target)
    address = inject(args.pid, args.host, args.port, args.timeout)
    print(f"agent started in pid {args.pid} at {address}: inspector attach {address}")
    return ExitStatus.OK


def check_python() -> None:
    if sys.version_info < MIN_PYTHON:
        version = ".".join(str(part) for part in sys.version_info[:3])
        raise InspectorError(
            f"inspector inject needs Python 3.14 or newer (sys.remote_exec); this is Python "
            f"{version}: start the server with `inspector run APP` or add "
            "`app = inspector.agent.instrument(app)` instead"
        )


def check_target(pid: int) -> Any:
    """The psutil process for `pid`, refusing processes that serve no requests."""
    import psutil

    try:
        process = psutil.Process(pid)
        process.cmdline()
    except psutil.NoSuchProcess:
        raise InspectorError(f"no process with pid {pid}") from None
    except psutil.AccessDenied:
        raise InspectorError(
            f"cannot read process {pid}: it belongs to another user (run as that user or root)"
        ) from None
    from inspector.client.discovery import discover

    found = next((t for t in discover(sample_seconds=0) if t.pid == pid), None)
    if found is not None and not found.serves_requests:
        workers = ", ".join(str(child) for child in found.children) or "none yet"
        raise InspectorError(
            f"pid {pid} is a {found.role} and serves no requests: inject into a worker ({workers})"
        )
    return process


def check_same_python(process: Any) -> None:
    """sys.remote_exec needs the target to run the same Python minor version as we do."""
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        executable = process.exe()
    except Exception:
        executable = ""
    if not executable or not os.path.exists(executable):
        return  # cannot tell; remote_exec will refuse a mismatch itself
    try:
        done = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return
    theirs = done.stdout.strip()
    if done.returncode == 0 and theirs and theirs != mine:
        raise InspectorError(
            f"pid {process.pid} runs Python {theirs} and this inspector runs Python {mine}: "
            f"run `inspector inject` with the server's interpreter ({executable} -m inspector "
            f"inject {process.pid})"
        )


def bootstrap_script(result_path: Path, host: str, port: int) -> str:
    """The script the target runs: schedule the agent's start, report to `result_path`."""
    package_parent = str(Path(__file__).resolve().parents[2])
    arguments = ", ".join(repr(value) for value in (str(result_path), package_parent, host, port))
    return BOOTSTRAP.replace("RESULT_PATH, PACKAGE_PARENT, HOST, PORT", arguments)


def inject(pid: int, host: str, port: int, timeout: float) -> str:
    """Run the bootstrap in `pid` and wait for the agent; returns "host:port"."""
    directory = Path(tempfile.mkdtemp(prefix="inspector-inject-"))
    try:
        script = directory / "bootstrap.py"
        result = directory / "result.json"
        script.write_text(bootstrap_script(result, host, port), encoding="utf-8")
        _share_with_target(directory, script, pid)
        try:
            sys.remote_exec(pid, str(script))  # type: ignore[attr-defined]
        except PermissionError as error:
            raise InspectorError(permission_message(pid, error)) from None
        except (OSError, RuntimeError) as error:
            raise InspectorError(f"could not run code in pid {pid}: {error}") from None
        answer = _wait_for_result(result, timeout)
        if answer is None:
            raise InspectorError(
                f"pid {pid} did not run the bootstrap within {timeout:g} s (its main thread is "
                "not running Python code, or remote debugging is disabled in it with "
                "PYTHON_DISABLE_REMOTE_DEBUG / -X disable_remote_debug)"
            )
        if not answer.get("ok"):
            raise InspectorError(f"the agent did not start in pid {pid}: {answer.get('error')}")
        return f"{answer.get('host')}:{answer.get('port')}"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _share_with_target(directory: Path, script: Path, pid: int) -> None:
    """Let the target's user read the script and write the result (root injecting into
    another user's server)."""
    try:
        import psutil

        uid = psutil.Process(pid).uids().real
    except Exception:
        return
    if uid != os.getuid() and os.geteuid() == 0:
        for path in (directory, script):
            try:
                os.chown(path, uid, -1)
            except OSError:
                pass


def _wait_for_result(path: Path, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return None


def permission_message(pid: int, error: BaseException) -> str:
    """Say which permission is missing, in terms a person can act on."""
    reasons = []
    scope = _ptrace_scope()
    if scope is not None and scope > 0 and not _has_cap_sys_ptrace():
        meaning = {
            1: "only a parent process may attach",
            2: "only processes with CAP_SYS_PTRACE may attach",
            3: "no process may attach",
        }.get(scope, "attaching is restricted")
        reasons.append(f"kernel.yama.ptrace_scope is {scope} ({meaning})")
    if not _has_cap_sys_ptrace():
        reasons.append("this process lacks CAP_SYS_PTRACE")
    fixes = (
        "run `inspector inject` with sudo, grant CAP_SYS_PTRACE (containers: --cap-add "
        "SYS_PTRACE), or relax Yama with `echo 0 | sudo tee /proc/sys/kernel/yama/ptrace_scope`"
    )
    why = "; ".join(reasons) or str(error)
    return f"not allowed to attach to pid {pid}: {why}; {fixes}"


def _ptrace_scope() -> int | None:
    try:
        return int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip())
    except (OSError, ValueError):
        return None


def _has_cap_sys_ptrace() -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_SYS_PTRACE_BIT & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def _registered_address(pid: int) -> str | None:
    from inspector.client.discovery import live_registrations

    registration = live_registrations().get(pid)
    return None if registration is None else f"{registration.host}:{registration.port}"
