"""The threads sync code runs on: anyio's default limiter and workers, the loop's executor.

FastAPI runs every sync endpoint and sync dependency through `anyio.to_thread.run_sync`, which
takes a token from anyio's default `CapacityLimiter` (40 by default). When the tokens run out,
requests queue silently. This probe reports the limiter (total, borrowed, waiting, and which
requests hold the tokens), each worker thread's stack and the request it serves, and beside it
every thread pool executor (`executors.py`): the loop's default one (`asyncio.to_thread`,
`run_in_executor(None, ...)`) and those the app passes to `run_in_executor`.

The default limiter is a per-loop `RunVar`: it can only be read on the loop's thread. A callback
on the loop reads it every `REFRESH_INTERVAL` seconds and on each snapshot request (waiting at
most `FRESH_WAIT` for it); while the loop is blocked, the last reading is reported.

To know which request a worker thread serves, `anyio.to_thread.run_sync` is wrapped while the
probe is installed: inside a request, the function is wrapped in one that notes the thread ident
in the request's record for as long as it runs (anyio runs it in a copy of the caller's context,
so the request is known in the thread). Measured: 2-4 µs per call made inside a request, against
~42 µs for anyio's thread hand-off itself; calls outside a request pass straight through.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from inspector.agent.frames import MAX_DEPTH, stack_of
from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions
from inspector.agent.probes import executors
from inspector.agent.probes.current import current_task
from inspector.agent.probes.records import RequestRecord
from inspector.agent.probes.tracker import request_now
from inspector.model import Borrower, ExecutorState, LimiterState, ThreadInfo, ThreadpoolState

if TYPE_CHECKING:
    from types import FrameType


REFRESH_INTERVAL: Final = 0.5
FRESH_WAIT: Final = 0.05
_MAX_BORROWERS: Final = 1024
_MAX_THREADS: Final = 512
_MAX_LIMITERS: Final = 32
_UNLIMITED: Final = sys.maxsize
_ANYIO_THREAD_NAME: Final = "AnyIO worker thread"
_AGENT_THREAD_PREFIXES: Final = ("inspector", "aiomonitor")

Pool = Literal["loop", "anyio", "executor", "agent", "other"]
_get_ident = threading.get_ident


class _LimiterReading:
    __slots__ = ("total", "borrowed", "waiting", "borrowers")

    def __init__(
        self, total: int, borrowed: int, waiting: int, borrowers: tuple[Borrower, ...]
    ) -> None:
        self.total = total
        self.borrowed = borrowed
        self.waiting = waiting
        self.borrowers = borrowers


class ThreadpoolProbe:
    """Reports anyio's default limiter, the loop's default executor and every thread's stack."""

    name = "threadpool"

    def __init__(self, config: AgentConfig, busy: dict[int, RequestRecord] | None = None) -> None:
        self._config = config
        self._context: AgentContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._active = False
        self._reading: _LimiterReading | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._fresh = threading.Event()
        self._refresh_pending = False
        self._busy: dict[int, RequestRecord] = {} if busy is None else busy
        """Worker thread ident -> the request whose sync code it runs right now (shared with the
        request tracker, which answers `request_now()` in worker threads from it)."""
        self._since: dict[int, float] = {}
        self._limiters: dict[int, weakref.ref[Any]] = {}
        """The app's own limiters passed to run_sync, by id."""
        self._others: tuple[_LimiterReading, ...] = ()
        self._job_since: dict[int, tuple[weakref.ref[Any], float]] = {}
        """Executor thread ident -> (the job it runs, when a collect first saw it run it): how
        long a job has run, as far as the agent can tell."""
        """id(task) -> wall time a request's task asked for a worker thread."""
        self._module: Any = None
        self._original_run_sync: Any = None
        self._run_sync: Any = None

    # --- install / close ---------------------------------------------------------------------

    def install(self, context: AgentContext) -> None:
        self._context = context
        self._loop = context.loop
        self._active = True
        self._tick()

    def close(self) -> None:
        self._active = False
        try:
            module, wrapper = self._module, self._run_sync
            if module is not None and getattr(module, "run_sync", None) is wrapper:
                module.run_sync = self._original_run_sync
            self._module = self._run_sync = None
            timer, loop = self._timer, self._loop
            self._timer = None
            if timer is not None and loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(timer.cancel)
        except Exception as error:  # close must not raise
            self._report(f"threadpool: close: {error!r}")

    def _report(self, message: str) -> None:
        if self._context is not None:
            self._context.record_error(message)

    def _patch_run_sync(self) -> None:
        module = sys.modules.get("anyio.to_thread")
        if module is None or self._module is not None:
            return
        original = module.run_sync
        probe = self
        clock = self._context.clock if self._context is not None else None

        @functools.wraps(original)
        async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            if not probe._active:
                return await original(func, *args, **kwargs)
            limiter = kwargs.get("limiter")
            if limiter is not None and id(limiter) not in probe._limiters:
                probe._note_limiter(limiter)
            record = request_now()  # also gives a request without a record one
            if record is None:
                return await original(func, *args, **kwargs)
            if record.threads is None:
                record.threads = set()  # here, on the loop thread, not racing in the workers
            task = current_task()
            key = id(task)
            since = probe._since
            if clock is not None:
                since[key] = clock()
            try:
                return await original(
                    functools.partial(probe._run_in_worker, record, func), *args, **kwargs
                )
            finally:
                since.pop(key, None)

        setattr(module, "run_sync", run_sync)  # noqa: B010 - the module is only known at runtime
        self._module, self._original_run_sync, self._run_sync = module, original, run_sync

    def _note_limiter(self, limiter: Any) -> None:
        """Remember (weakly, a few at most) a limiter of the app's own that sync code runs with."""
        if len(self._limiters) >= _MAX_LIMITERS:
            for key in [key for key, ref in self._limiters.items() if ref() is None]:
                del self._limiters[key]
            if len(self._limiters) >= _MAX_LIMITERS:
                return
        try:
            self._limiters[id(limiter)] = weakref.ref(limiter)
        except TypeError:
            pass

    def _run_in_worker(self, record: RequestRecord, func: Callable[..., Any], *args: Any) -> Any:
        """Runs in the worker thread: notes which request the thread serves while `func` runs."""
        threads = record.threads
        if threads is None:  # the request finished meanwhile
            return func(*args)
        ident = _get_ident()
        threads.add(ident)
        self._busy[ident] = record
        try:
            return func(*args)
        finally:
            threads.discard(ident)
            if self._busy.get(ident) is record:
                del self._busy[ident]

    # --- reading the limiter on the loop ----------------------------------------------------

    def _tick(self) -> None:
        if not self._active:
            return
        self._refresh()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            self._timer = loop.call_later(REFRESH_INTERVAL, self._tick)

    def _refresh(self) -> None:
        """Read anyio's default limiter. Runs on the loop thread."""
        try:
            if "anyio" in sys.modules:
                self._patch_run_sync()
                self._reading = self._read_limiter()
                self._others = self._read_own_limiters()
        except Exception as error:
            self._report(f"threadpool: limiter: {error!r}")
        finally:
            self._refresh_pending = False
            self._fresh.set()

    def _read_limiter(self) -> _LimiterReading | None:
        to_thread = sys.modules.get("anyio.to_thread")
        if to_thread is None:
            return None
        return self._reading_of(to_thread.current_default_thread_limiter())

    def _read_own_limiters(self) -> tuple[_LimiterReading, ...]:
        default = None
        to_thread = sys.modules.get("anyio.to_thread")
        if to_thread is not None:
            default = to_thread.current_default_thread_limiter()
        readings = []
        for ref in tuple(self._limiters.values()):
            limiter = ref()
            if limiter is not None and limiter is not default:
                readings.append(self._reading_of(limiter))
        return tuple(readings)

    def _reading_of(self, limiter: Any) -> _LimiterReading:
        statistics = limiter.statistics()
        context = self._context
        borrowers = []
        for borrower in tuple(statistics.borrowers)[:_MAX_BORROWERS]:
            request_id = None
            if isinstance(borrower, asyncio.Task) and context is not None:
                link = context.link_for(borrower)
                request_id = link.request_id if link is not None else None
            key = id(borrower)
            borrowers.append(
                Borrower(task_id=key, request_id=request_id, since=self._since.get(key))
            )
        total = statistics.total_tokens
        return _LimiterReading(
            total=int(total) if total != float("inf") else _UNLIMITED,
            borrowed=int(statistics.borrowed_tokens),
            waiting=int(statistics.tasks_waiting),
            borrowers=tuple(borrowers),
        )

    def _request_fresh_reading(self) -> None:
        """Ask the loop for a new reading and wait briefly; a blocked loop keeps the old one."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self._active:
            return
        if not self._refresh_pending:
            self._refresh_pending = True
            self._fresh.clear()
            try:
                loop.call_soon_threadsafe(self._refresh)
            except RuntimeError:  # the loop closed meanwhile
                self._refresh_pending = False
                return
        self._fresh.wait(FRESH_WAIT)

    # --- collect -----------------------------------------------------------------------------

    def collect(self, context: AgentContext, options: CollectOptions) -> Mapping[str, Any]:
        default = getattr(context.loop, "_default_executor", None)
        pool_threads = executors.pool_threads()
        executor_threads = {t.ident for t in pool_threads if t.ident is not None}
        if default is not None:
            for thread in tuple(getattr(default, "_threads", ()) or ()):
                if thread.ident is not None:
                    executor_threads.add(thread.ident)
        # The threads first: asking the loop for a fresh limiter reading wakes it up, and the
        # loop thread's stack would then show that instead of what it was doing.
        threads, running = self._threads(context, options, executor_threads)
        if threading.get_ident() != context.loop_thread_id:
            self._request_fresh_reading()
        busy = {t.id for t in threads if t.busy}
        try:
            pools = executors.read_executors(
                default, busy.__contains__, running.get, uvloop=_is_uvloop(context.loop)
            )
        except Exception as error:  # the limiter and threads are reported all the same
            self._report(f"threadpool: executors: {error!r}")
            pools = ()
        reading = self._reading
        state: ThreadpoolState | None = None
        main = next((pool for pool in pools if pool.default), None)
        others = self._others
        if reading is not None or default is not None or pools or others:
            state = ThreadpoolState(
                total=reading.total if reading is not None else 0,
                borrowed=reading.borrowed if reading is not None else 0,
                waiting=reading.waiting if reading is not None else 0,
                borrowers=reading.borrowers if reading is not None else (),
                executor_max_workers=_max_workers(default, main),
                executor_threads=len(main.thread_ids) if main is not None else 0,
                executor_queued=main.queued if main is not None else 0,
                executors=pools,
                limiters=tuple(
                    LimiterState(o.total, o.borrowed, o.waiting, o.borrowers) for o in others
                ),
            )
        return {"threadpool": state, "threads": threads}

    def _threads(
        self, context: AgentContext, options: CollectOptions, executor_threads: set[int]
    ) -> tuple[tuple[ThreadInfo, ...], dict[int, float]]:
        """Every thread; and for each executor thread running a job, for how long the agent has
        seen it run that job (from the first collect that saw the job's frame)."""
        frames = sys._current_frames()
        me = threading.get_ident()
        now = context.clock()
        previous, jobs = self._job_since, {}
        running: dict[int, float] = {}
        result = []
        for thread in threading.enumerate()[:_MAX_THREADS]:
            ident = thread.ident
            if ident is None:
                continue
            pool = _pool_of(thread, ident, context.loop_thread_id, executor_threads, me)
            frame = frames.get(ident)
            record = self._busy.get(ident)
            busy = record is not None or _is_busy(pool, frame)
            if busy and pool == "executor":
                job = _job_of(frame)
                if job is not None:
                    seen = previous.get(ident)
                    since = seen[1] if seen is not None and seen[0]() is job else now
                    jobs[ident] = (weakref.ref(job), since)
                    running[ident] = now - since
            result.append(
                ThreadInfo(
                    id=ident,
                    name=thread.name,
                    pool=pool,
                    stack=stack_of(frame, MAX_DEPTH) if options.with_stacks else (),
                    request_id=record.id if record is not None else None,
                    busy=busy,
                )
            )
        self._job_since = jobs
        result.sort(key=lambda info: (_POOL_ORDER[info.pool], info.name, info.id))
        return tuple(result), running


def _job_of(frame: FrameType | None) -> Any:
    """The job (the `_WorkItem`'s future) an executor thread runs, read from its `run` frame;
    a weak reference to it tells one job from the next, which the frame's address may not."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "run" and code.co_filename.endswith(_EXECUTOR_FILE):
            try:
                item = frame.f_locals.get("self")
                future = getattr(item, "future", None)
                weakref.ref(future)
            except Exception:  # not the stdlib's work item after all
                return None
            return future
        frame = frame.f_back
    return None


_EXECUTOR_FILE: Final = os.path.join("concurrent", "futures", "thread.py")


def _is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.startswith("uvloop")


def _max_workers(default: Any, main: ExecutorState | None) -> int | None:
    if main is not None:
        return main.max_workers
    workers = getattr(default, "_max_workers", None) if default is not None else None
    return workers if isinstance(workers, int) else None


_POOL_ORDER: Final[dict[str, int]] = {"loop": 0, "anyio": 1, "executor": 2, "other": 3, "agent": 4}


def _pool_of(
    thread: threading.Thread, ident: int, loop_ident: int, executor: set[int], me: int
) -> Pool:
    if ident == loop_ident:
        return "loop"
    if ident in executor:
        return "executor"
    name = thread.name or ""
    if name == _ANYIO_THREAD_NAME or (
        type(thread).__name__ == "WorkerThread" and type(thread).__module__.startswith("anyio")
    ):
        return "anyio"
    if ident == me or name.startswith(_AGENT_THREAD_PREFIXES) or "(_ui_main)" in name:
        return "agent"
    return "other"


def _is_busy(pool: Pool, frame: FrameType | None) -> bool:
    """Whether a pool thread is running a job, judged from where its stack ends."""
    if frame is None:
        return False
    code = frame.f_code
    if pool == "anyio":
        callee: FrameType | None = None
        current: FrameType | None = frame
        while current is not None:
            if current.f_code.co_name == "run" and "anyio" in current.f_code.co_filename:
                if callee is None:
                    return False
                callee_code = callee.f_code
                return not (
                    callee_code.co_name == "get" and callee_code.co_filename.endswith("queue.py")
                )
            callee, current = current, current.f_back
        return True
    if pool == "executor":
        # An idle ThreadPoolExecutor worker sits in `_worker` on a C-level queue get.
        return not (code.co_name == "_worker" and code.co_filename.endswith("thread.py"))
    if pool == "loop":
        # Idle: waiting in the selector (asyncio), or inside a C event loop (uvloop) whose
        # innermost Python frame is the code that started it.
        return not (
            code.co_filename.endswith(_LOOP_WAIT_FILES) and code.co_name in _LOOP_WAIT_FUNCTIONS
        )
    return False


_LOOP_WAIT_FILES: Final = ("selectors.py", "runners.py", "base_events.py", "__init__.py")
_LOOP_WAIT_FUNCTIONS: Final = frozenset(
    {"select", "_run_once", "run_forever", "run_until_complete", "run"}
)
