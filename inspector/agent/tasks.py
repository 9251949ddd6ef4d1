"""The tasks probe: every live task of the app loop, its await chain and what it waits for.

Collected from the agent's thread, so it must be right while the app loop is blocked and must
only read. For each task it walks the coroutine chain (`cr_await` / `gi_yieldfrom` /
`ag_await`, through async-generator `asend` wrappers) from the outer coroutine down, turns the
frames into `Frame`s (outermost first) and asks `waits.describe_wait` what the leaf is. The task
running right now has no meaningful await chain: its stack is the loop thread's real stack, cut
just above the task's outer coroutine frame.

A chain deeper than the probe reports (a recursion 500 awaits deep) is still walked to its real
leaf, so the wait is read where it is (an Event, not "Future"); the stack keeps its outermost
and innermost frames, and `TaskInfo.stack_cut` says how many were left out between them.

Ages count from the first time the probe saw a task: a sweep on the probe's own thread (once a
second) notes new tasks, so a task's age is right on a client's first snapshot. The table holds
weak references only and is rebuilt from the live tasks at every sweep, so it never keeps a task
alive and costs the app nothing when a task ends.

A task that died with an exception nobody retrieved, while something still references it (a
long-lived worker kept in a global), never reaches asyncio's "never retrieved" log: the sweep
notices it leaving the live set and keeps reporting it as a failed task (bounded).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import itertools
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from inspector.agent.deadlines import task_deadlines
from inspector.agent.frames import (
    MAX_DEPTH,
    cut_frames,
    frame_at,
    frames_of,
    is_own_code,
    stack_of,
)
from inspector.agent.locks import WRAPPER_CODES, LockTracker
from inspector.agent.probe import AgentContext, CollectOptions
from inspector.agent.waits import WaitContext, describe_wait
from inspector.codec import assemble
from inspector.frame_kinds import is_application
from inspector.model import Frame, StackCut, TaskInfo, TaskState, WaitInfo

_UNKNOWN: Final = object()

SWEEP_INTERVAL: Final = 1.0
_HAS_CANCELLING: Final = hasattr(asyncio.Task, "cancelling")
"""Python >= 3.11 counts the cancellations requested of a task (`Task.cancelling()`)."""
"""Seconds between sweeps that date new tasks and notice dead ones."""
MAX_DEAD_TASKS: Final = 50
"""Failed-but-referenced tasks reported at most (the newest are kept)."""

CHAIN_LIMIT: Final = 16_384
"""Objects walked down one await chain at most (a guard against cycles). Well past what
Python's recursion limit lets a chain reach, so a deep chain is walked to its real leaf; only the
frames reported are capped (`max_depth`)."""

_COROUTINE = types.CoroutineType
_GENERATOR = types.GeneratorType
_ASYNC_GENERATOR = types.AsyncGeneratorType
_CHAIN_TYPES: Final = (_COROUTINE, _GENERATOR, _ASYNC_GENERATOR)
HIDDEN_CODE_IDS: Final = frozenset(id(code) for code in WRAPPER_CODES)
"""`id()`s of the lock-tracking wrappers' code objects (kept alive by `locks`)."""


def _wrapper_types() -> tuple[type, ...]:
    """C objects that sit between two awaitables without exposing the inner one as an attribute
    (`agen.__anext__()`, `agen.athrow()`, `coro.__await__()`); gc.get_referents finds it."""

    async def agen() -> Any:
        yield None

    async def coro() -> None:
        return None

    generator = agen()
    inner = coro()
    samples = [generator.__anext__(), generator.athrow(GeneratorExit), inner.__await__()]
    found = tuple({type(sample) for sample in samples})
    for sample in samples:
        sample.close()  # never started: closing them keeps "never awaited" warnings away
    inner.close()
    return found


_WRAPPER_TYPES: Final = _wrapper_types()


def await_chain(
    coro: object, limit: int = CHAIN_LIMIT
) -> tuple[list[types.FrameType], object | None]:
    """The suspended frames of an await chain, outermost first, and the object it ends in.

    The end object is the first awaitable that is not a coroutine, generator or async generator
    (usually a Future's iterator), or None when the chain ends in a frame. Frames of the
    lock-tracking wrappers are included: hide them with `HIDDEN_CODE_IDS` when reporting.
    """
    frames: list[types.FrameType] = []
    obj: object | None = coro
    for _ in range(limit):
        kind = type(obj)
        frame: types.FrameType | None
        if kind is _COROUTINE:
            frame, nxt = obj.cr_frame, obj.cr_await  # type: ignore[union-attr]
        elif kind is _GENERATOR:
            frame, nxt = obj.gi_frame, obj.gi_yieldfrom  # type: ignore[union-attr]
        elif kind is _ASYNC_GENERATOR:
            frame, nxt = obj.ag_frame, obj.ag_await  # type: ignore[union-attr]
        elif kind in _WRAPPER_TYPES:
            frame = None
            nxt = next((r for r in gc.get_referents(obj) if isinstance(r, _CHAIN_TYPES)), None)
        elif hasattr(obj, "cr_await"):  # coroutine-likes of compiled code (Cython)
            frame, nxt = getattr(obj, "cr_frame", None), obj.cr_await
        else:
            return frames, obj
        if frame is not None:
            frames.append(frame)
        if nxt is None:
            return frames, None
        obj = nxt
    return frames, obj


def _coro_name(coro: object) -> str:
    name = getattr(coro, "__qualname__", None) or getattr(coro, "__name__", None)
    return str(name) if name else type(coro).__qualname__


def _state(task: asyncio.Task[Any], current: object) -> TaskState:
    if task is current:
        return "running"
    raw = getattr(task, "_state", None)  # read without calling exception(): it marks retrieval
    if raw == "PENDING" or (raw is None and not task.done()):
        return "pending"
    if raw == "CANCELLED" or (raw is None and task.cancelled()):
        return "cancelled"
    return "failed" if getattr(task, "_exception", None) is not None else "done"


def _died_unobserved(task: Any) -> bool:
    """True for a task that failed and whose exception nobody retrieved (read without
    retrieving it: `exception()` would silence asyncio's own report)."""
    return (
        task is not None
        and getattr(task, "_state", None) == "FINISHED"
        and getattr(task, "_exception", None) is not None
        and bool(getattr(task, "_log_traceback", False))
    )


def _live_tasks(loop: asyncio.AbstractEventLoop) -> set[asyncio.Task[Any]]:
    """`asyncio.all_tasks(loop)` from another thread: the set may change while it is copied."""
    for _ in range(50):
        try:
            return asyncio.all_tasks(loop)
        except RuntimeError:  # "Set changed size during iteration"
            continue
    return asyncio.all_tasks(loop)  # a last try; its error is recorded by collect()


_RUNNING_WALK: Final = 4096
"""Frames of the loop thread walked at most looking for the running task's outer frame."""


def _running_frames(coro: object, top: types.FrameType | None) -> list[types.FrameType]:
    """The loop thread's frames from the task's outer coroutine frame down, outermost first;
    empty when that frame is not on the stack (the task just yielded)."""
    target = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
    if target is None:
        return []
    frames: list[types.FrameType] = []
    current = top
    while current is not None and len(frames) < _RUNNING_WALK:
        frames.append(current)
        if current is target:
            frames.reverse()
            return frames
        current = current.f_back
    return []


def reported_stack(
    frames: list[types.FrameType], limit: int
) -> tuple[tuple[Frame, ...], StackCut | None]:
    """The `Frame`s reported for an await chain: the lock wrappers' and the inspector's own
    frames hidden, at most
    `limit` of them (outermost and innermost kept, see `frames.cut_frames`), and the cut."""
    if len(frames) <= limit:
        return frames_of(frames, HIDDEN_CODE_IDS), None
    visible = [
        frame
        for frame in frames
        if id(frame.f_code) not in HIDDEN_CODE_IDS and not is_own_code(frame.f_code)
    ]
    kept, cut = cut_frames(visible, limit)
    return frames_of(kept), cut


class PeriodicScheduler(Protocol):
    """Something with a thread that runs jobs now and then (the watchdog)."""

    def add_periodic(self, job: Callable[[], None], every: float) -> bool: ...


class TasksProbe:
    """Reports `tasks`, `current_task_id` and `loop_thread_stack` of a snapshot."""

    name = "tasks"

    def __init__(self, *, track_locks: bool = True, max_depth: int = MAX_DEPTH) -> None:
        self._track_locks = track_locks
        self._max_depth = max_depth
        self._locks = LockTracker()
        # id(task) -> (weak ref, first seen (monotonic), order seen)
        self._first_seen: dict[int, tuple[weakref.ref[Any], float, int]] = {}
        self._cancel_seen: dict[int, float] = {}
        """id(task) -> monotonic time a cancellation of it was first seen pending."""
        self._parked: _ParkedMemo = {}
        self._order = itertools.count()
        self._guard = threading.Lock()
        self._dead: dict[int, tuple[weakref.ref[Any], float]] = {}
        """id(task) -> (weak ref, first seen): failed tasks nobody retrieved, still referenced."""
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._scheduler: PeriodicScheduler | None = None

    # --- Probe -----------------------------------------------------------------------------------

    def sweep_with(self, scheduler: PeriodicScheduler) -> None:
        """Let `scheduler` (the watchdog's thread) run the sweeps instead of a thread of our own:
        every periodic Python thread slows the busy loop thread, so the agent keeps one."""
        self._scheduler = scheduler

    def install(self, context: AgentContext) -> None:
        scheduler = self._scheduler
        shared = False
        if scheduler is not None:
            try:
                shared = scheduler.add_periodic(lambda: self._sweep(context), SWEEP_INTERVAL)
            except Exception as error:
                context.record_error(f"tasks: shared sweeper refused: {error!r}")
        if not shared:
            self._sweeper = threading.Thread(
                target=self._sweep_forever,
                args=(context,),
                name="inspector-task-sweep",
                daemon=True,
            )
            self._sweeper.start()
        if not self._track_locks:
            return
        try:
            self._locks.install(context.loop, context.loop_thread_id)
        except Exception as error:  # the probe still works, without lock owners
            context.record_error(f"tasks: lock tracking not installed: {error!r}")

    def collect(self, context: AgentContext, options: CollectOptions) -> Mapping[str, Any]:
        try:
            return self._collect(context, options)
        except Exception as error:
            context.record_error(f"tasks: collect failed: {error!r}")
            return {}

    def close(self) -> None:
        self._stop.set()
        try:
            self._locks.close()
        except Exception:
            pass
        with self._guard:
            self._first_seen = {}
            self._parked = {}
            self._dead = {}

    def _sweep_forever(self, context: AgentContext) -> None:
        while not self._stop.wait(SWEEP_INTERVAL):
            self._sweep(context)

    def _sweep(self, context: AgentContext) -> None:
        """Note the tasks alive now, so ages count from before the first snapshot."""
        if self._stop.is_set():
            return
        try:
            self._remember(_live_tasks(context.loop), time.monotonic())
        except Exception as error:
            context.record_error(f"tasks: sweep failed: {error!r}")

    # --- collecting ------------------------------------------------------------------------------

    def _collect(self, context: AgentContext, options: CollectOptions) -> dict[str, Any]:
        loop = context.loop
        tasks = _live_tasks(loop)
        current = asyncio.current_task(loop)
        if current is not None:
            tasks.add(current)
        loop_top = sys._current_frames().get(context.loop_thread_id)
        now = time.monotonic()
        seen = self._remember(tasks, now)
        ordered = sorted(tasks, key=lambda task: seen[id(task)][2])  # first seen, oldest first
        selected = self._select(ordered, current, options.max_tasks)
        run = _Run(
            probe=self,
            context=context,
            with_stacks=options.with_stacks,
            current=current,
            loop_top=loop_top,
            waits=WaitContext(loop, self._locks if self._locks.installed else None),
            previous=self._parked,
        )
        infos = tuple(run.describe(task, now - seen[id(task)][1]) for task in selected)
        try:
            deadlines = task_deadlines(loop, {id(task): task for task in selected})
        except Exception as error:  # the tasks are reported all the same, without deadlines
            context.record_error(f"tasks: reading timeouts: {error!r}")
            deadlines = {}
        infos = _with_deadlines(infos, deadlines)
        infos = _with_cancellations(infos, self._cancel_seen, now)
        infos += tuple(run.describe(task, now - since) for task, since in self._dead_tasks())
        if options.with_stacks:
            with self._guard:
                self._parked = run.parked
        loop_stack: tuple[Frame, ...] = ()
        if options.with_stacks and loop_top is not None:
            loop_stack = self._stack_from(loop_top)
        return {
            "tasks": infos,
            "current_task_id": id(current) if current is not None else None,
            "loop_thread_stack": loop_stack,
        }

    def _remember(
        self, tasks: set[asyncio.Task[Any]], now: float
    ) -> dict[int, tuple[weakref.ref[Any], float, int]]:
        with self._guard:
            previous = self._first_seen
            fresh: dict[int, tuple[weakref.ref[Any], float, int]] = {}
            for task in tasks:
                key = id(task)
                entry = previous.get(key)
                if entry is None or entry[0]() is not task:  # new, or an id reused
                    entry = (weakref.ref(task), now, next(self._order))
                fresh[key] = entry
            for key, (ref, since, _order) in previous.items():
                if key not in fresh and _died_unobserved(ref()):
                    self._dead[key] = (ref, since)
            while len(self._dead) > MAX_DEAD_TASKS:
                del self._dead[next(iter(self._dead))]
            self._first_seen = fresh  # tasks that ended drop out here
            self._note_cancellations(tasks, now)
        return fresh

    def _note_cancellations(self, tasks: set[asyncio.Task[Any]], now: float) -> None:
        """When each task still running was first seen with a cancellation requested: one C
        call per task (`cancelling()`, Python >= 3.11; asyncio.timeout and TaskGroup take
        theirs back with `uncancel()` within moments)."""
        if not _HAS_CANCELLING:
            return
        previous = self._cancel_seen
        fresh: dict[int, float] = {}
        for task in tasks:
            if task.cancelling() and not task.done():  # type: ignore[attr-defined]  # 3.11+
                fresh[id(task)] = previous.get(id(task), now)
        self._cancel_seen = fresh

    def _dead_tasks(self) -> list[tuple[asyncio.Task[Any], float]]:
        """Failed tasks still referenced whose exception nobody retrieved yet."""
        with self._guard:
            alive: list[tuple[asyncio.Task[Any], float]] = []
            for key, (ref, since) in list(self._dead.items()):
                task = ref()
                if task is not None and _died_unobserved(task):
                    alive.append((task, since))
                else:  # collected, or somebody looked at the exception after all
                    del self._dead[key]
            return alive

    @staticmethod
    def _select(
        ordered: list[asyncio.Task[Any]], current: asyncio.Task[Any] | None, cap: int | None
    ) -> list[asyncio.Task[Any]]:
        """The oldest `cap` tasks, always with the running one."""
        if cap is None or len(ordered) <= cap:
            return ordered
        kept = ordered[: max(cap, 0)]
        if current is not None and not any(task is current for task in kept):
            kept = kept[: max(cap - 1, 0)] + [current]
        return kept

    def _stack_from(self, top: types.FrameType) -> tuple[Frame, ...]:
        frames: list[types.FrameType] = []
        current: types.FrameType | None = top
        while current is not None and len(frames) < self._max_depth:
            frames.append(current)
            current = current.f_back
        frames.reverse()
        return frames_of(frames)


def _with_cancellations(
    infos: tuple[TaskInfo, ...], seen: dict[int, float], now: float
) -> tuple[TaskInfo, ...]:
    """The tasks, those with a cancellation pending with how long it has been."""
    if not seen:
        return infos
    return tuple(
        dataclasses.replace(info, cancelled_for=now - seen[info.id]) if info.id in seen else info
        for info in infos
    )


def _with_deadlines(
    infos: tuple[TaskInfo, ...], deadlines: dict[int, float]
) -> tuple[TaskInfo, ...]:
    """The tasks, those waiting under a timeout with the seconds it has left."""
    if not deadlines:
        return infos
    return tuple(
        dataclasses.replace(info, deadline_in=deadlines[info.id]) if info.id in deadlines else info
        for info in infos
    )


# id(task) -> (ref(the Future it was parked on), its stack, what it waited on, its request, the
# stack's cut): a task parked on the same Future since the last snapshot has not run, so its await
# chain, its stack and the request it works for are unchanged.
_Parked = tuple["weakref.ref[Any]", tuple[Frame, ...], WaitInfo | None, int | None, StackCut | None]
_ParkedMemo = dict[int, _Parked]

_ASK_LINKERS: Final[Any] = object()


class _Run:
    """One collect: the shared inputs, and the description of one task at a time."""

    def __init__(
        self,
        *,
        probe: TasksProbe,
        context: AgentContext,
        with_stacks: bool,
        current: asyncio.Task[Any] | None,
        loop_top: types.FrameType | None,
        waits: WaitContext,
        previous: _ParkedMemo,
    ) -> None:
        self.context = context
        self.with_stacks = with_stacks
        self.max_depth = probe._max_depth
        self.current = current
        self.loop_top = loop_top
        self.waits = waits
        self.previous = previous
        self.parked: _ParkedMemo = {}
        self._renewed: dict[int, WaitInfo | None] = {}
        """id(a wait reported last time) -> what the first of its tasks waits on now."""
        self._thread_tops: dict[int, types.FrameType] | None = None
        """Every thread's innermost frame, read once per collect when a task waits on one."""

    def _worker_frames(self, thread_id: int) -> tuple[Frame, ...]:
        """What a worker thread runs for a task that awaits it (`to_thread.run_sync`,
        `run_in_executor`): its frames from the application's function on, so the task's
        stack ends at the line the thread is on rather than in anyio's or asyncio's plumbing.
        Empty when the thread runs no application code."""
        if self._thread_tops is None:
            self._thread_tops = sys._current_frames()
        stack = stack_of(self._thread_tops.get(thread_id), self.max_depth)
        for index, frame in enumerate(stack):
            if is_application(frame.file):
                return stack[index:]
        return ()

    def describe(self, task: asyncio.Task[Any], age: float) -> TaskInfo:
        """Everything known about `task`; a failure is recorded and what is known reported."""
        name, coro_name = "?", "?"
        state: TaskState = "pending"
        try:
            name = task.get_name()
            coro = task.get_coro()
            coro_name = _coro_name(coro)
            state = _state(task, self.current)
            stack: tuple[Frame, ...] = ()
            cut: StackCut | None = None
            waiting: WaitInfo | None = None
            exception: str | None = None
            request_id: int | None = _ASK_LINKERS
            if state == "running":
                if self.with_stacks:
                    stack, cut = self._running_stack(coro)
            elif state == "pending":
                stack, cut, waiting, request_id = self._parked(task, coro)
                if waiting is not None and waiting.thread_id is not None and self.with_stacks:
                    stack = stack + self._worker_frames(waiting.thread_id)
            elif state == "failed":
                error = getattr(task, "_exception", None)
                exception = repr(error)
                if self.with_stacks and error is not None:
                    stack, cut = _traceback_stack(error, self.max_depth)
            if request_id is _ASK_LINKERS:
                request_id = self._request_of(task)
            # Without the frozen __init__: a third of the cost of describing a parked task.
            return assemble(
                TaskInfo,
                id=id(task),
                name=name,
                state=state,
                coro=coro_name,
                stack=stack,
                waiting_on=waiting,
                age=age,
                request_id=request_id,
                exception=exception,
                stack_cut=cut,
            )
        except Exception as error:
            self.context.record_error(f"tasks: describing {name}: {error!r}")
            return TaskInfo(id=id(task), name=name, state=state, coro=coro_name, age=age)

    def _request_of(self, task: asyncio.Task[Any]) -> int | None:
        link = self.context.link_for(task)
        return link.request_id if link is not None else None

    def _parked(
        self, task: asyncio.Task[Any], coro: object
    ) -> tuple[tuple[Frame, ...], StackCut | None, WaitInfo | None, int | None]:
        """The stack (and its cut), the wait and the request of a pending task.

        A task still parked on the Future it was parked on at the last collect has not run since:
        its stack and request are the ones found then, and tasks that waited on one shared
        primitive then (one WaitInfo object) still do, so only the first of them is described
        again. A wait that reads the same as before keeps its object, and the memo entry its tuple:
        a snapshot of parked tasks leaves little behind for the garbage collector.
        """
        fut = getattr(task, "_fut_waiter", _UNKNOWN)
        key = id(task)
        memo = self.previous.get(key) if fut is not None and fut is not _UNKNOWN else None
        if memo is not None and memo[0]() is fut:
            ref, stack, before, request_id, cut = memo
            if before is not None and id(before) in self._renewed:
                waiting = self._renewed[id(before)]
            else:
                frames, leaf = await_chain(coro)
                waiting = describe_wait(frames, fut, self.waits, leaf)
                if before is not None:
                    if waiting == before:
                        waiting = before
                    self._renewed[id(before)] = waiting
            if not self.with_stacks:
                return (), None, waiting, request_id
            self.parked[key] = memo if waiting is before else (ref, stack, waiting, request_id, cut)
            return stack, cut, waiting, request_id
        frames, leaf = await_chain(coro)
        if fut is _UNKNOWN:  # a Task-like without the attribute: describe from frames
            fut = None
            waiting = describe_wait(frames, None, self.waits, leaf)
        elif fut is not None:
            waiting = describe_wait(frames, fut, self.waits, leaf)
        else:  # parked on nothing: the task is scheduled to run (new, or just woken)
            waiting = None
        request_id = self._request_of(task)
        stack, cut = (), None
        if self.with_stacks:
            stack, cut = reported_stack(frames, self.max_depth)
            if fut is not None:
                try:
                    self.parked[key] = (weakref.ref(fut), stack, waiting, request_id, cut)
                except TypeError:  # a Future-like without weak reference support
                    pass
        return stack, cut, waiting, request_id

    def _running_stack(self, coro: object) -> tuple[tuple[Frame, ...], StackCut | None]:
        frames = _running_frames(coro, self.loop_top)
        if not frames:
            frames = await_chain(coro)[0]
        return reported_stack(frames, self.max_depth)


_TRACEBACK_WALK: Final = 16_384
"""Traceback entries walked at most (a RecursionError's has about a thousand)."""


def _traceback_stack(error: BaseException, limit: int) -> tuple[tuple[Frame, ...], StackCut | None]:
    """Where a finished task's exception was raised, outermost first (traceback order), cut
    like an await chain when deeper than `limit`."""
    codes: list[tuple[types.CodeType, int]] = []
    tb = error.__traceback__
    while tb is not None and len(codes) < _TRACEBACK_WALK:
        code = tb.tb_frame.f_code
        if id(code) not in HIDDEN_CODE_IDS and not is_own_code(code):
            codes.append((code, tb.tb_lineno))
        tb = tb.tb_next
    kept, cut = cut_frames(codes, limit)
    return tuple(frame_at(code, line) for code, line in kept), cut
