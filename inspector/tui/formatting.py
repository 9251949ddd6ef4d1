"""Provides the short, fixed-width wordings the views use for times, sizes and places."""

from __future__ import annotations

import os
import re
from typing import Final

from inspector import durations
from inspector.diagnose import locate
from inspector.frame_kinds import FrameKind, classify
from inspector.model import Frame, RequestInfo, TaskInfo, WaitInfo

_CALL: Final = re.compile(r"([A-Za-z_][\w.]*)\s*\(")

_project_root: str | None = None


def set_project_root(cwd: str | None) -> None:
    """Show paths under the target's working directory relative to it ("app.py:57").

    The views format thousands of locations per update; a module-level root (set by the app
    from each snapshot's `process.cwd`) spares passing it through every call.
    """
    global _project_root
    _project_root = cwd.rstrip("/") + "/" if cwd and cwd != "/" else None


def duration(seconds: float | None) -> str:
    """Seconds as `doctor` and `dump` word them: 850 ms, 2.3 s, 2 min 5 s, 2 h 13 min."""
    return durations.duration(seconds, unknown="—")


def age(seconds: float | None) -> str:
    """A coarse age for table cells: changes at most once a second, so live rows repaint less."""
    return durations.age(seconds, unknown="—")


def size(num_bytes: float | None) -> str:
    if num_bytes is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(num_bytes) < 1024 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit in ("B", "KB") else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} TB"  # pragma: no cover - loop always returns


def count(value: int) -> str:
    """10000 → "10k": tab labels stay narrow."""
    if value < 10_000:
        return str(value)
    if value < 1_000_000:
        return f"{value / 1000:.0f}k"
    return f"{value / 1_000_000:.1f}M"


def frame_kind(frame: Frame) -> FrameKind:
    """Whose code `frame` is, as the agent, `doctor` and `dump` see it."""
    return classify(frame.file)


def is_application_frame(frame: Frame) -> bool:
    """Not the standard library, not an installed package, not the inspector itself."""
    return classify(frame.file) == "app"


def innermost_application_frame(frames: tuple[Frame, ...]) -> Frame | None:
    """The line to fix: the one `doctor` names (the deepest application frame that does more
    than hand over to its base class)."""
    return locate.innermost_application_frame(frames)


def short_path(path: str, keep: int = 2) -> str:
    """The path under the project root, else its last `keep` parts ("app/main.py")."""
    if (
        _project_root is not None
        and path.startswith(_project_root)
        and classify(path) not in ("library", "stdlib")
    ):
        return path[len(_project_root) :]
    parts = path.replace("\\", "/").split("/")
    return "/".join(part for part in parts[-keep:] if part) or path


def location(frame: Frame | None, keep: int = 2) -> str:
    if frame is None:
        return "—"
    return f"{short_path(frame.file, keep)}:{frame.line}"


def full_location(frame: Frame) -> str:
    """What `c` copies: an absolute file:line an editor opens."""
    return f"{frame.file}:{frame.line}"


def stall_place(frames: tuple[Frame, ...]) -> tuple[Frame | None, str | None]:
    """Where a stall sample held the loop, as `doctor` says it: the line to fix and what it
    called, once the frames that merely run the loop (`asyncio.run`, the launcher, a `main.py`
    calling `uvicorn.run`) are cut off."""
    work = locate.loop_work_frames(frames)
    return innermost_application_frame(work), blocking_call(work)


def blocking_call(frames: tuple[Frame, ...]) -> str | None:
    """What the application frame was calling: the library function below it, or the call
    written on its line ("time.sleep" from `time.sleep(3)`, which has no Python frame). Without
    an application frame: the library call the stack ends in and what called it
    ("StreamHandler.emit, called from RequestResponseCycle.send")."""
    app_frame = innermost_application_frame(frames)
    if app_frame is None:
        call = locate.library_call(frames)
        if call is None:
            return frames[-1].function if frames else None
        if call.caller is None:
            return call.inner.function
        return f"{call.inner.function}, called from {call.caller.function}"
    below = frames[frames.index(app_frame) + 1 :]
    if below:
        callee = below[-1]
        module = os.path.splitext(os.path.basename(callee.file))[0]
        return f"{module}.{callee.function}" if module != "__init__" else callee.function
    if app_frame.code:
        calls = _CALL.findall(app_frame.code)
        if calls:
            return str(calls[0])
    return app_frame.function


def task_where(task: TaskInfo) -> str:
    """The task's innermost application line, else its innermost frame."""
    frame = innermost_application_frame(task.stack) or (task.stack[-1] if task.stack else None)
    if frame is None:
        return "—"
    return f"{location(frame, 1)} {frame.function}"


def wait_text(wait: WaitInfo | None) -> str:
    if wait is None:
        return ""
    return wait.description or wait.kind


def request_label(request: RequestInfo | None) -> str:
    if request is None:
        return ""
    return f"{request.method} {request.route or request.path}"
