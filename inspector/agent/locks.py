"""Who holds each asyncio Lock and Semaphore: the fact a deadlock report is built from.

asyncio does not record the owner of a Lock, so while installed, `asyncio.Lock.acquire`/`release`
and `asyncio.Semaphore.acquire`/`release` (pure-Python methods) are wrapped to note the acquiring
task in side tables keyed by `id()` of the primitive. Nothing is stored on the primitives
themselves, and every reference to a task or primitive is weak, so tracking never keeps either
alive. The wrappers return what the originals return and let every exception (cancellation
included) pass through unchanged; `close()` puts the original methods back.

The patch is global (it is on the classes), so installs are counted: the originals come back when
the last tracker closes. Wrappers already bound elsewhere (an `asyncio.Condition` binds its lock's
methods when created) keep working after close and simply stop recording.

The patched classes are asyncio's own, found through the method resolution order of whatever
`asyncio.Lock` and `asyncio.Semaphore` are when tracking starts: an app (or a debugging library)
that puts a subclass of its own in their place still has the stdlib methods patched, under its
subclass, and every subclass (BoundedSemaphore, the app's `class NamedLock(asyncio.Lock)`, one
that overrides `acquire`/`release` and calls `super()`) inherits the tracking.
"""

from __future__ import annotations

import _asyncio
import asyncio
import functools
import threading
import types
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

_ref = weakref.ref

_MAX_HOLDERS: Final = 1024
"""Cap on the holders remembered per semaphore (only reached when permits leak)."""
_SWEEP_AT: Final = 4096
"""A side table is swept for collected primitives when it reaches this size (then twice its
live size): entries normally go at release, only primitives dropped while held linger."""

# id(lock) -> (ref(lock), ref(owning task), id(owning task)); an entry exists only while the lock
# is held. The task's id outlives the task, so a lock leaked by a task that is gone still names it.
_lock_owners: dict[int, tuple[weakref.ref[Any], weakref.ref[Any], int]] = {}
# id(semaphore) -> (ref(semaphore), [ref(task) per permit taken and not yet released]).
_semaphore_holders: dict[int, tuple[weakref.ref[Any], list[weakref.ref[Any]]]] = {}

_sweep_at = [_SWEEP_AT, _SWEEP_AT]  # next sweep size of _lock_owners, _semaphore_holders

_install_lock = threading.Lock()
_installs = 0
_recording = False
_originals: dict[tuple[type, str], Any] = {}
_wrappers: dict[tuple[type, str], Any] = {}


# (thread id, loop) of the app loop, so Python < 3.12 can find the current task without its slow
# `get_running_loop()` (a thread-state dict lookup, ~130 ns on 3.11) on the hot path.
_loop_hint: tuple[int, asyncio.AbstractEventLoop] | None = None


def _make_current_task() -> Callable[[], asyncio.Task[Any] | None]:
    """The cheapest way to ask "which task runs now?" on this Python; never raises."""
    native = getattr(_asyncio, "current_task", None)
    if native is not None:  # Python >= 3.12: done in C, ~20 ns

        def current() -> asyncio.Task[Any] | None:
            try:
                task: asyncio.Task[Any] | None = native()
            except RuntimeError:  # no running loop in this thread
                return None
            return task

        return current
    current_tasks: dict[Any, asyncio.Task[Any]] = getattr(_asyncio, "_current_tasks")  # noqa: B009
    running_loop = asyncio.events._get_running_loop
    get_ident = threading.get_ident

    def current_before_312() -> asyncio.Task[Any] | None:
        hint = _loop_hint
        if hint is not None and hint[0] == get_ident():
            task = current_tasks.get(hint[1])
            if task is not None:
                return task
        return current_tasks.get(running_loop())

    return current_before_312


_current_task: Final = _make_current_task()


def _sweep(table: dict[int, Any], which: int) -> None:
    """Drop the entries of primitives that were garbage-collected while held (leaked)."""
    for key, entry in table.copy().items():
        if entry[0]() is None and table.get(key) is entry:
            table.pop(key, None)
    _sweep_at[which] = max(_SWEEP_AT, 2 * len(table))


def _wrap_lock_acquire(
    original: Callable[[Any], Coroutine[Any, Any, bool]],
) -> Callable[[Any], Coroutine[Any, Any, bool]]:
    @functools.wraps(original)
    async def acquire(self: Any) -> bool:
        result = await original(self)
        if _recording:
            task = _current_task()
            if task is not None:
                _lock_owners[id(self)] = (_ref(self), _ref(task), id(task))
                if len(_lock_owners) >= _sweep_at[0]:
                    _sweep(_lock_owners, 0)
        return result

    return acquire


def _wrap_lock_release(original: Callable[[Any], None]) -> Callable[[Any], None]:
    @functools.wraps(original)
    def release(self: Any) -> None:
        original(self)
        if _recording:
            _lock_owners.pop(id(self), None)

    return release


def _wrap_semaphore_acquire(
    original: Callable[[Any], Coroutine[Any, Any, bool]],
) -> Callable[[Any], Coroutine[Any, Any, bool]]:
    @functools.wraps(original)
    async def acquire(self: Any) -> bool:
        result = await original(self)
        if _recording:
            task = _current_task()
            if task is not None:
                owner = _ref(task)
                key = id(self)
                entry = _semaphore_holders.get(key)
                if entry is None or entry[0]() is not self:
                    entry = (_ref(self), [])
                    _semaphore_holders[key] = entry
                    if len(_semaphore_holders) >= _sweep_at[1]:
                        _sweep(_semaphore_holders, 1)
                holders = entry[1]
                holders.append(owner)
                if len(holders) > _MAX_HOLDERS:
                    del holders[0]
        return result

    return acquire


def _wrap_semaphore_release(original: Callable[[Any], None]) -> Callable[[Any], None]:
    @functools.wraps(original)
    def release(self: Any) -> None:
        original(self)
        if _recording:
            entry = _semaphore_holders.get(id(self))
            if entry is not None and entry[0]() is self and entry[1]:
                holders = entry[1]
                task = _current_task()
                owner = None if task is None else _ref(task)
                # A permit may be released by another task than the one that took it; then the
                # oldest holder is the best guess.
                if owner is not None and owner in holders:
                    holders.remove(owner)
                else:
                    del holders[0]

    return release


_PATCHES: Final[tuple[tuple[str, str, Callable[[Any], Any]], ...]] = (
    ("Lock", "acquire", _wrap_lock_acquire),
    ("Lock", "release", _wrap_lock_release),
    ("Semaphore", "acquire", _wrap_semaphore_acquire),
    ("Semaphore", "release", _wrap_semaphore_release),
)
"""(asyncio class, method, wrapper factory): what tracking patches."""


def asyncio_class(name: str) -> type:
    """asyncio's own `Lock` or `Semaphore`, even when the app put a subclass in its place.

    `asyncio.Lock` is only a module attribute: a lock-debugging helper may replace it with a
    subclass that overrides `acquire` alone, and that subclass's `__dict__` has no `release`.
    Patching it would fail (and did, as KeyError('release')); the stdlib class is the one that
    defines both methods, found in the method resolution order.
    """
    for candidate in (getattr(asyncio, name, None), getattr(asyncio.locks, name, None)):
        mro: tuple[type, ...] = getattr(candidate, "__mro__", ())
        for klass in mro:
            if klass.__module__ == "asyncio.locks" and klass.__name__ == name:
                return klass
    raise LookupError(f"asyncio.{name} is not a subclass of asyncio's own {name}")


def _wrapper_codes() -> frozenset[types.CodeType]:
    codes = set()
    for factory in (_wrap_lock_acquire, _wrap_semaphore_acquire):
        for const in factory.__code__.co_consts:
            if isinstance(const, types.CodeType):
                codes.add(const)
    return frozenset(codes)


WRAPPER_CODES: Final = _wrapper_codes()
"""Code objects of the acquire wrappers: stacks hide them, they are not the app's await chain."""


def original_method(cls: type, name: str) -> Any:
    """The unwrapped method `name` of `cls` (`asyncio.Lock`, "acquire"), whether or not tracking
    is installed: the first definition in its method resolution order, seen through our wrapper.
    A subclass that does not define `name` itself gets its base's."""
    for klass in getattr(cls, "__mro__", (cls,)):
        original = _originals.get((klass, name))
        if original is not None:
            return original
        if name in klass.__dict__:
            return klass.__dict__[name]
    raise AttributeError(f"{cls.__qualname__} has no method {name!r}")


def _install(loop: asyncio.AbstractEventLoop | None, loop_thread_id: int | None) -> None:
    global _installs, _recording, _loop_hint
    with _install_lock:
        if _installs > 0:
            _installs += 1
            return
        # Everything is looked up before anything is patched: a failure leaves no class half
        # patched, and the next install tries again.
        planned = []
        for class_name, name, make_wrapper in _PATCHES:
            cls = asyncio_class(class_name)
            original = cls.__dict__[name]
            planned.append((cls, name, original, make_wrapper(original)))
        _installs = 1
        if loop is not None and loop_thread_id is not None:
            _loop_hint = (loop_thread_id, loop)
        for cls, name, original, wrapper in planned:
            _originals[(cls, name)] = original
            _wrappers[(cls, name)] = wrapper
            setattr(cls, name, wrapper)
        _recording = True


def _uninstall() -> None:
    global _installs, _recording, _loop_hint
    with _install_lock:
        if _installs == 0:
            return
        _installs -= 1
        if _installs > 0:
            return
        _recording = False
        _loop_hint = None
        for (cls, name), wrapper in list(_wrappers.items()):
            # Only undo our own patch: someone who wrapped on top of us keeps theirs, and our
            # wrapper underneath stays harmless since it stops recording.
            if cls.__dict__.get(name) is wrapper:
                setattr(cls, name, _originals[(cls, name)])
        _wrappers.clear()
        _originals.clear()
        _lock_owners.clear()
        _semaphore_holders.clear()


@dataclass(frozen=True)
class LockHolder:
    """The task that acquired a Lock that is still locked."""

    task_id: int
    task: asyncio.Task[Any] | None
    """None when the task has ended and been garbage-collected (the lock leaked)."""


@dataclass(frozen=True)
class SemaphoreHolders:
    """The tasks that took a semaphore's permits and have not released them."""

    live: tuple[asyncio.Task[Any], ...]
    """Holders still running."""
    finished: int
    """Permits taken by tasks that have finished or been collected: leaked permits."""


class LockTracker:
    """Installs the ownership wrappers and answers who holds a given Lock or Semaphore."""

    def __init__(self) -> None:
        self._installed = False

    @property
    def installed(self) -> bool:
        return self._installed

    def install(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        loop_thread_id: int | None = None,
    ) -> None:
        """Start recording; `loop`/`loop_thread_id` name the app loop (a speed hint only)."""
        if not self._installed:
            _install(loop, loop_thread_id)
            self._installed = True

    def close(self) -> None:
        if self._installed:
            self._installed = False
            _uninstall()

    def lock_holder(self, lock: object) -> LockHolder | None:
        """Who holds `lock` now, or None (not held, or acquired before tracking started)."""
        entry = _lock_owners.get(id(lock))
        if entry is None or entry[0]() is not lock:
            return None
        if not getattr(lock, "_locked", True):
            return None
        return LockHolder(task_id=entry[2], task=entry[1]())

    def semaphore_holders(self, semaphore: object) -> SemaphoreHolders | None:
        """Holders of `semaphore`'s permits, or None when nothing was recorded for it."""
        entry = _semaphore_holders.get(id(semaphore))
        if entry is None or entry[0]() is not semaphore:
            return None
        live: list[asyncio.Task[Any]] = []
        finished = 0
        for owner in list(entry[1]):
            task = owner()
            if task is None or task.done():
                finished += 1
            else:
                live.append(task)
        return SemaphoreHolders(live=tuple(live), finished=finished)
