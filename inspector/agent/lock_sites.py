"""Where a task holding a lock took it: the `async with` lines around where it is now.

A deadlock or a queue for a lock is fixed where the lock is taken, and the holder's stack shows
only where it is now (awaiting inside the locked section, often in a helper). For the tasks that
hold a Lock or Semaphore others wait on (a handful at most), the source of each application
function on the await chain is read (`linecache`, as the stacks already do) upwards from the
current line for the `async with x:` / `await x.acquire()` lines that enclose it. Never raises.
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Iterable
from typing import Final

from inspector.agent.cancel_catchers import enclosing_definition, indent_of
from inspector.agent.frames import found_in_application_frames
from inspector.model import Frame

TAKES: Final = re.compile(r"^\s*async\s+with\s+[^:]+:|^\s*await\s+[\w.\[\]()'\"]+\.acquire\(\)")
MAX_FOUND: Final = 4
_CACHE_LIMIT: Final = 512
_cache: dict[Frame, tuple[Frame, ...]] = {}


def lock_sites(stack: Iterable[Frame]) -> tuple[Frame, ...]:
    """The `async with` / `acquire()` lines enclosing each application frame's current line,
    innermost first."""
    return found_in_application_frames(stack, _around, MAX_FOUND)


def _around(frame: Frame) -> tuple[Frame, ...]:
    cached = _cache.get(frame)
    if cached is None:
        cached = tuple(_read(frame))
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[frame] = cached
    return cached


def _read(frame: Frame) -> list[Frame]:
    lines = linecache.getlines(frame.file)
    index = frame.line - 1
    if not 0 <= index < len(lines):
        return []
    start = enclosing_definition(lines, index, frame.function.rsplit(".", 1)[-1])
    if start is None:
        return []
    found = []
    inner = indent_of(lines[index])
    for candidate in range(index - 1, start, -1):
        text = lines[candidate]
        if not text.strip():
            continue
        depth = indent_of(text)
        if depth < inner:
            inner = depth
            if TAKES.match(text):
                found.append(Frame(frame.file, candidate + 1, frame.function, text.strip()))
        elif depth == inner and TAKES.match(text) and "acquire" in text:
            found.append(Frame(frame.file, candidate + 1, frame.function, text.strip()))
    return found[:MAX_FOUND]
