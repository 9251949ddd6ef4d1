"""Run `inspector inject`'s launcher inside a Python process through lldb or gdb (Python < 3.14).

Before Python 3.14 there is no `sys.remote_exec`, so a debugger stops the process, calls into
libpython and lets it go. The hard part is the moment: a process stopped at an arbitrary
instruction may be inside `malloc` or half-way through a bytecode, and running Python there can
deadlock or corrupt it. The main thread (uvicorn's loop) is looked at once it is stopped:

* **It holds the GIL** (running bytecode, CPU-bound or not): `Py_AddPendingCall` queues the
  launcher. The interpreter runs it at its next bytecode boundary, where signal handlers run
  (and where 3.14's `sys.remote_exec` runs its scripts): at once for a busy loop.
* **It has released the GIL and waits in the kernel** for the loop's `epoll_wait`, a
  `time.sleep`, a blocking socket read, a `select`, or a Python lock (a `futex` whose backtrace
  shows `PyThread_acquire_lock_timed` and the like): it holds no lock of libc's or the
  interpreter's, so the launcher runs right there, `PyGILState_Ensure` then
  `PyRun_SimpleString` then `PyGILState_Release` in one call: the standard way for a C thread
  that has a thread state to call into Python. The interrupted wait resumes afterwards (the
  kernel restarts it, or Python retries on EINTR: PEP 475). A pending call would wait for the
  wait to end, which for a blocked loop is exactly what must not be waited for.
* **Anything else** (native code running without the GIL): the pending call again; it runs when
  the thread next runs bytecode.

The launcher only starts a thread and returns, so the target spends microseconds in it; the
thread imports and starts the agent (`inspector.agent.injected`). The launcher's text lives in
a page the debugger maps (`mmap`, never `malloc`, which the stopped thread may be inside) and
this process writes through `/proc/PID/mem`; a queued launcher keeps its page (4 KiB, once).
Whatever the outcome, the debugger detaches: a debugger is only ever killed before it attached.
"""

from __future__ import annotations

import os
import platform
import re
import select
import shutil
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from inspector.errors import InspectorError

DEBUGGERS: Final = ("lldb", "gdb")
PAGE: Final = 4096
ATTACH_TIMEOUT: Final = 30.0
"""Seconds a debugger gets to attach and load symbols (gdb reads big binaries slowly)."""
CALL_TIMEOUT: Final = 10.0

# Blocking system calls a thread can be stopped in while it holds no lock of libc's or the
# interpreter's (the GIL released around them). futex is decided by the backtrace.
_SAFE_SYSCALLS: Final[dict[str, dict[int, str]]] = {
    "x86_64": {
        0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 19: "readv",
        20: "writev", 23: "select", 34: "pause", 35: "nanosleep", 42: "connect", 43: "accept",
        44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 61: "wait4",
        128: "rt_sigtimedwait", 130: "rt_sigsuspend", 202: "futex", 230: "clock_nanosleep",
        232: "epoll_wait", 247: "waitid", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait",
        288: "accept4", 299: "recvmmsg", 307: "sendmmsg", 441: "epoll_pwait2",
    },
    "aarch64": {
        22: "epoll_pwait", 63: "read", 64: "write", 65: "readv", 66: "writev", 67: "pread64",
        68: "pwrite64", 72: "pselect6", 73: "ppoll", 95: "waitid", 98: "futex",
        101: "nanosleep", 115: "clock_nanosleep", 133: "rt_sigsuspend",
        137: "rt_sigtimedwait", 202: "accept", 203: "connect", 206: "sendto", 207: "recvfrom",
        211: "sendmsg", 212: "recvmsg", 242: "accept4", 243: "recvmmsg", 260: "wait4",
        269: "sendmmsg", 441: "epoll_pwait2",
    },
}  # fmt: skip
_LOCK_WAITS: Final = (
    "PyThread_acquire_lock",  # also matches PyThread_acquire_lock_timed(_with_retries)
    "_PySemaphore_Wait",
    "_PyParkingLot_Park",
    "_PyMutex_LockTimed",
)
"""Where a Python-level lock wait (lock.acquire, queue.get, future.result) blocks, GIL released."""
_GIL_TAKERS: Final = (
    "take_gil",
    "PyEval_RestoreThread",
    "PyEval_AcquireThread",
    "_PyThreadState_Attach",
    "PyGILState_Ensure",
)
"""Waiting here is waiting for the GIL itself: not a moment to take it again."""

# The calls, typed explicitly: libpython may have no debug information.
_GIL_CHECK: Final = "(long)((int(*)(void))PyGILState_Check)()"
_MMAP: Final = (
    "(long)((void*(*)(void*, unsigned long, int, int, int, long))mmap)"
    f"((void*)0, {PAGE}, 3, 0x22, -1, 0)"  # read+write, private+anonymous
)
_MUNMAP: Final = "(long)((int(*)(void*, unsigned long))munmap)((void*){address}, {size})"
_ADDRESS_OF_RUN: Final = "(long)(void*)&PyRun_SimpleString"
_PENDING: Final = (
    # lldb cannot pass a function symbol as an argument: its address is passed as a number.
    "(long)((int(*)(int(*)(void*), void*))Py_AddPendingCall)"
    "((int(*)(void*)){function}, (void*){address})"
)
_ENSURE: Final = "((int(*)(void))PyGILState_Ensure)()"
_RUN: Final = "((int(*)(const char*))PyRun_SimpleString)((const char*){address})"
_RELEASE: Final = "((void(*)(int))PyGILState_Release)"


class NotPython(InspectorError):
    """The process has no CPython symbols."""


class DebuggerFailed(InspectorError):
    """The debugger could not do what was asked; nothing was left in the target."""


class AttachFailed(DebuggerFailed):
    """The debugger could not attach (often: no right to ptrace the process)."""


@dataclass(frozen=True)
class Planted:
    """How the launcher got into the target."""

    debugger: str
    now: bool
    """Run at once on the main thread (it waited in the kernel); else queued as a pending call."""
    waiting_in: str | None
    """The system call the main thread was waiting in, when known ("epoll_wait")."""

    def describe(self) -> str:
        if self.now:
            return f"run through {self.debugger} while the main thread waited in {self.waiting_in}"
        where = f" (it was in {self.waiting_in})" if self.waiting_in else ""
        return f"queued through {self.debugger} for the main thread's next bytecode{where}"


def installed() -> list[str]:
    """The debuggers on PATH, in the order to try them (lldb first where gdb is known bad)."""
    found = [name for name in DEBUGGERS if shutil.which(name)]
    if "gdb" in found and "lldb" in found:
        return ["lldb"] if gdb_known_bad() else ["gdb", "lldb"]
    return found


def gdb_known_bad() -> bool:
    """gdb fails every call into a process on CPUs with AMX on some kernels ("Couldn't write
    extended state status: Bad address"): there lldb goes first."""
    try:
        return "amx_tile" in Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False


def missing_debugger_message(pid: int) -> str:
    return (
        f"cannot inject into pid {pid}: its Python is older than 3.14, so a debugger must run "
        "the code and neither lldb nor gdb is installed: apt-get install lldb (Debian, Ubuntu), "
        "dnf install lldb (Fedora), apk add lldb (Alpine)"
    )


def plant(pid: int, launcher: bytes, debuggers: list[str], timeout: float) -> Planted:
    """Run `launcher` (Python source) in `pid` at a safe moment through the first debugger
    that can; raise InspectorError with a one-line reason otherwise."""
    if len(launcher) >= PAGE:
        raise DebuggerFailed(f"the launcher is too long ({len(launcher)} bytes)")
    failures: list[DebuggerFailed] = []
    for name in debuggers:
        session = _SESSIONS[name](pid)
        try:
            return _plant_with(session, pid, launcher, timeout)
        except DebuggerFailed as error:
            failures.append(type(error)(f"{name}: {error}"))
        finally:
            session.close()
    if len(failures) == 1:
        raise failures[0]
    raise DebuggerFailed("; ".join(str(f) for f in failures) or "no debugger to run")


def _plant_with(session: Session, pid: int, launcher: bytes, timeout: float) -> Planted:
    session.attach()
    session.select_thread(pid)
    holds_gil = session.call(_GIL_CHECK, what="PyGILState_Check")
    syscall = _waiting_in(pid, pid)
    now = not holds_gil and syscall is not None
    if now and syscall == "futex":
        now = is_lock_wait(session.backtrace(16))
    address = session.call(_MMAP, what="mmap")
    if address in (0, -1):
        raise DebuggerFailed("could not map a page in the target")
    write_memory(pid, address, launcher + b"\0")
    if now:
        result = session.run_now(address, timeout)
        session.call(_MUNMAP.format(address=address, size=PAGE), what="munmap")
        if result != 0:
            raise DebuggerFailed("the launcher failed in the target (see the server's stderr)")
    else:
        function = session.call(_ADDRESS_OF_RUN, what="PyRun_SimpleString")
        pending = _PENDING.format(function=function, address=address)
        queued = session.call(pending, what="Py_AddPendingCall")
        if queued != 0:
            raise DebuggerFailed("the interpreter's queue of pending calls is full; try again")
    session.detach()
    return Planted(session.name, now, syscall or _syscall_name(pid, pid))


def is_lock_wait(frames: list[str]) -> bool:
    """The thread waits for a Python-level lock, not for the GIL (frame names, innermost
    first)."""
    for frame in frames:
        if any(name in frame for name in _GIL_TAKERS):
            return False
        if any(name in frame for name in _LOCK_WAITS):
            return True
    return False


def _syscall_number(pid: int, tid: int) -> int | None:
    """The system call thread `tid` is stopped in, or None (running user code)."""
    try:
        text = Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()
        number = int(text[0])
    except (OSError, ValueError, IndexError):
        return None
    return number if number >= 0 else None


def _syscall_name(pid: int, tid: int) -> str | None:
    number = _syscall_number(pid, tid)
    if number is None:
        return None
    return _SAFE_SYSCALLS.get(platform.machine(), {}).get(number, f"system call {number}")


def _waiting_in(pid: int, tid: int) -> str | None:
    """The safe blocking system call the thread is stopped in, or None."""
    number = _syscall_number(pid, tid)
    if number is None:
        return None
    return _SAFE_SYSCALLS.get(platform.machine(), {}).get(number)


def write_memory(pid: int, address: int, data: bytes) -> None:
    """Write `data` into the stopped target (needs the same right as attaching)."""
    try:
        with open(f"/proc/{pid}/mem", "r+b", buffering=0) as memory:
            memory.seek(address)
            memory.write(data)
    except OSError as error:
        raise DebuggerFailed(f"could not write the launcher into the target: {error}") from None


# --- the debugger sessions ------------------------------------------------------------------


class _Timeout(Exception):
    pass


class Session(ABC):
    """One debugger process driven command by command over its standard input.

    Each command is followed by a line the debugger does not know; its complaint marks the end
    of the command's output, so every read is bounded and nothing depends on prompts.
    """

    name: str
    _unknown: str
    """What the debugger says about an unknown command."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._count = 0
        self._attached = False
        self._process: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def _argv(self) -> list[str]: ...

    @abstractmethod
    def _attach_command(self) -> str: ...

    @abstractmethod
    def _result(self, output: str) -> int | None: ...

    def start(self) -> None:
        try:
            self._process = subprocess.Popen(
                self._argv(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in our terminal does not reach it
            )
        except OSError as error:
            raise DebuggerFailed(f"cannot run {self.name}: {error}") from None

    def command(self, text: str, timeout: float = CALL_TIMEOUT) -> str:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        self._count += 1
        marker = f"inspector-mark-{self._count}"
        try:
            process.stdin.write(f"{text}\n{marker}\n".encode())
            process.stdin.flush()
        except OSError:
            raise DebuggerFailed(f"{self.name} exited: {self._tail()}") from None
        output = self._read_until(marker, timeout)
        return output

    def _read_until(self, marker: str, timeout: float) -> str:
        process = self._process
        assert process is not None and process.stdout is not None
        deadline = time.monotonic() + timeout
        pattern = re.compile(rf"{re.escape(marker)}\W.*{self._unknown}|{self._unknown}.*{marker}")
        while True:
            match = pattern.search(self._buffer)
            if match is not None:
                output, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
                return output
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout
            ready, _, _ = select.select([process.stdout], [], [], min(remaining, 0.5))
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    raise DebuggerFailed(f"{self.name} exited: {self._tail()}")
                self._buffer += chunk.decode(errors="replace")

    _buffer = ""

    def _tail(self) -> str:
        lines = [line.strip() for line in self._buffer.splitlines() if line.strip()]
        return lines[-1] if lines else "no output"

    def attach(self) -> None:
        self.start()
        try:
            output = self.command(self._attach_command(), ATTACH_TIMEOUT)
        except _Timeout:
            self._kill()
            raise AttachFailed(f"{self.name} did not attach within {ATTACH_TIMEOUT:g} s") from None
        self._check_attached(output)
        self._attached = True

    def _check_attached(self, output: str) -> None:
        lowered = output.lower()
        if "no such process" in lowered:
            raise InspectorError(f"no process with pid {self.pid}")
        if "error" in lowered or "ptrace:" in lowered or "unable to attach" in lowered:
            raise AttachFailed(_first_error(output) or "attach failed")

    @abstractmethod
    def select_thread(self, tid: int) -> None: ...

    @abstractmethod
    def backtrace(self, depth: int) -> list[str]: ...

    def call(self, expression: str, *, what: str, timeout: float = CALL_TIMEOUT) -> int:
        """Evaluate an integer expression in the target (a call into it)."""
        output = self._evaluate(expression, timeout)
        value = self._result(output)
        if value is None:
            error = _first_error(output) or output.strip()[-300:]
            if what == "PyGILState_Check" and _undefined_symbol(output):
                raise NotPython(f"pid {self.pid} is not a Python process (no CPython in it)")
            if "extended state" in output:
                error = (
                    f"{self.name} cannot call functions in processes on this machine (a gdb "
                    "bug seen on CPUs with AMX): install lldb (apt-get install lldb)"
                )
            raise DebuggerFailed(f"could not call {what} in the target: {error}")
        return value

    def _evaluate(self, expression: str, timeout: float) -> str:
        try:
            return self.command(self._print(expression), timeout)
        except _Timeout:
            raise DebuggerFailed(
                f"{self.name} is still running a call in pid {self.pid} after {timeout:g} s; it "
                "is left to finish and detach on its own"
            ) from None

    @abstractmethod
    def _print(self, expression: str) -> str: ...

    def run_now(self, address: int, timeout: float) -> int:
        """Take the GIL on the stopped thread, run the launcher at `address`, release it."""
        output = self._evaluate(self._run_now_expression(address), timeout)
        value = self._result(output)
        if value is None:
            raise DebuggerFailed(f"could not run the launcher: {_first_error(output)}")
        return value

    @abstractmethod
    def _run_now_expression(self, address: int) -> str:
        """`run_now` as one expression of this debugger: the GIL is never left taken between
        two commands."""

    def detach(self) -> None:
        try:
            self.command("detach")
        except (_Timeout, DebuggerFailed):
            pass
        self._attached = False

    def close(self) -> None:
        """Let the debugger quit. Only a debugger that never attached (or has detached) is
        killed: one stopped in the middle of a call would take the target down with it."""
        process = self._process
        if process is None:
            return
        if self._attached:  # a failure half-way: never leave the target stopped
            self.detach()
        try:
            assert process.stdin is not None
            process.stdin.write(b"quit\n")
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            if not self._attached:
                self._kill()
        if process.stdout is not None and process.returncode is not None:
            process.stdout.close()
        _continue(self.pid)

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        _continue(self.pid)


class LldbSession(Session):
    name = "lldb"
    _unknown = "is not a valid command"

    def _argv(self) -> list[str]:
        return ["lldb", "--no-lldbinit", "--no-use-colors"]

    def _attach_command(self) -> str:
        return f"process attach --pid {self.pid}"

    def _check_attached(self, output: str) -> None:
        if "error: attach failed" in output or "error:" in output and "attach" in output:
            super()._check_attached(output)
        elif f"Process {self.pid} stopped" not in output:
            raise AttachFailed(_first_error(output) or "attach failed")

    def select_thread(self, tid: int) -> None:
        listing = self.command("thread list")
        match = re.search(rf"thread #(\d+): tid = {tid}\b", listing)
        if match is None:
            raise DebuggerFailed(f"the main thread ({tid}) is not among the stopped threads")
        self.command(f"thread select {match.group(1)}")

    def backtrace(self, depth: int) -> list[str]:
        output = self.command(f"thread backtrace -c {depth}")
        return re.findall(r"frame #\d+: \S+ (\S+)", output)

    def _print(self, expression: str) -> str:
        return f"expression -- {expression}"

    def _result(self, output: str) -> int | None:
        found = re.findall(r"\(long\) \$\d+ = (-?\d+)", output)
        return int(found[-1]) if found else None

    def _run_now_expression(self, address: int) -> str:
        return (
            f"long inspector_state = {_ENSURE}; "
            f"long inspector_result = {_RUN.format(address=address)}; "
            f"{_RELEASE}((int)inspector_state); (long)inspector_result"
        )


class GdbSession(Session):
    name = "gdb"
    _unknown = "Undefined command"

    def _argv(self) -> list[str]:
        return [
            "gdb",
            "-q",
            "-nx",
            "-nw",
            "-iex=set pagination off",
            "-iex=set confirm off",
            "-iex=set width 0",
            "-iex=set auto-solib-add off",
        ]

    def _attach_command(self) -> str:
        return (
            f"attach {self.pid}\nset unwindonsignal on\nsharedlibrary libc\nsharedlibrary libpython"
        )

    def _check_attached(self, output: str) -> None:
        if "ptrace:" in output or "Could not attach" in output:
            super()._check_attached(output)

    def select_thread(self, tid: int) -> None:
        listing = self.command("info threads")
        match = re.search(rf"^\*?\s*(\d+)\s+Thread \S+ \(LWP {tid}\)", listing, re.MULTILINE)
        if match is None:
            raise DebuggerFailed(f"the main thread ({tid}) is not among the stopped threads")
        self.command(f"thread {match.group(1)}")

    def backtrace(self, depth: int) -> list[str]:
        output = self.command(f"backtrace {depth}")
        return re.findall(r"#\d+\s+(?:0x[0-9a-f]+ in )?(\S+)", output)

    def _print(self, expression: str) -> str:
        return f"print {expression}"

    def _result(self, output: str) -> int | None:
        found = re.findall(r"^\$\d+ = (-?\d+)", output, re.MULTILINE)
        return int(found[-1]) if found else None

    def _run_now_expression(self, address: int) -> str:
        return (  # the comma operator: one expression
            f"($inspector_state = {_ENSURE}, "
            f"$inspector_result = {_RUN.format(address=address)}, "
            f"{_RELEASE}($inspector_state), (long)$inspector_result)"
        )


_SESSIONS: Final[dict[str, type[Session]]] = {"lldb": LldbSession, "gdb": GdbSession}


def _first_error(output: str) -> str | None:
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("error:") or "Couldn't" in stripped or "ptrace:" in stripped:
            return stripped.removeprefix("error:").strip()
    return None


def _undefined_symbol(output: str) -> bool:
    return (
        "undeclared identifier" in output
        or "No symbol" in output
        or "has unknown type" in output
        or "Couldn't look up symbols" in output
    )


def _continue(pid: int) -> None:
    """A debugger that dies or is killed can leave the target stopped: wake it (a running
    process ignores SIGCONT)."""
    try:
        os.kill(pid, signal.SIGCONT)
    except OSError:
        pass
