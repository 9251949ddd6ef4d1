"""`inspector inject PID`: start the agent inside a uvicorn server that is already running.

Two ways into the target, both ending in the same launcher (`LAUNCHER`): Python 3.14's
`sys.remote_exec` on a 3.14 server, and lldb or gdb on 3.10-3.13 (see `inject_debugger` for
when the debugger runs it, which is the delicate part). The launcher runs inside the target
with the GIL held and only starts a thread, so the target spends microseconds in it and never
sees an exception from it; that thread runs the bootstrap (`BOOTSTRAP`), which imports the agent
(from the server's environment, or from this package's directory) and calls
`inspector.agent.injected.start_injected`: the agent starts from that thread even when the loop
is blocked right now, the request middleware is put around the running app when the loop comes
back. The bootstrap reports through a result file this command waits for; nothing is ever
raised into the app.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from inspector.errors import ExitStatus, InspectorError

REMOTE_EXEC_PYTHON: Final = (3, 14)
MIN_TARGET_PYTHON: Final = (3, 10)
METHODS: Final = ("auto", "remote-exec", "lldb", "gdb")
RESULT_TIMEOUT: Final = 10.0
"""Seconds the target gets to run the launcher and start the agent (a loop blocked in native
code with the GIL held runs a queued launcher only when it returns)."""
_CAP_SYS_PTRACE_BIT: Final = 19

LAUNCHER = r"""
try:
    exec(
        "import sys, _thread\n"
        "events = sys.modules.get('asyncio.events')\n"
        "loop = events._get_running_loop() if events is not None else None\n"
        "_thread.start_new_thread(exec, (BODY, {'__name__': '__inspector_inject__', 'PATH': PATH,"
        " 'INJECT_LOOP': loop, 'INJECT_LOOP_THREAD': _thread.get_ident() if loop else None}))",
        {"BODY": "exec(compile(open(PATH, 'rb').read(), PATH, 'exec'))", "PATH": BOOTSTRAP_PATH},
    )
except KeyboardInterrupt:
    __import__("_thread").interrupt_main()
except BaseException:
    pass
"""
"""Run in the target with the GIL held, on the thread that was stopped or between bytecodes:
note the running loop (when this thread runs it) and start the bootstrap's thread. Binds no
name in `__main__`, never raises (a pending call that fails would raise into the app)."""

BOOTSTRAP = r"""
# Run inside the target by `inspector inject`, on a thread of its own.
def _inspector_inject(result_path, package_parent, host, port, action, loop, loop_thread):
    import json, os, sys

    def report(data):
        temporary = result_path + ".tmp"
        with open(temporary, "w") as handle:
            json.dump(data, handle)
        os.replace(temporary, result_path)

    try:
        python = "%d.%d" % sys.version_info[:2]
        if action == "detach":
            if "inspector.agent.registry" not in sys.modules:  # no agent ever ran here
                report({"ok": True, "detached": False})
                return
            from inspector.agent.injected import detach_injected
            report(detach_injected())
            return
        if sys.version_info < (3, 10):
            report({"ok": False, "refused": "python", "error": "it runs Python " + python})
            return
        if "uvicorn" not in sys.modules:
            report({"ok": False, "refused": "no-uvicorn", "python": python,
                    "error": "it is a Python process without uvicorn"})
            return
        try:
            from inspector.agent.injected import start_injected
        except ImportError:
            if package_parent not in sys.path:
                sys.path.append(package_parent)
            try:
                from inspector.agent.injected import start_injected
            except ImportError as error:
                report({"ok": False, "refused": "import", "python": python,
                        "executable": sys.executable, "error": str(error)})
                return
        report(start_injected(host, port, loop, loop_thread))
    except BaseException as error:
        report({"ok": False, "error": "%s: %s" % (type(error).__name__, error)})


_inspector_inject(
    RESULT_PATH, PACKAGE_PARENT, HOST, PORT, ACTION, INJECT_LOOP, INJECT_LOOP_THREAD
)
"""
"""Start the agent (ACTION "start") or detach the injected one ("detach"); a detach imports
nothing new into a process where no agent ever ran."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inject",
        help="start the agent inside a running server (needs ptrace rights; lldb/gdb < 3.14)",
        description=(
            "Start the inspector agent inside a uvicorn process that is already running: "
            "through sys.remote_exec on Python 3.14, through lldb or gdb on Python 3.10-3.13. "
            "Needs the right to ptrace the server and uvicorn-inspector's dependencies "
            "(aiomonitor) importable by the server. Works on a server whose loop is blocked; "
            "requests are tracked from the moment of injection."
        ),
    )
    parser.add_argument("pid", type=int, help="the worker process to inject into")
    parser.add_argument(
        "--detach",
        action="store_true",
        help="remove an injected agent instead: its probes, ports and registration; the "
        "server serves on as before",
    )
    parser.add_argument("--host", default="127.0.0.1", help="agent address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=0, help="agent termui port (default: a free port)"
    )
    parser.add_argument(
        "--timeout", type=float, default=RESULT_TIMEOUT, help="seconds to wait for the agent"
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="how to run code in the server (default: remote-exec on 3.14, else lldb or gdb)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    pid: int = args.pid
    if pid <= 0:
        raise InspectorError(f"no process with pid {pid}")
    if not 0 < args.timeout <= 3600:
        raise InspectorError("--timeout must be between 0 and 3600 seconds")
    if not 0 <= args.port <= 65535:
        raise InspectorError("--port must be between 0 and 65535")
    target = check_target(pid)
    if args.detach:
        return detach(pid, target, args)
    existing = _registered_address(pid)
    if existing is not None:
        print(f"pid {pid} already runs an agent at {existing}: inspector attach {existing}")
        return ExitStatus.OK
    start(pid, target, args.host, args.port, args.timeout, args.method)
    return ExitStatus.OK


def start(
    pid: int,
    target: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = RESULT_TIMEOUT,
    method: str = "auto",
) -> tuple[str, int]:
    """Start the agent in `pid` (checked with `check_target`), say so in one line; returns
    the agent's address (also when it was running already). `attach --pid` uses it too."""
    version = check_python_process(target)
    methods = choose_method(method, pid, version)
    check_ptrace_rights(pid)
    answer, how = inject(pid, host, port, timeout, methods)
    address = f"{answer.get('host')}:{answer.get('port')}"
    if answer.get("already"):
        print(f"pid {pid} already runs an agent at {address}: inspector attach {address}")
    else:
        print(f"agent started in pid {pid} at {address} ({how}): {_tracking(answer)}")
    return str(answer.get("host")), int(answer.get("port") or 0)


def detach(pid: int, target: Any, args: argparse.Namespace) -> int:
    """`inspector inject --detach PID`: the same way in, closing the agent instead."""
    version = check_python_process(target)
    method = choose_method(args.method, pid, version)
    check_ptrace_rights(pid)
    answer, _ = inject(pid, args.host, args.port, args.timeout, method, action="detach")
    if not answer.get("detached"):
        print(f"no agent in pid {pid}: nothing to detach")
        return ExitStatus.OK
    address = f"{answer.get('host')}:{answer.get('port')}"
    later = (
        "; its loop is blocked: the server gets its own app back when the loop runs again "
        "(requests pass through untracked until then)"
        if answer.get("loop_busy")
        else ""
    )
    print(f"agent detached from pid {pid}: probes removed, {address} closed{later}")
    return ExitStatus.OK


def _tracking(answer: dict[str, Any]) -> str:
    if answer.get("loop_busy"):
        return (
            "its loop is blocked right now (inspector doctor --pid shows where); requests are "
            "tracked once it runs again"
        )
    listed = answer.get("in_flight") or 0
    if not answer.get("apps"):
        return "no uvicorn app found to track requests in; tasks and stalls are reported"
    before = (
        f"; the {listed} already in flight are listed, timed from now"
        if listed
        else "; none was in flight"
    )
    return f"requests are tracked from now on{before}"


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


def check_python_process(process: Any) -> tuple[int, int] | None:
    """The target's Python version (None when it cannot be told); refuses a process that runs
    no Python, or one older than the agent supports."""
    pid = process.pid
    try:
        executable = process.exe()
    except Exception:
        executable = ""
    try:
        mapped = Path(f"/proc/{pid}/maps").read_text(errors="replace")
    except OSError:
        mapped = None  # not ours to read: the attach will say why
    version = _version_in(mapped or "", r"libpython(\d+)\.(\d+)") or _version_in(
        os.path.basename(executable), r"python(\d+)\.(\d+)"
    )
    if mapped is not None and "python" not in mapped.lower() and "python" not in executable:
        name = os.path.basename(executable) or _name(process)
        raise InspectorError(
            f"pid {pid} ({name}) is not a Python process: inspector inject starts the agent in "
            "a uvicorn server's worker (see `inspector ps`)"
        )
    if version is None and executable and os.path.exists(executable):
        version = _ask_version(executable)
    if version is not None and version < MIN_TARGET_PYTHON:
        raise InspectorError(
            f"pid {pid} runs Python {version[0]}.{version[1]}: the agent needs Python 3.10 or newer"
        )
    return version


def _name(process: Any) -> str:
    try:
        return str(process.name())
    except Exception:
        return "?"


def _version_in(text: str, pattern: str) -> tuple[int, int] | None:
    match = re.search(pattern, text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _ask_version(executable: str) -> tuple[int, int] | None:
    try:
        done = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return _version_in(done.stdout, r"^(\d+)\.(\d+)$") if done.returncode == 0 else None


def choose_method(method: str, pid: int, version: tuple[int, int] | None) -> list[str]:
    """The ways to try, in order: ["remote-exec"] or debugger names."""
    from inspector.commands.inject_debugger import installed, missing_debugger_message

    mine = sys.version_info[:2]
    if method == "remote-exec":
        if mine < REMOTE_EXEC_PYTHON:
            raise InspectorError(
                "--method remote-exec needs Python 3.14 (sys.remote_exec); this inspector runs "
                f"Python {mine[0]}.{mine[1]}"
            )
        _check_same_python(pid, version)
        return ["remote-exec"]
    if method in ("lldb", "gdb"):
        if shutil.which(method) is None:
            raise InspectorError(
                f"{method} is not installed: apt-get install {method} (Debian, Ubuntu), or "
                "use --method auto"
            )
        return [method]
    if version is not None and version >= REMOTE_EXEC_PYTHON and mine >= REMOTE_EXEC_PYTHON:
        if version == mine:
            return ["remote-exec"]
    debuggers = installed()
    if debuggers:
        return debuggers
    if version is not None and version >= REMOTE_EXEC_PYTHON:
        _check_same_python(pid, version)  # says which interpreter to run us with
    raise InspectorError(missing_debugger_message(pid))


def _check_same_python(pid: int, version: tuple[int, int] | None) -> None:
    """sys.remote_exec needs the target to run the same Python minor version as we do."""
    mine = sys.version_info[:2]
    if version is not None and version != mine:
        raise InspectorError(
            f"pid {pid} runs Python {version[0]}.{version[1]} and this inspector runs Python "
            f"{mine[0]}.{mine[1]}: run `inspector inject` with the server's interpreter "
            f"(python{version[0]}.{version[1]} -m inspector inject {pid}), or install lldb"
        )


def check_ptrace_rights(pid: int) -> None:
    """Refuse early, with the fix, when the kernel will not let us trace `pid` (opening its
    memory needs the same right as attaching to it)."""
    try:
        with open(f"/proc/{pid}/mem", "rb"):
            pass
    except PermissionError as error:
        raise InspectorError(permission_message(pid, error)) from None
    except OSError:
        pass  # not Linux, or gone: the attach will say


def bootstrap_source(result_path: Path, host: str, port: int, action: str = "start") -> str:
    """The bootstrap the launcher's thread runs: start the agent (or detach it, `action`
    "detach"), report to `result_path`."""
    package_parent = str(Path(__file__).resolve().parents[2])
    values = (str(result_path), package_parent, host, port, action)
    arguments = ", ".join(repr(value) for value in values)
    return BOOTSTRAP.replace("RESULT_PATH, PACKAGE_PARENT, HOST, PORT, ACTION", arguments)


def launcher_source(bootstrap_path: Path) -> str:
    """The launcher for a bootstrap written at `bootstrap_path`."""
    return LAUNCHER.replace("BOOTSTRAP_PATH", repr(str(bootstrap_path)))


def bootstrap_script(result_path: Path, host: str, port: int, action: str = "start") -> str:
    """Write the bootstrap beside `result_path`; return the launcher that runs it (what the
    target runs between two bytecodes)."""
    bootstrap = result_path.with_name(result_path.stem + "-bootstrap.py")
    bootstrap.write_text(bootstrap_source(result_path, host, port, action), encoding="utf-8")
    return launcher_source(bootstrap)


def inject(
    pid: int,
    host: str,
    port: int,
    timeout: float,
    methods: list[str],
    action: str = "start",
) -> tuple[dict[str, Any], str]:
    """Run the launcher in `pid` and wait for the bootstrap's answer; returns the answer (ok)
    and how the launcher got in."""
    directory = Path(tempfile.mkdtemp(prefix="inspector-inject-"))
    keep = False
    try:
        result = directory / "result.json"
        launcher = bootstrap_script(result, host, port, action)
        script = directory / "launcher.py"
        script.write_text(launcher, encoding="utf-8")
        _share_with_target(directory, [script, result.with_name("result-bootstrap.py")], pid)
        queued = False
        if methods == ["remote-exec"]:
            _remote_exec(pid, script)
            how = "through sys.remote_exec"
            queued = True
        else:
            planted = _plant(pid, launcher, methods, timeout)
            how = planted.describe()
            queued = not planted.now
        answer = _wait_for_result(result, timeout)
        if answer is None:
            keep = queued  # a queued launcher may still run: its bootstrap must be there
            raise InspectorError(_no_answer(pid, timeout, how, queued, action))
        if not answer.get("ok"):
            raise InspectorError(_refusal(pid, answer, action))
        return answer, how
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def _remote_exec(pid: int, script: Path) -> None:
    try:
        sys.remote_exec(pid, str(script))  # type: ignore[attr-defined]
    except PermissionError as error:
        raise InspectorError(permission_message(pid, error)) from None
    except (OSError, RuntimeError) as error:
        raise InspectorError(f"could not run code in pid {pid}: {error}") from None


def _plant(pid: int, launcher: str, debuggers: list[str], timeout: float) -> Any:
    from inspector.commands.inject_debugger import AttachFailed, plant

    try:
        return plant(pid, launcher.encode(), debuggers, timeout)
    except PermissionError as error:
        raise InspectorError(permission_message(pid, error)) from None
    except AttachFailed as error:
        if not _has_cap_sys_ptrace() or (_ptrace_scope() or 0) > 0:
            raise InspectorError(permission_message(pid, error)) from None
        raise InspectorError(f"could not attach to pid {pid}: {error}") from None
    except InspectorError as error:
        raise InspectorError(f"could not inject into pid {pid}: {error}") from None


def _no_answer(pid: int, timeout: float, how: str, queued: bool, action: str) -> str:
    if not queued:
        return (
            f"pid {pid} ran the launcher ({how}) but no agent answered within {timeout:g} s "
            "(see the server's output)"
        )
    later = (
        "the agent is detached when it does"
        if action == "detach"
        else "the agent starts when it does (`inspector ps` shows it then)"
    )
    return (
        f"pid {pid} has not run the launcher within {timeout:g} s ({how}): its main thread is "
        f"not running Python code (busy in native code, or remote debugging is disabled in it); "
        f"{later}"
    )


def _refusal(pid: int, answer: dict[str, Any], action: str = "start") -> str:
    refused = answer.get("refused")
    error = str(answer.get("error") or "unknown error")
    if refused == "no-uvicorn":
        return (
            f"pid {pid} is a Python process without uvicorn: nothing for the agent to inspect "
            "(inject into a uvicorn worker; see `inspector ps`)"
        )
    if refused == "python":
        return f"pid {pid} cannot run the agent: {error} (it needs Python 3.10 or newer)"
    if refused == "not-injected":
        address = f"{answer.get('host')}:{answer.get('port')}"
        return (
            f"pid {pid}'s agent at {address} was not injected: {error}; it stays until the "
            "server stops (restart it without the agent to remove it)"
        )
    if refused == "import":
        return (
            f"pid {pid}'s Python ({answer.get('executable')}, {answer.get('python')}) cannot "
            f"import the agent ({error}): install uvicorn-inspector in the server's environment"
        )
    if action == "detach":
        return f"could not detach the agent in pid {pid}: {error}"
    return f"the agent did not start in pid {pid}: {error}"


def _share_with_target(directory: Path, files: list[Path], pid: int) -> None:
    """Let the target's user read the scripts and write the result (root injecting into
    another user's server)."""
    try:
        import psutil

        uid = psutil.Process(pid).uids().real
    except Exception:
        return
    if uid != os.getuid() and os.geteuid() == 0:
        for path in (directory, *files):
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
        time.sleep(0.02)
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
        "run `inspector inject` with sudo, grant CAP_SYS_PTRACE (docker run --cap-add "
        'SYS_PTRACE; Kubernetes: securityContext.capabilities.add: ["SYS_PTRACE"]), or '
        "relax Yama with `echo 0 | sudo tee /proc/sys/kernel/yama/ptrace_scope`"
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
