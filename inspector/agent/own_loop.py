"""Whether the stalled loop thread waits for a coroutine only its own loop can run.

`asyncio.run_coroutine_threadsafe(coro, loop).result()` called on the loop thread itself blocks
in `concurrent.futures.Future.result()` (or `concurrent.futures.wait()`) while the callback
that would start `coro` sits in that same loop's ready queue: nothing can ever complete the
wait but its timeout. So does a loop thread waiting for a worker (`pool.submit(fn).result()`)
whose `fn` waits for the loop in the same way. The stack alone shows only a thread wait (the
call may be split over two lines, or sit in a helper), so the watchdog asks here, on its own
thread and only while the loop is stalled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import types
from collections.abc import Iterable
from typing import Any, Final

_RESULT_CODE: Final = concurrent.futures.Future.result.__code__
_WAIT_CODE: Final = concurrent.futures.wait.__code__
_SCHEDULING_CALLBACK: Final = "run_coroutine_threadsafe.<locals>.callback"
MAX_DEPTH: Final = 64
"""Frames looked at from the innermost one outwards."""
MAX_WAITED: Final = 16
"""Futures of one `concurrent.futures.wait()` looked at."""
MAX_THREADS: Final = 64
"""Other threads looked at when the loop waits for a worker."""
MAX_READY: Final = 512
"""Ready callbacks looked at: the one that would start the coroutine is among the first."""


def waits_for_own_loop(
    frame: types.FrameType | None,
    loop: asyncio.AbstractEventLoop,
    others: Iterable[types.FrameType] = (),
) -> bool:
    """True when the thread whose innermost frame is `frame` waits in `Future.result()` for
    something only `loop` can bring about: a future that `run_coroutine_threadsafe` completes
    once `loop` runs again, or work a worker thread runs while one of the threads whose frames
    are `others` waits in its turn for such a future (the loop waits for a worker that waits for
    the loop). Never raises: an odd loop or frame is simply not recognised."""
    try:
        futures = _awaited_futures(frame)
        if any(_completed_by(future, loop) for future in futures):
            return True
        if not any(getattr(future, "_state", None) == "RUNNING" for future in futures):
            return False
        return any(
            _completed_by(future, loop)
            for other in itertools.islice(others, MAX_THREADS)
            for future in _awaited_futures(other)
        )
    except Exception:
        return False


def _completed_by(future: Any, loop: asyncio.AbstractEventLoop) -> bool:
    """`future` is `run_coroutine_threadsafe`'s, its coroutine not yet started by `loop`."""
    ready = getattr(loop, "_ready", None)
    if ready is None:
        # A loop whose ready queue cannot be read (uvloop): a future that no thread has
        # started and nothing is chained to is one no worker will ever complete.
        return getattr(future, "_state", None) == "PENDING" and not getattr(
            future, "_done_callbacks", True
        )
    return any(_schedules(handle, future) for handle in list(ready)[:MAX_READY])


def _awaited_futures(frame: types.FrameType | None) -> tuple[Any, ...]:
    """The concurrent futures the thread waits for: `Future.result()`'s own, or those of
    `concurrent.futures.wait()` (a few at most)."""
    depth = 0
    while frame is not None and depth < MAX_DEPTH:
        if frame.f_code is _RESULT_CODE:
            future = frame.f_locals.get("self")
            return (future,) if isinstance(future, concurrent.futures.Future) else ()
        if frame.f_code is _WAIT_CODE:
            waited = frame.f_locals.get("fs")
            futures = list(itertools.islice(waited, MAX_WAITED)) if waited is not None else []
            return tuple(f for f in futures if isinstance(f, concurrent.futures.Future))
        frame = frame.f_back
        depth += 1
    return ()


def _schedules(handle: object, future: concurrent.futures.Future[Any]) -> bool:
    """The ready handle is `run_coroutine_threadsafe`'s callback for `future`."""
    callback = getattr(handle, "_callback", None)
    if getattr(callback, "__qualname__", None) != _SCHEDULING_CALLBACK:
        return False
    cells = getattr(callback, "__closure__", None) or ()
    return any(_cell_value(cell) is future for cell in cells)


def _cell_value(cell: Any) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None
