"""The `asyncio.timeout()` scopes in use, for loops whose timers cannot be read (uvloop).

On asyncio's own loop `deadlines.py` finds every timeout among the loop's timers. uvloop keeps
its timers in C, so a task waiting under `async with asyncio.timeout(30):` would look like one
waiting for ever. Installed only on such loops, this notes each `Timeout` as it is scheduled
(one weak-set insertion per `async with`), so a snapshot can read its task and deadline. Python
3.10 has no `asyncio.timeout`: nothing is installed there.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any, Final

_lock: Final = threading.Lock()
_installs = 0
_original: Any = None
_wrapper: Any = None
_entered: weakref.WeakSet[Any] = weakref.WeakSet()


def _timeout_class() -> Any:
    module = getattr(asyncio, "timeouts", None)
    return getattr(module, "Timeout", None)


def _noting(original: Any) -> Any:
    def reschedule(self: Any, when: float | None) -> None:
        original(self, when)
        try:
            _entered.add(self)
        except Exception:  # the app's timeout works the same; this one is just not seen
            pass

    reschedule.__doc__ = original.__doc__
    return reschedule


def install() -> None:
    """Start noting timeouts; counted, so every `install` needs its `uninstall`."""
    global _installs, _original, _wrapper
    with _lock:
        _installs += 1
        cls = _timeout_class()
        if _installs > 1 or cls is None or "reschedule" not in cls.__dict__:
            return
        _original = cls.__dict__["reschedule"]
        _wrapper = _noting(_original)
        cls.reschedule = _wrapper


def uninstall() -> None:
    """Stop noting timeouts once the last install is undone; someone who wrapped on top of us
    keeps theirs (our wrapper underneath stays harmless)."""
    global _installs, _original, _wrapper
    with _lock:
        if _installs == 0:
            return
        _installs -= 1
        cls = _timeout_class()
        if _installs > 0 or cls is None or _original is None:
            return
        if cls.__dict__.get("reschedule") is _wrapper:
            cls.reschedule = _original
        _original = _wrapper = None
        _entered.clear()


def deadlines(loop: asyncio.AbstractEventLoop) -> dict[int, float]:
    """id(task) -> seconds until the earliest timeout it is inside fires (negative once due)."""
    found: dict[int, float] = {}
    try:
        timeouts = list(_entered)
    except RuntimeError:  # the set changed while it was copied: try at the next snapshot
        return found
    if not timeouts:
        return found
    now = loop.time()
    for timeout in timeouts:
        task = getattr(timeout, "_task", None)
        when = getattr(timeout, "_when", None)
        state = getattr(getattr(timeout, "_state", None), "value", None)
        if task is None or not isinstance(when, float) or state not in ("active", "expiring"):
            continue
        key = id(task)
        found[key] = min(when - now, found.get(key, when - now))
    return found
