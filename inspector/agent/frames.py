"""Turn live frames and code objects into `model.Frame`, cheaply and from any thread.

The agent reads stacks of other threads (the app loop, worker threads) and of suspended
coroutines many times per second, so the conversion is cached per (code object, line): a frozen
`Frame` is built once and reused. Source lines come from `linecache`, read lazily once per
(file, line); nothing here calls `traceback` or `inspect`.

Whose code a frame is comes from `inspector.frame_kinds`, the classifier every client uses too,
so the agent's "line to fix" is the one `doctor`, `dump` and the UI name. The inspector's own
frames (its middleware, probes and wrappers, its CLI under `inspector run APP`) are left out of
every stack the agent reports (`is_own_code`): they are in every request's chain and are never
the line to fix.
"""

from __future__ import annotations

import linecache
import sys
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Final, TypeVar

from inspector.frame_kinds import classify, is_application
from inspector.model import Frame, StackCut

__all__ = [
    "MAX_DEPTH",
    "OUTER_DEPTH",
    "cut_frames",
    "frame_at",
    "frame_of",
    "frames_of",
    "innermost_application_frame",
    "is_own_code",
    "stack_of",
    "thread_stack",
]

MAX_DEPTH: Final = 64
"""Default cap on the frames reported for one stack (the innermost ones are kept)."""
OUTER_DEPTH: Final = 8
"""Of a stack cut to `MAX_DEPTH` by `cut_frames`, how many outermost frames are kept."""

_T = TypeVar("_T")


def cut_frames(
    frames: Sequence[_T], limit: int = MAX_DEPTH, outer: int = OUTER_DEPTH
) -> tuple[Sequence[_T], StackCut | None]:
    """At most `limit` of `frames` (outermost first): the `outer` outermost and the innermost
    rest, with where and how many were left out; `frames` itself and None when they all fit.

    The innermost frames say what a task waits on and the line to fix; the outermost say what
    the task is (uvicorn's request cycle or lifespan, a worker's entry point, the endpoint's
    middleware), which a recursion hundreds of frames deep would otherwise push out of sight.
    """
    count = len(frames)
    if count <= limit:
        return frames, None
    if limit <= 0:
        return [], StackCut(outer=0, left_out=count)
    head = min(outer, limit // 2)
    tail = limit - head
    kept = [*frames[:head], *frames[count - tail :]]
    return kept, StackCut(outer=head, left_out=count - limit)


_CACHE_LIMIT: Final = 16_384
# (id(code), line) -> Frame. `_pinned_codes` keeps every cached code object alive so that its id
# cannot be reused while its entries live; both are dropped whole past the limit.
_frame_cache: dict[tuple[int, int], Frame] = {}
_pinned_codes: dict[int, types.CodeType] = {}
# (id(Frame), ...) -> that stack: tasks parked at the same place share one tuple, which the wire
# encoder then writes once. Each entry keeps its Frames alive, so the ids in its key stay theirs.
_stack_cache: dict[tuple[int, ...], tuple[Frame, ...]] = {}


_own_codes: dict[int, tuple[types.CodeType, bool]] = {}
"""id(code) -> (code, whether it is the inspector's): the code is kept so its id stays its own."""


def is_own_code(code: types.CodeType) -> bool:
    """True for the inspector's own code, which reported stacks leave out. Cached per code."""
    known = _own_codes.get(id(code))
    if known is not None and known[0] is code:
        return known[1]
    own = classify(code.co_filename) == "inspector"
    if len(_own_codes) >= _CACHE_LIMIT:
        _own_codes.clear()
    _own_codes[id(code)] = (code, own)
    return own


def _function_name(code: types.CodeType) -> str:
    # co_qualname ("Lock.acquire") exists from Python 3.11; 3.10 has only co_name ("acquire").
    return getattr(code, "co_qualname", None) or code.co_name


def frame_at(code: types.CodeType, line: int | None) -> Frame:
    """The `Frame` for `code` at `line`, with its source line; cached."""
    lineno = line if line is not None else code.co_firstlineno
    key = (id(code), lineno)
    cached = _frame_cache.get(key)
    if cached is not None:
        return cached
    filename = code.co_filename
    source: str | None = None
    if filename and not filename.startswith("<"):
        try:
            source = linecache.getline(filename, lineno).strip() or None
        except Exception:  # an unreadable or odd file must not break a stack
            source = None
    frame = Frame(file=filename, line=lineno, function=_function_name(code), code=source)
    if len(_frame_cache) >= _CACHE_LIMIT:
        _frame_cache.clear()
        _pinned_codes.clear()
    _pinned_codes[id(code)] = code
    _frame_cache[key] = frame
    return frame


def frame_of(frame: types.FrameType) -> Frame:
    """The `Frame` for a live or suspended frame at the line it is on now."""
    return frame_at(frame.f_code, frame.f_lineno)


def frames_of(
    frames: Iterable[types.FrameType], hide: frozenset[int] = frozenset()
) -> tuple[Frame, ...]:
    """`frame_of` for many frames at once (the hot path of a snapshot of many tasks).

    Frames whose code object's `id()` is in `hide` are left out, and so are the inspector's own.
    Equal stacks come back as the same tuple.
    """
    cached = _frame_cache.get
    out: list[Frame] = []
    for frame in frames:
        code = frame.f_code
        if (hide and id(code) in hide) or is_own_code(code):
            continue
        line = frame.f_lineno
        found = cached((id(code), line))
        out.append(found if found is not None else frame_at(code, line))
    stack = tuple(out)
    key = tuple(map(id, stack))
    shared = _stack_cache.get(key)
    if shared is not None:
        return shared
    if len(_stack_cache) >= _CACHE_LIMIT:
        _stack_cache.clear()
    _stack_cache[key] = stack
    return stack


def stack_of(
    frame: types.FrameType | None,
    limit: int = MAX_DEPTH,
    stop_at: types.FrameType | None = None,
) -> tuple[Frame, ...]:
    """The stack ending at `frame` (the innermost), outermost first.

    Walks `f_back` from `frame`; stops after `stop_at` (included) when given, so a caller can cut
    the plumbing above a known frame. Keeps the innermost `limit` frames; the inspector's own
    are left out.
    """
    collected: list[Frame] = []
    current = frame
    while current is not None and len(collected) < limit:
        if not is_own_code(current.f_code):
            collected.append(frame_of(current))
        if current is stop_at:
            break
        current = current.f_back
    collected.reverse()
    return tuple(collected)


def thread_stack(thread_id: int, limit: int = MAX_DEPTH) -> tuple[Frame, ...]:
    """The current stack of a Python thread, outermost first; empty if the thread is gone."""
    return stack_of(sys._current_frames().get(thread_id), limit)


def innermost_application_frame(frames: Iterable[Frame]) -> Frame | None:
    """The last application frame of a stack given outermost first, or None."""
    found: Frame | None = None
    for frame in frames:
        if is_application(frame.file):
            found = frame
    return found


def found_in_application_frames(
    stack: Iterable[Frame], find: Callable[[Frame], tuple[Frame, ...]], limit: int
) -> tuple[Frame, ...]:
    """What `find` reads around each application frame of `stack` (its source lines, say),
    innermost frame first, each line once, at most `limit`; a frame whose source cannot be read
    adds nothing."""
    found: list[Frame] = []
    for frame in reversed(tuple(stack)):
        if len(found) >= limit:
            break
        if not is_application(frame.file):
            continue
        try:
            found.extend(find(frame))
        except Exception:  # an unreadable or odd source file: nothing found there
            continue
    return tuple(dict.fromkeys(found))[:limit]
