"""Every thread pool executor of the process, read from the threads it started.

`asyncio.to_thread` and `run_in_executor(None, ...)` use the loop's default executor; apps also
pass executors of their own to `run_in_executor`. On asyncio's loops the default one is
`loop._default_executor`, but uvloop keeps it where Python cannot read it. What every
`ThreadPoolExecutor` does, whoever made it, is register each worker thread it starts in
`concurrent.futures.thread._threads_queues` (thread -> the executor's work queue), and each such
thread holds a weak reference to its executor as the first argument of its target until it
exits. So the executors are found from their threads, without wrapping anything: nothing runs
per job, and a reading costs one pass over the pools' threads, at snapshot time only.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

from inspector.model import ExecutorState

_MAX_EXECUTORS: Final = 64
_AGENT_PREFIXES: Final = ("inspector", "aiomonitor")
_UVLOOP_DEFAULT_PREFIX: Final = "uvloop"
"""uvloop names its default executor's threads "uvloop_N"."""


def executor_of(thread: threading.Thread) -> Any:
    """The ThreadPoolExecutor that started `thread`, while the thread runs, or None."""
    args = getattr(thread, "_args", None)  # deleted by Thread.run when the target returns
    if not isinstance(args, tuple) or not args or not isinstance(args[0], weakref.ref):
        return None
    executor = args[0]()
    return executor if hasattr(executor, "_work_queue") else None


def pool_threads() -> list[threading.Thread]:
    """The live worker threads of every ThreadPoolExecutor (empty until one was used)."""
    module = sys.modules.get("concurrent.futures.thread")
    registry = getattr(module, "_threads_queues", None)
    if registry is None:
        return []
    for _ in range(5):  # threads start and exit while it is copied
        try:
            return [thread for thread in list(registry.keys()) if thread.is_alive()]
        except RuntimeError:
            continue
    return []


def read_executors(
    default: Any,
    is_busy: Callable[[int], bool],
    running_for: Callable[[int], float | None],
    *,
    uvloop: bool = False,
) -> tuple[ExecutorState, ...]:
    """Each executor with a live thread: its size, threads, busy threads and queued jobs.

    `default` is the loop's default executor when Python can read it (asyncio); on uvloop the
    executor whose threads are named by uvloop is the default one. `is_busy(ident)` says whether
    a worker thread runs a job, `running_for(ident)` for how long it has been seen running it."""
    found: dict[int, tuple[Any, list[int]]] = {}
    for thread in pool_threads():
        executor = executor_of(thread)
        ident = thread.ident
        if executor is None or ident is None:
            continue
        entry = found.get(id(executor))
        if entry is None:
            if len(found) >= _MAX_EXECUTORS:
                continue
            entry = found[id(executor)] = (executor, [])
        entry[1].append(ident)
    states = []
    for executor, idents in found.values():
        name = str(getattr(executor, "_thread_name_prefix", "") or "")
        if name.startswith(_AGENT_PREFIXES):
            continue
        max_workers = getattr(executor, "_max_workers", None)
        if not isinstance(max_workers, int):
            continue
        runs = [seconds for ident in idents if (seconds := running_for(ident)) is not None]
        states.append(
            ExecutorState(
                name=name,
                max_workers=max_workers,
                thread_ids=tuple(sorted(idents)),
                busy=sum(1 for ident in idents if is_busy(ident)),
                queued=_queued(executor),
                longest_job=max(runs) if runs else None,
                default=executor is default
                or (default is None and uvloop and name == _UVLOOP_DEFAULT_PREFIX),
            )
        )
    states.sort(key=lambda state: (not state.default, state.name))
    return tuple(states)


def _queued(executor: Any) -> int:
    queue = getattr(executor, "_work_queue", None)
    try:
        return max(0, int(queue.qsize())) if queue is not None else 0
    except Exception:
        return 0
