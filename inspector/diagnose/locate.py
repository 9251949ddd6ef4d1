"""Where a problem is, and what kind of call is blocking.

A finding is only useful if it names the line a person has to change: the innermost frame of
*their* code, not of asyncio, uvicorn or a library. Stacks come from another process (possibly
another interpreter), so library frames are recognised by their paths (`inspector.frame_kinds`,
the classifier every side shares), not by importing anything.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from inspector.frame_kinds import is_application, module_name
from inspector.model import Frame

# --- application frames ----------------------------------------------------------------------


def is_application_frame(frame: Frame) -> bool:
    """True for the user's own code: not the standard library, not an installed package, not us."""
    return is_application(frame.file)


def innermost_application_frame(frames: Sequence[Frame]) -> Frame | None:
    """The deepest application frame of a stack given outermost first.

    A method that only hands over to its base class's method of the same name (an app's
    `class CountingLock(asyncio.Lock)` whose `acquire` awaits `super().acquire()`) is not the
    line to fix: its caller is (`async with lock_b:`). Such frames are passed over unless no
    other application frame is left.
    """
    forwarding: Frame | None = None
    for frame in reversed(frames):
        if is_application_frame(frame):
            if _forwards_to_base(frame):
                forwarding = forwarding or frame
                continue
            return frame
    return forwarding


def _forwards_to_base(frame: Frame) -> bool:
    """True for a frame of method `X.name` whose line calls `super().name(`."""
    code = frame.code
    if not code or "super()" not in code:
        return False
    name = frame.function.rsplit(".", 1)[-1]
    return f"super().{name}(" in code.replace(" ", "")


def application_frames(frames: Sequence[Frame]) -> list[Frame]:
    """The application frames of a stack, innermost first."""
    return [frame for frame in reversed(frames) if is_application_frame(frame)]


def module_of(frame: Frame) -> str | None:
    """The dotted module name of a library frame ("urllib3.connectionpool"), else None."""
    return module_name(frame.file)


@dataclass(frozen=True)
class LibraryCall:
    """Where a stack without application code was held: the library it was in, the call that
    entered that library, and the frame that made the call (another library's, or None when the
    sampled frames go no further out)."""

    inner: Frame
    """The innermost frame: where the thread was (`StreamHandler.emit`)."""
    entry: Frame
    """The outermost frame of that library: the call made into it (`Logger.info`)."""
    caller: Frame | None
    """The frame that called `entry` (uvicorn's `RequestResponseCycle.send`)."""


def library_call(frames: Sequence[Frame]) -> LibraryCall | None:
    """The library call a stack ends in, and who called it; None when it ends in app code."""
    if not frames:
        return None
    package = _package(frames[-1])
    if package is None:
        return None
    start = len(frames) - 1
    while start > 0 and _package(frames[start - 1]) == package:
        start -= 1
    return LibraryCall(frames[-1], frames[start], frames[start - 1] if start > 0 else None)


def _package(frame: Frame) -> str | None:
    """The top-level package of a library or stdlib frame ("logging", "uvicorn")."""
    module = module_of(frame)
    return module.split(".")[0] if module else None


def loop_work_frames(frames: Sequence[Frame]) -> tuple[Frame, ...]:
    """Drop the frames that merely run the event loop (launcher, asyncio.run, `_run_once`).

    A stack sampled on the loop thread starts with `python main.py` → `uvicorn.run` → `asyncio.run`
    → the loop's callback dispatch. Those frames are the same for every stall; the work that
    blocked starts after the last of them. Without this cut, `uvicorn.run(app)` in the user's
    `main.py` would pass for the line to fix.
    """
    cut = -1
    for index, frame in enumerate(frames):
        module = module_of(frame) or ""
        function = frame.function.rsplit(".", 1)[-1]  # co_qualname: "Handle._run"
        if (
            (module == "asyncio.events" and function == "_run")
            or (
                module == "asyncio.base_events"
                and function in ("_run_once", "run_forever", "run_until_complete")
            )
            or (module == "asyncio.runners" and function == "run")
        ):
            cut = index
    return tuple(frames[cut + 1 :])


# --- what kind of call blocks ----------------------------------------------------------------

BlockingKind = Literal["sleep", "io", "db", "thread-wait", "cpu", "idle"]


@dataclass(frozen=True)
class Blocking:
    """What a blocked thread is doing: the kind of call, a name for it, and where it is."""

    kind: BlockingKind
    what: str
    """"time.sleep", "requests", "sqlite3", "CPU-bound code in fib"."""
    frame: Frame | None
    """The innermost frame sampled (may be inside a library)."""


_DB_MODULES: Final = (
    "sqlite3",
    "psycopg2",
    "psycopg",
    "pymysql",
    "MySQLdb",
    "mysql.connector",
    "cx_Oracle",
    "oracledb",
    "pyodbc",
    "pymssql",
    "sqlalchemy",
    "peewee",
    "pony",
    "django.db",
    "pymongo",
    "redis",
    "cassandra",
    "elasticsearch",
    "clickhouse_driver",
    "duckdb",
)
_ASYNC_DB_PARTS: Final = ("asyncio", "_async", "aio", "ext.asyncio")
"""Module-name parts of the async twins of sync drivers (psycopg.cursor_async, redis.asyncio)."""

_IO_MODULES: Final = (
    ("requests", "requests"),
    ("urllib3", "urllib3"),
    ("httpcore._sync", "httpx (sync Client)"),
    ("httpx._client", "httpx (sync Client)"),
    ("httpx._api", "httpx (sync functions)"),
    ("botocore", "botocore"),
    ("boto3", "boto3"),
    ("urllib.request", "urllib.request"),
    ("http.client", "http.client"),
    ("smtplib", "smtplib"),
    ("ftplib", "ftplib"),
    ("ssl", "ssl"),
    ("socket", "socket"),
    ("subprocess", "subprocess"),
    ("shutil", "file I/O (shutil)"),
    ("pathlib", "file I/O (pathlib)"),
    ("glob", "file I/O (glob)"),
    ("os", "file I/O (os)"),
    ("tarfile", "file I/O (tarfile)"),
    ("zipfile", "file I/O (zipfile)"),
    ("tempfile", "file I/O (tempfile)"),
    ("logging.handlers", "logging handler I/O"),
    ("logging", "logging (a handler writing a record)"),
)
_THREAD_WAIT_MODULES: Final = (
    ("concurrent.futures", "Future.result() (waits for another thread)"),
    ("threading", "a threading primitive (waits for another thread)"),
    ("queue", "queue.Queue (waits for another thread)"),
    ("multiprocessing", "multiprocessing (waits for another process)"),
)
_SERIALIZATION_MODULES: Final = ("fastapi.encoders", "pydantic", "pydantic_core", "json")
_SERIALIZATION_FUNCTIONS: Final = ("serialize_response", "jsonable_encoder", "render")
"""Framework functions that serialize a response (fastapi.routing, starlette responses)."""

_SLEEP_LINE = re.compile(r"(?<![\w.])(time\.)?sleep\s*\(")
_DB_LINE = re.compile(
    r"\bsqlite3\.|\.(execute|executemany|executescript|fetchone|fetchall|fetchmany|commit|"
    r"rollback)\s*\(|\.query\(.*\)\.(all|first|one)\s*\("
)
_IO_LINE: Final = (
    (re.compile(r"\brequests\.(get|post|put|patch|delete|head|request)\s*\("), "requests"),
    (re.compile(r"\burlopen\s*\("), "urllib.request"),
    (re.compile(r"\bsubprocess\.|\bos\.(system|popen|wait)\s*\("), "subprocess"),
    (re.compile(r"\bsocket\.|\.(recv|recv_into|sendall|accept|connect)\s*\("), "socket"),
    (
        re.compile(r"(?<![\w.])open\s*\(|\.(read|write|read_text|read_bytes|write_text)\s*\("),
        "file I/O",
    ),
    (re.compile(r"(?<![\w.])input\s*\("), "input()"),
)
_THREAD_WAIT_LINE = re.compile(r"\.(result|join|acquire|wait)\s*\(")


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _db_name(module: str) -> str | None:
    for name in _DB_MODULES:
        if _matches(module, name):
            parts = module.split(".")
            if any(part in _ASYNC_DB_PARTS or part.endswith("_async") for part in parts):
                return None
            if name == "sqlalchemy" and "asyncio" in parts:
                return None
            return name
    return None


def _library_kind(module: str) -> tuple[BlockingKind, str] | None:
    db = _db_name(module)
    if db is not None:
        return "db", db
    for prefix, what in _IO_MODULES:
        if _matches(module, prefix):
            return "io", what
    for prefix, what in _THREAD_WAIT_MODULES:
        if _matches(module, prefix):
            return "thread-wait", what
    return None


def _line_kind(code: str | None) -> tuple[BlockingKind, str] | None:
    """Classify a call into C code by the text of the calling line."""
    if not code or re.search(r"\bawait\b", code):
        return None
    if _SLEEP_LINE.search(code) and "asyncio.sleep" not in code:
        return "sleep", "time.sleep"
    if _DB_LINE.search(code):
        return "db", "sqlite3" if "sqlite3" in code else "a database call"
    for pattern, what in _IO_LINE:
        if pattern.search(code):
            return "io", what
    if _THREAD_WAIT_LINE.search(code):
        return "thread-wait", "waiting for another thread"
    return None


def classify_stack(frames: Sequence[Frame]) -> Blocking:
    """Say what a thread that holds the loop (or a worker thread) is blocked in.

    `time.sleep`, socket reads and most driver calls are C functions, so they never show as
    frames: the innermost Python frame is the line that called them. The decision therefore looks
    at that line's text first, then at the modules on the stack, innermost first (the innermost
    recognised library is what actually blocks: socket under urllib3 under requests), and names
    the library the application called into. What is none of these is running Python: CPU-bound.
    """
    frames = tuple(frames)
    if not frames:
        return Blocking("cpu", "unknown code", None)
    innermost = frames[-1]
    line_kind = _line_kind(innermost.code)
    if line_kind is not None and line_kind[0] == "sleep":
        return Blocking("sleep", _via(frames, "time.sleep"), innermost)

    app_index = _last_app_index(frames)
    library_frames = frames[app_index + 1 :]
    entry_module = module_of(library_frames[0]) if library_frames else None
    for frame in reversed(library_frames):
        module = module_of(frame)
        found = _library_kind(module) if module else None
        if found is not None:
            kind, what = found
            entry = _library_kind(entry_module) if entry_module else None
            if entry is not None and entry[0] == kind:
                what = entry[1]  # name the library the app called ("requests"), not "socket"
            return Blocking(kind, what, innermost)
    if line_kind is not None:
        return Blocking(line_kind[0], line_kind[1], innermost)
    for frame in library_frames:
        module = module_of(frame) or ""
        function = frame.function.rsplit(".", 1)[-1]
        if any(_matches(module, prefix) for prefix in _SERIALIZATION_MODULES) or (
            module.startswith(("fastapi", "starlette")) and function in _SERIALIZATION_FUNCTIONS
        ):
            return Blocking("cpu", "serialization (FastAPI encoders, pydantic or json)", innermost)
    if app_index == len(frames) - 1:
        name = innermost.function
    elif app_index >= 0:
        name = entry_module or "library code"
    else:
        name = module_of(innermost) or "library code"
    return Blocking("cpu", f"CPU-bound code in {name}", innermost)


def _last_app_index(frames: Sequence[Frame]) -> int:
    for index in range(len(frames) - 1, -1, -1):
        if is_application_frame(frames[index]):
            return index
    return -1


def _via(frames: Sequence[Frame], what: str) -> str:
    module = module_of(frames[-1])
    if module is None:
        return what
    return f"{what} (in {module.split('.')[0]})"


def classify_samples(
    samples: Iterable[Sequence[Frame]], weights: Sequence[int] | None = None
) -> Blocking | None:
    """The classification that took most of one stall's samples (each stack counted `weights`
    times, once without; the first wins ties)."""
    stacks = list(samples)
    counted = weights if weights is not None else [1] * len(stacks)
    results = [
        (classify_stack(frames), n) for frames, n in zip(stacks, counted, strict=True) if frames
    ]
    if not results:
        return None
    counts: Counter[str] = Counter()
    for result, n in results:
        counts[result.kind] += n
    best = max(counts.values())
    return next(result for result, _ in results if counts[result.kind] == best)


def most_common_frame(
    frames: Iterable[Frame | None], weights: Sequence[int] | None = None
) -> Frame | None:
    """The location seen most often (by file and line; each frame counted `weights` times, once
    without), first seen on ties."""
    listed = list(frames)
    counted = weights if weights is not None else [1] * len(listed)
    present = [(frame, n) for frame, n in zip(listed, counted, strict=True) if frame is not None]
    if not present:
        return None
    counts: Counter[tuple[str, int | None]] = Counter()
    for frame, n in present:
        counts[(frame.file, frame.line)] += n
    best = max(counts.values())
    return next(frame for frame, _ in present if counts[(frame.file, frame.line)] == best)


def short_path(path: str, *bases: str | None) -> str:
    """A path as a person reads it: relative to the first base directory that contains it."""
    for base in bases:
        if not base:
            continue
        base = os.path.join(base, "")
        if path.startswith(base):
            return path[len(base) :]
    return path


def describe(frame: Frame, cwd: str | None = None) -> str:
    """ "app/main.py:14 in block" for sentences (paths relative to the target's cwd)."""
    return f"{short_path(frame.file, cwd)}:{frame.line} in {frame.function}"
