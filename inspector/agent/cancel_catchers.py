"""Where a task that outlived its cancellation may have taken it: the handlers in its code.

A task still running long after `cancel()` caught `CancelledError` somewhere and went on, but
its stack shows where it is now, not the `except` that took the cancellation. For such tasks
only (a handful at most), the source of each application function on the await chain is read
(`linecache`, as the stacks already do) for the handlers that catch it: a bare `except:`,
`except BaseException`, an `except` naming `CancelledError`, `suppress(...CancelledError)`.
Read once per function and cached; never raises.
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Iterable
from typing import Final

from inspector.agent.frames import found_in_application_frames
from inspector.model import Frame

CATCHES: Final = re.compile(
    r"^\s*except\s*:|^\s*except\b[^:]*\b(BaseException|CancelledError)\b|"
    r"\bsuppress\([^)]*\b(BaseException|CancelledError)\b"
)
MAX_LINES: Final = 400
"""Lines of one function read at most."""
MAX_FOUND: Final = 4
_CACHE_LIMIT: Final = 512
_cache: dict[tuple[str, int, str], tuple[Frame, ...]] = {}


def cancel_catchers(stack: Iterable[Frame]) -> tuple[Frame, ...]:
    """The lines of the application functions on `stack` that catch `CancelledError`,
    innermost function first."""
    return found_in_application_frames(stack, _in_function, MAX_FOUND)


def _in_function(frame: Frame) -> tuple[Frame, ...]:
    lines = linecache.getlines(frame.file)
    name = frame.function.rsplit(".", 1)[-1]
    start = enclosing_definition(lines, frame.line - 1, name)
    if start is None:
        return ()
    key = (frame.file, start, frame.function)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    indent = indent_of(lines[start])
    result = []
    for index in range(start + 1, min(len(lines), start + 1 + MAX_LINES)):
        text = lines[index]
        if text.strip() and indent_of(text) <= indent and not text.lstrip().startswith(("#", ")")):
            break
        if CATCHES.search(text):
            result.append(Frame(frame.file, index + 1, frame.function, text.strip()))
    found = tuple(result)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[key] = found
    return found


def enclosing_definition(lines: list[str], index: int, name: str) -> int | None:
    """The index of the `def name` line enclosing line `index` (0-based), if found nearby."""
    pattern = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(name)}\s*\(")
    for candidate in range(min(index, len(lines) - 1), max(-1, index - MAX_LINES), -1):
        if pattern.match(lines[candidate]):
            return candidate
    return None


def indent_of(text: str) -> int:
    return len(text) - len(text.lstrip())
