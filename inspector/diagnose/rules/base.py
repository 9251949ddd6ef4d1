"""What every rule shares: its settings, its signature, and the words findings are made of."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from inspector import plurals
from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import describe
from inspector.durations import duration
from inspector.model import Frame, RequestInfo, Snapshot, StackSample, Stall, TaskInfo


@dataclass(frozen=True)
class Settings:
    """Thresholds a person may tune from the command line."""

    stuck_after: float = 5.0
    """Seconds after which a request in flight or a waiting task counts as stuck."""
    critical_stall: float = 1.0
    """A stall at least this long (or still going) is critical, shorter ones a warning."""


Rule = Callable[[Snapshot, Settings], Iterable[Finding]]
"""A pure function: the same snapshot and settings give the same findings."""


def seconds(value: float) -> str:
    """A duration for people, worded as `dump` and the UI word it: "4 ms", "2.3 s", "2 min 5 s"."""
    return duration(value)


plural = plurals.plural


def request_label(request: RequestInfo, *, by_route: bool = True) -> str:
    """ "GET /users/{id}" (the route template groups requests that differ only by ids)."""
    target = request.route if by_route and request.route else request.path
    return f"{request.method} {target}"


def request_label_for(snapshot: Snapshot, request_id: int | None) -> str | None:
    if request_id is None:
        return None
    request = snapshot.request(request_id)
    return request_label(request) if request is not None else None


def task_label(task: TaskInfo) -> str:
    """ "task refresh_cache"; a task left with asyncio's default name shows its coroutine too:
    "task Task-12 (consume())"."""
    if task.name.startswith("Task-") and task.coro:
        return f"task {task.name} ({task.coro.rsplit('.', 1)[-1]}())"
    return f"task {task.name}"


def where(frame: Frame | None, snapshot: Snapshot) -> str:
    """ "app.py:14 in block" or a phrase saying no application line was seen."""
    if frame is None:
        return "no line of application code on its stack"
    return describe(frame, snapshot.process.cwd)


def quoted_code(frame: Frame | None) -> str:
    return f" (`{frame.code}`)" if frame is not None and frame.code else ""


def examples(labels: Iterable[str], limit: int = 3) -> str:
    """ "GET /a (x40), GET /b" — the most frequent first."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{label} (x{count})" if count > 1 else label for label, count in ordered[:limit]]
    if len(ordered) > limit:
        parts.append(f"and {len(ordered) - limit} more")
    return ", ".join(parts)


def distinct_frames(
    frames: Iterable[Frame | None], exclude: Frame | None = None
) -> tuple[Frame, ...]:
    """Frames in order, each line once, without `exclude` (the finding's own location)."""
    seen: set[tuple[str, int]] = set() if exclude is None else {(exclude.file, exclude.line)}
    result = []
    for frame in frames:
        if frame is None or (frame.file, frame.line) in seen:
            continue
        seen.add((frame.file, frame.line))
        result.append(frame)
    return tuple(result)


def doing(kind: str, what: str) -> str:
    """ "blocked in requests" / "running CPU-bound code in fib"."""
    return f"running {what}" if kind == "cpu" else f"blocked in {what}"


def stalls_of(snapshot: Snapshot) -> list[Stall]:
    """The recorded stalls, and the one going on now that the watchdog has not recorded yet."""
    stalls = list(snapshot.stalls)
    loop = snapshot.loop
    if loop is not None and loop.stalled_for is not None and snapshot.ongoing_stall is None:
        # Blocked right now, but the watchdog has not recorded the stall yet: use the stack
        # the snapshot took of the loop thread.
        stack = snapshot.loop_thread_stack
        samples = (StackSample(0.0, stack),) if stack else ()
        stalls.append(
            Stall(
                id=-1,
                started_at=snapshot.taken_at - loop.stalled_for,
                duration=loop.stalled_for,
                ongoing=True,
                samples=samples,
                task_id=snapshot.current_task_id,
            )
        )
    return stalls
