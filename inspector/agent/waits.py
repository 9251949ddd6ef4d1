"""What a suspended task waits for, in words: the leaf of its await chain as a `WaitInfo`.

A parked task ends in a Future (`task._fut_waiter`). The Future alone says little, so the
primitive is found from the innermost coroutine frames of the await chain: the code object tells
which library function is waiting (`Lock.acquire`, `Queue.get`, `sleep`, anyio's worker-thread
call, ...) and its `self`/locals give the object (read-only, from the agent's thread, on a frame
that is suspended). A few outer frames may refine the answer: `Queue.join` waits on an Event,
anyio's `CapacityLimiter` waits on an anyio Event. When no frame is known, the Future's own type
decides (a Task, a gather, a Future chained to a thread).

Everything is looked up by code-object identity in a table built once, so describing 10,000
tasks stays cheap; answers for the same primitive are shared within one collect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from inspector.agent.frames import is_own_code
from inspector.agent.library_waits import in_library_terms
from inspector.agent.library_waits import refresh_known as refresh_known_clients
from inspector.agent.locks import LockTracker, asyncio_class, original_method
from inspector.agent.pools import Chain, RequestOf, pool_wait
from inspector.agent.pools import refresh_known as refresh_known_pools
from inspector.frame_kinds import is_application
from inspector.model import WaitInfo
from inspector.plurals import plural

REFINE_DEPTH: Final = 4
"""How many frames above the innermost one may refine a description."""

_TASK_TYPES: tuple[type, ...] = tuple(
    {asyncio.Task, getattr(asyncio.tasks, "_PyTask", asyncio.Task)}
)
_CONCURRENT_FUTURE = concurrent.futures.Future


class WaitContext:
    """Per-collect state shared by every description: the loop, lock owners, caches."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        locks: LockTracker | None = None,
        chain: Chain | None = None,
        request_of: RequestOf | None = None,
    ) -> None:
        self.loop = loop
        self.locks = locks
        self.chain = chain
        """How to read another task's await chain (to find who holds a pool's connections)."""
        self.request_of = request_of
        """The label of the request a task serves ("GET /images/{id}"), where one is known."""
        self.table = _table.fresh()
        refresh_known_pools()
        refresh_known_clients()
        self.caller: types.FrameType | None = None
        """The frame that awaits the innermost one (set per description: a suspended coroutine
        frame has no `f_back`)."""
        self._shared: dict[tuple[Any, ...], WaitInfo] = {}
        self._futures_in_threads: dict[int, tuple[int, str]] | None = None

    def cached(self, key: tuple[Any, ...]) -> WaitInfo | None:
        return self._shared.get(key)

    def shared(self, key: tuple[Any, ...], build: Callable[[], WaitInfo]) -> WaitInfo:
        """One answer per primitive per collect: every waiter of a lock gets the same object."""
        info = self._shared.get(key)
        if info is None:
            info = build()
            self._shared[key] = info
        return info

    def worker_of(self, future: concurrent.futures.Future[Any]) -> tuple[int, str] | None:
        """(thread id, function) of the executor thread running `future`'s work item, if one
        is running it; the threads are scanned once per collect, and only if asked."""
        if self._futures_in_threads is None:
            self._futures_in_threads = _map_work_items_to_threads()
        return self._futures_in_threads.get(id(future))


def task_label(task: object) -> str:
    """ "Task-7 (fetch_user)": a task's name and coroutine, for descriptions."""
    try:
        name = task.get_name()  # type: ignore[attr-defined]
        coro = task.get_coro()  # type: ignore[attr-defined]
    except Exception:
        return type(task).__name__
    qualname = getattr(coro, "__qualname__", None) or type(coro).__name__
    return f"{name} ({qualname})"


def _callable_name(func: object) -> str:
    target = _user_callable(func)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    return str(name) if name else type(target).__name__


def _user_callable(func: object) -> object:
    """The function a worker thread runs for the app: through `functools.partial`,
    `Context.run`, the inspector's own wrapper (the threadpool probe passes the app's function
    as its last argument) and a framework's (FastAPI hands the endpoint over as `function=`)."""
    for _ in range(4):
        inner = getattr(func, "func", None)  # functools.partial, as to_thread builds it
        if inner is None:
            return func
        args = getattr(func, "args", ())
        if getattr(inner, "__qualname__", None) == "Context.run":
            func = args[0] if args else inner
            continue
        if _callable_code_is(inner, is_own_code):
            func = args[-1] if args else inner
            continue
        if not _callable_code_is(inner, _is_application_code):
            keywords = getattr(func, "keywords", None) or {}
            handed = (*args, *keywords.values())
            return next((a for a in handed if _callable_code_is(a, _is_application_code)), inner)
        return inner
    return func


def _callable_code_is(func: object, test: Callable[[types.CodeType], bool]) -> bool:
    """`test` of the code object behind a function or bound method; False without one."""
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    return isinstance(code, types.CodeType) and test(code)


def _is_application_code(code: types.CodeType) -> bool:
    return is_application(code.co_filename)


def _locals(frame: types.FrameType) -> Mapping[str, Any]:
    # On 3.13 this is a write-through proxy: only ever read from it.
    return frame.f_locals


def _waiters(primitive: object, attribute: str = "_waiters") -> int:
    waiters = getattr(primitive, attribute, None)
    return len(waiters) if waiters is not None else 0


# --- describing each kind ----------------------------------------------------------------------

Handler = Callable[[types.FrameType, Any, WaitContext, "WaitInfo | None"], "WaitInfo | None"]


def _holder_text(task: asyncio.Task[Any] | None) -> str:
    if task is None:
        return "holder unknown"
    if task.done():
        return f"held by finished task {task_label(task)}, never released"
    return f"held by {task_label(task)}"


def _asyncio_lock(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    lock = _locals(frame).get("self")
    if lock is None:
        return WaitInfo(kind="lock", description="asyncio.Lock")

    def build() -> WaitInfo:
        holder = ctx.locks.lock_holder(lock) if ctx.locks is not None else None
        waiters = _waiters(lock)
        if holder is not None and holder.task is not None:
            state = _holder_text(holder.task)
        elif holder is not None:
            state = "held by a task that has ended, never released"
        elif lock.locked():
            state = "holder unknown" if ctx.locks is not None else "lock tracking off"
        else:
            state = "being handed over"
        return WaitInfo(
            kind="lock",
            description=f"{type(lock).__name__} {state}; {waiters} waiting",
            object_id=id(lock),
            holder_task_ids=(holder.task_id,) if holder is not None else (),
            waiters=waiters,
        )

    return ctx.shared(("lock", id(lock)), build)


def _asyncio_semaphore(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    semaphore = _locals(frame).get("self")
    if semaphore is None:
        return WaitInfo(kind="semaphore", description="asyncio.Semaphore")

    def build() -> WaitInfo:
        value = getattr(semaphore, "_value", None)
        waiters = _waiters(semaphore)
        holders = ctx.locks.semaphore_holders(semaphore) if ctx.locks is not None else None
        parts = [f"{type(semaphore).__name__} value {value}", f"{waiters} waiting"]
        holder_ids: tuple[int, ...] = ()
        if holders is not None:
            holder_ids = tuple(id(task) for task in holders.live)
            if holders.live:
                names = ", ".join(task_label(task) for task in holders.live[:5])
                more = f" and {len(holders.live) - 5} more" if len(holders.live) > 5 else ""
                parts.append(f"held by {names}{more}")
            if holders.finished:
                parts.append(
                    f"{holders.finished} permit(s) taken by finished tasks and never released"
                    + (" (leaked)" if value == 0 and not holders.live else "")
                )
        return WaitInfo(
            kind="semaphore",
            description="; ".join(parts),
            object_id=id(semaphore),
            holder_task_ids=holder_ids,
            waiters=waiters,
        )

    return ctx.shared(("semaphore", id(semaphore)), build)


def _caller_suffix(caller: types.FrameType | None) -> str:
    if caller is None or is_application(caller.f_code.co_filename):
        return ""
    code = caller.f_code
    return f" (in {getattr(code, 'co_qualname', None) or code.co_name})"


def _asyncio_event(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    event = _locals(frame).get("self")
    if event is None:
        return WaitInfo(kind="event", description="asyncio.Event")
    return _event_info(event, ctx, ctx.caller)


def _event_info(event: Any, ctx: WaitContext, caller: types.FrameType | None) -> WaitInfo:
    caller_key = id(caller.f_code) if caller is not None else None
    info = ctx.cached(("event", id(event), caller_key))
    if info is not None:
        return info

    def build() -> WaitInfo:
        is_set = bool(getattr(event, "_value", False))
        waiters = _waiters(event)
        state = "set" if is_set else "not set"
        return WaitInfo(
            kind="event",
            description=f"{type(event).__name__} {state}; {waiters} waiting"
            + _caller_suffix(caller),
            object_id=id(event),
            waiters=waiters,
            is_set=is_set,
        )

    return ctx.shared(("event", id(event), caller_key), build)


def _asyncio_condition(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    condition = _locals(frame).get("self")
    if condition is None:
        return WaitInfo(kind="condition", description="asyncio.Condition")

    def build() -> WaitInfo:
        waiters = _waiters(condition)
        return WaitInfo(
            kind="condition",
            description=f"{type(condition).__name__} waiting to be notified; {waiters} waiting",
            object_id=id(condition),
            waiters=waiters,
        )

    return ctx.shared(("condition", id(condition)), build)


def _queue_get(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    queue = _locals(frame).get("self")
    if queue is None:
        return WaitInfo(kind="queue-get", description="asyncio.Queue.get()")

    def build() -> WaitInfo:
        getters = _waiters(queue, "_getters")
        size = queue.qsize()
        return WaitInfo(
            kind="queue-get",
            description=(
                f"{type(queue).__name__}.get(): {plural(size, 'item')}, "
                f"{plural(getters, 'getter')} waiting"
            ),
            object_id=id(queue),
            waiters=getters,
        )

    return ctx.shared(("queue-get", id(queue)), build)


def _queue_put(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    queue = _locals(frame).get("self")
    if queue is None:
        return WaitInfo(kind="queue-put", description="asyncio.Queue.put()")

    def build() -> WaitInfo:
        putters = _waiters(queue, "_putters")
        return WaitInfo(
            kind="queue-put",
            description=f"{type(queue).__name__}.put(): full ({queue.qsize()}/{queue.maxsize}"
            f" items), {plural(putters, 'putter')} waiting",
            object_id=id(queue),
            waiters=putters,
        )

    return ctx.shared(("queue-put", id(queue)), build)


def _queue_join(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    queue = _locals(frame).get("self")
    if queue is None:
        return below

    def build() -> WaitInfo:
        unfinished = getattr(queue, "_unfinished_tasks", None)
        return WaitInfo(
            kind="queue-join",
            description=f"{type(queue).__name__}.join(): {unfinished} unfinished items "
            f"({queue.qsize()} queued)",
            object_id=id(queue),
            waiters=below.waiters if below is not None else None,
        )

    return ctx.shared(("queue-join", id(queue)), build)


def _sleep(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    values = _locals(frame)
    delay = values.get("delay")
    remaining: float | None = None
    handle = values.get("h")
    if handle is not None:
        try:
            remaining = max(0.0, float(handle.when()) - ctx.loop.time())
        except Exception:
            remaining = None
    if isinstance(delay, (int, float)):
        # uvloop's clock is coarse (cached per loop iteration): never report more than asked.
        longest = max(0.0, float(delay)) if fut is not None else 0.0
        remaining = longest if remaining is None else min(remaining, longest)
    left = f": {remaining:.3g} s left" if remaining is not None else ""
    return WaitInfo(kind="sleep", description=f"asyncio.sleep({delay}){left}", remaining=remaining)


def _awaited_task(task: Any, prefix: str = "awaits task") -> WaitInfo:
    return WaitInfo(
        kind="task",
        description=f"{prefix} {task_label(task)}",
        object_id=id(task),
        awaited_task_ids=(id(task),),
    )


def _wait_for(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    values = _locals(frame)
    inner = values.get("fut")
    timeout = values.get("timeout")
    if isinstance(inner, _TASK_TYPES):
        return _awaited_task(inner, f"wait_for(timeout={timeout}) awaits task")
    return None


def _wait_many(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    values = _locals(frame)
    futures = list(values.get("fs") or ())
    done = sum(1 for f in futures if f.done())
    ids = tuple(id(f) for f in futures if isinstance(f, _TASK_TYPES))
    return WaitInfo(
        kind="gather",
        description=f"asyncio.wait() on {len(futures)} ({done} done), "
        f"return_when={values.get('return_when')}",
        awaited_task_ids=ids,
    )


def _children_info(kind: Any, label: str, children: Iterable[Any], object_id: int) -> WaitInfo:
    children = list(children)
    done = sum(1 for child in children if child.done())
    ids = tuple(id(child) for child in children if isinstance(child, _TASK_TYPES))
    return WaitInfo(
        kind=kind,
        description=f"{label} of {len(children)} ({done} done)",
        object_id=object_id,
        awaited_task_ids=ids,
    )


def _task_group(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    group = _locals(frame).get("self")
    tasks = list(getattr(group, "_tasks", None) or ())
    module = type(group).__module__.split(".")[0]
    return _children_info("taskgroup", f"{module} TaskGroup", tasks, id(group))


def _to_thread(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    func = _locals(frame).get("func")
    return _thread_future(fut, ctx, f"to_thread({_callable_name(func)})")


def _thread_future(fut: Any, ctx: WaitContext, label: str | None = None) -> WaitInfo:
    """A Future chained to a concurrent.futures.Future (`run_in_executor`, `wrap_future`)."""
    source = _concurrent_source(fut)
    worker = ctx.worker_of(source) if source is not None else None
    thread_id = worker[0] if worker is not None else None
    if label is None:
        label = f"run_in_executor({worker[1]})" if worker is not None else "run_in_executor()"
    if worker is not None:
        where = f" in thread {thread_id}"
    elif source is not None and not source.running():
        where = " (queued for a worker thread)"
    else:
        where = ""
    return WaitInfo(
        kind="thread",
        description=f"{label}{where}",
        object_id=id(source) if source is not None else None,
        thread_id=thread_id,
    )


def _anyio_worker_thread(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    values = _locals(frame)
    worker = values.get("worker")
    func = values.get("func")
    if worker is None or fut is None:
        return below  # still waiting for a limiter token: an inner frame says so
    thread_id = getattr(worker, "ident", None)
    name = getattr(worker, "name", "worker thread")
    return WaitInfo(
        kind="thread",
        description=f"anyio to_thread.run_sync({_callable_name(func)}) in {name} {thread_id}",
        object_id=id(fut),
        thread_id=thread_id,
    )


def _anyio_limiter(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    limiter = _locals(frame).get("self")
    if limiter is None:
        return below

    def build() -> WaitInfo:
        borrowers = list(getattr(limiter, "_borrowers", ()) or ())
        waiting = len(getattr(limiter, "_wait_queue", ()) or ())
        total = getattr(limiter, "_total_tokens", "?")
        return WaitInfo(
            kind="limiter",
            description=f"anyio CapacityLimiter: {len(borrowers)}/{total} tokens borrowed, "
            f"{waiting} waiting",
            object_id=id(limiter),
            holder_task_ids=tuple(id(b) for b in borrowers if isinstance(b, _TASK_TYPES)),
            waiters=waiting,
        )

    return ctx.shared(("limiter", id(limiter)), build)


def _anyio_lock(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    lock = _locals(frame).get("self")
    if lock is None:
        return WaitInfo(kind="lock", description="anyio.Lock")

    def build() -> WaitInfo:
        owner = getattr(lock, "_owner_task", None)
        waiters = _waiters(lock)
        return WaitInfo(
            kind="lock",
            description=f"anyio.Lock {_holder_text(owner)}; {waiters} waiting",
            object_id=id(lock),
            holder_task_ids=(id(owner),) if owner is not None else (),
            waiters=waiters,
        )

    return ctx.shared(("lock", id(lock)), build)


def _anyio_semaphore(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    semaphore = _locals(frame).get("self")
    if semaphore is None:
        return WaitInfo(kind="semaphore", description="anyio.Semaphore")

    def build() -> WaitInfo:
        waiters = _waiters(semaphore)
        return WaitInfo(
            kind="semaphore",
            description=f"anyio.Semaphore value {getattr(semaphore, '_value', '?')}; "
            f"{waiters} waiting",
            object_id=id(semaphore),
            waiters=waiters,
        )

    return ctx.shared(("semaphore", id(semaphore)), build)


def _anyio_event(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    event = _locals(frame).get("self")
    inner = getattr(event, "_event", None)
    if inner is None:
        return below
    return _event_info(inner, ctx, None)


def _memory_stream(direction: str) -> Handler:
    def describe(
        frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
    ) -> WaitInfo | None:
        stream = _locals(frame).get("self")
        state = getattr(stream, "_state", None)
        buffer = getattr(state, "buffer", None)
        size = len(buffer) if buffer is not None else "?"
        limit = getattr(state, "max_buffer_size", "?")
        return WaitInfo(
            kind="stream",
            description=f"anyio memory object stream {direction} ({size}/{limit} buffered)",
            object_id=id(state) if state is not None else None,
        )

    return describe


def _stream_reader(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    values = _locals(frame)
    reader = values.get("self")
    operation = values.get("func_name") or "read"
    return WaitInfo(
        kind="stream",
        description=f"{type(reader).__name__}.{operation}() waiting for data",
        object_id=id(reader) if reader is not None else None,
    )


def _socket_operation(
    frame: types.FrameType, fut: Any, ctx: WaitContext, below: WaitInfo | None
) -> WaitInfo | None:
    code = frame.f_code
    sock = _locals(frame).get("sock")
    fileno = sock.fileno() if sock is not None and hasattr(sock, "fileno") else None
    return WaitInfo(
        kind="stream",
        description=f"loop.{code.co_name}() on socket fd {fileno}",
        object_id=id(sock) if sock is not None else None,
    )


# --- the table ---------------------------------------------------------------------------------


def _code_of(obj: object) -> types.CodeType | None:
    for _ in range(8):
        wrapped = getattr(obj, "__wrapped__", None) or getattr(obj, "__func__", None)
        if wrapped is None:
            break
        obj = wrapped
    code = getattr(obj, "__code__", None)
    return code if isinstance(code, types.CodeType) else None


def _resolve(module_name: str, path: str) -> types.CodeType | None:
    module = sys.modules.get(module_name)  # never import: only describe what the app uses
    obj: object = module
    for part in path.split("."):
        if obj is None:
            return None
        obj = getattr(obj, part, None)
    return _code_of(obj) if obj is not None else None


_LEAF_SPECS: Final[tuple[tuple[str, str, Handler], ...]] = (
    ("asyncio.locks", "Event.wait", _asyncio_event),
    ("asyncio.locks", "Condition.wait", _asyncio_condition),
    ("asyncio.queues", "Queue.get", _queue_get),
    ("asyncio.queues", "Queue.put", _queue_put),
    ("asyncio.tasks", "sleep", _sleep),
    ("asyncio.tasks", "wait_for", _wait_for),
    ("asyncio.tasks", "_wait", _wait_many),
    ("asyncio.taskgroups", "TaskGroup.__aexit__", _task_group),
    ("asyncio.threads", "to_thread", _to_thread),
    ("asyncio.streams", "StreamReader._wait_for_data", _stream_reader),
    ("asyncio.selector_events", "BaseSelectorEventLoop.sock_recv", _socket_operation),
    ("asyncio.selector_events", "BaseSelectorEventLoop.sock_recv_into", _socket_operation),
    ("asyncio.selector_events", "BaseSelectorEventLoop.sock_recvfrom", _socket_operation),
    ("asyncio.selector_events", "BaseSelectorEventLoop.sock_sendall", _socket_operation),
    ("asyncio.selector_events", "BaseSelectorEventLoop.sock_accept", _socket_operation),
    ("asyncio.selector_events", "BaseSelectorEventLoop.sock_connect", _socket_operation),
    ("anyio._backends._asyncio", "Lock.acquire", _anyio_lock),
    ("anyio._backends._asyncio", "Semaphore.acquire", _anyio_semaphore),
    ("anyio._backends._asyncio", "TaskGroup.__aexit__", _task_group),
    (
        "anyio._backends._asyncio",
        "AsyncIOBackend.run_sync_in_worker_thread",
        _anyio_worker_thread,
    ),
)
_REFINER_SPECS: Final[tuple[tuple[str, str, Handler], ...]] = (
    ("asyncio.queues", "Queue.join", _queue_join),
    ("anyio._backends._asyncio", "Event.wait", _anyio_event),
    ("anyio._backends._asyncio", "CapacityLimiter.acquire_on_behalf_of", _anyio_limiter),
    ("anyio.streams.memory", "MemoryObjectReceiveStream.receive", _memory_stream("receive")),
    ("anyio.streams.memory", "MemoryObjectSendStream.send", _memory_stream("send")),
)


class _Table:
    """Known waiting functions by `id()` of their code object (code objects hash slowly); the
    code objects themselves are kept in `pinned` so that those ids stay theirs."""

    def __init__(self) -> None:
        self.leaves: dict[int, Handler] = {}
        self.refiners: dict[int, Handler] = {}
        self.pinned: list[types.CodeType] = []
        self.anyio_loaded = False

    def build(self) -> None:
        self.anyio_loaded = "anyio._backends._asyncio" in sys.modules
        pinned: list[types.CodeType] = []
        leaves: dict[int, Handler] = {}
        # asyncio's own classes, whatever `asyncio.Lock` names now: a wait ends in their code.
        primitives: tuple[tuple[str, Handler], ...] = (
            ("Lock", _asyncio_lock),
            ("Semaphore", _asyncio_semaphore),
        )
        for class_name, handler in primitives:
            try:
                code = _code_of(original_method(asyncio_class(class_name), "acquire"))
            except (LookupError, AttributeError):
                continue
            if code is not None:
                pinned.append(code)
                leaves[id(code)] = handler
        refiners: dict[int, Handler] = {}
        for specs, table in ((_LEAF_SPECS, leaves), (_REFINER_SPECS, refiners)):
            for module, path, spec_handler in specs:
                code = _resolve(module, path)
                if code is not None:
                    pinned.append(code)
                    table[id(code)] = spec_handler
        self.pinned, self.leaves, self.refiners = pinned, leaves, refiners

    def fresh(self) -> _Table:
        if not self.leaves or (not self.anyio_loaded and "anyio._backends._asyncio" in sys.modules):
            self.build()
        return self


_table = _Table()


# --- futures -------------------------------------------------------------------------------------


def _concurrent_source(fut: Any) -> concurrent.futures.Future[Any] | None:
    """The concurrent.futures.Future an asyncio Future was chained to by `wrap_future`."""
    for entry in getattr(fut, "_callbacks", None) or ():
        callback = entry[0] if isinstance(entry, tuple) else entry
        for cell in getattr(callback, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(value, _CONCURRENT_FUTURE):
                return value
    return None


def _map_work_items_to_threads() -> dict[int, tuple[int, str]]:
    """id(concurrent future) -> (thread id, function), for each executor thread running a job."""
    found: dict[int, tuple[int, str]] = {}
    work_item = getattr(sys.modules.get("concurrent.futures.thread"), "_WorkItem", None)
    run_code = _code_of(getattr(work_item, "run", None))
    if run_code is None:
        return found
    for thread_id, frame in sys._current_frames().items():
        depth = 0
        current: types.FrameType | None = frame
        while current is not None and depth < 256:
            if current.f_code is run_code:
                item = current.f_locals.get("self")  # read only
                future = getattr(item, "future", None)
                if future is not None:
                    found[id(future)] = (thread_id, _callable_name(getattr(item, "fn", None)))
                break
            current = current.f_back
            depth += 1
    return found


def _describe_future(fut: Any, innermost: types.FrameType | None, ctx: WaitContext) -> WaitInfo:
    if isinstance(fut, _TASK_TYPES):
        return _awaited_task(fut)
    children = getattr(fut, "_children", None)
    if children is not None and type(fut).__name__ == "_GatheringFuture":
        return _children_info("gather", "gather", children, id(fut))
    if _concurrent_source(fut) is not None:
        return _thread_future(fut, ctx)
    where = ""
    if innermost is not None:
        code = innermost.f_code
        where = f" awaited in {getattr(code, 'co_qualname', None) or code.co_name}"
    state = "pending" if not fut.done() else "done"
    return WaitInfo(
        kind="future",
        description=f"{type(fut).__name__} {state}{where}",
        object_id=id(fut),
    )


# --- entry point ---------------------------------------------------------------------------------


def describe_wait(
    frames: list[types.FrameType],
    fut: Any,
    ctx: WaitContext,
    leaf: object | None = None,
) -> WaitInfo | None:
    """What a suspended task waits for.

    `frames` are the coroutine frames of its await chain, outermost first; `fut` the Future it is
    parked on (`task._fut_waiter`, or None); `leaf` the non-coroutine object the chain ended in,
    if any. Returns None for a task that waits for nothing (ready to run).
    """
    info: WaitInfo | None = None
    innermost = frames[-1] if frames else None
    if innermost is not None:
        handler = ctx.table.leaves.get(id(innermost.f_code))
        if handler is not None:
            ctx.caller = frames[-2] if len(frames) > 1 else None
            info = handler(innermost, fut, ctx, None)
            if info is not None and info.kind == "event" and len(frames) > 1:
                info = _refine(frames, fut, ctx, info)
    if info is None and fut is not None:
        info = _describe_future(fut, innermost, ctx)
    if info is None and leaf is not None:
        info = WaitInfo(kind="unknown", description=f"awaits {type(leaf).__name__}")
    if fut is not None or info is not None:
        pooled = pool_wait(frames, info, ctx.loop, ctx.chain, ctx.shared, ctx.request_of)
        if pooled is not None:
            return pooled
        return in_library_terms(frames, info) or info
    return info


def _refine(frames: list[types.FrameType], fut: Any, ctx: WaitContext, info: WaitInfo) -> WaitInfo:
    """Let the library frames right above an Event wait say what the Event stands for (a queue
    join, an anyio limiter or memory stream). Each refiner awaits the next one inward, so the walk
    stops at the first frame that is not one."""
    refiners = ctx.table.refiners
    refined: WaitInfo | None = info
    index = len(frames) - 2
    stop = max(-1, index - REFINE_DEPTH)
    while index > stop:
        refiner = refiners.get(id(frames[index].f_code))
        if refiner is None:
            break
        refined = refiner(frames[index], fut, ctx, refined)
        index -= 1
    return refined if refined is not None else info
