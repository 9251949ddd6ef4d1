"""Exceptions nobody saw: recorded without changing what the stdlib prints or retrieves.

Sources, each chained in front of what was there so the server behaves and logs exactly as
without the agent:

* the loop's exception handler: "Task exception was never retrieved" (and the future variant).
  Ours records, then calls the previous handler or `loop.default_exception_handler`, which logs
  the standard line. An app that sets a handler of its own later (often in its lifespan) gets it
  chained behind ours instead of replacing it (`_LoopHandler`);
* tasks created while serving a request that failed and are still referenced (so the stdlib never
  reports them): their state is read from `task._exception` / `task._log_traceback`, never through
  `task.exception()`, which would mark the exception retrieved;
* coroutines never awaited: CPython reports them through `warnings._warn_unawaited_coroutine`.
  We install a copy of that very function whose `warn` global records before warning, one frame
  higher, so the RuntimeWarning names the same file and line as without the agent;
* records logged at ERROR or above with an exception, through a chained log-record factory (a
  handler on the root logger would silence logging's last-resort stderr output, and would miss
  uvicorn's own loggers, which do not propagate);
* failed background tasks (reported here by the background probe) and, opt-in on Python >= 3.12,
  exceptions swallowed in application code (`swallowed.py`).

Identical events (same kind, type and location) are folded into one with a count; the log keeps
`max_history` distinct events, dropping the oldest.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import threading
import time
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from inspector.agent.frames import frame_at, innermost_application_frame, is_own_code, stack_of
from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions
from inspector.agent.probes.current import current_request
from inspector.agent.probes.records import RequestRecord
from inspector.agent.probes.tracker import RequestTracker, request_now
from inspector.frame_kinds import is_application
from inspector.model import ExceptionEvent, ExceptionInfo, ExceptionKind, Frame

if TYPE_CHECKING:
    from inspector.agent.probes.background import BackgroundJobs
    from inspector.agent.probes.tasklinks import RequestTaskTable

MAX_TRACEBACK: Final = 40
"""Frames kept per traceback (the innermost ones)."""
_MAX_MESSAGE: Final = 2000
_RECENT_EXCEPTIONS: Final = 256
"""Exception objects (by id) already recorded: a later log line about one is not a second event."""

_NEVER_RETRIEVED: Final = ("exception was never retrieved",)
_DESTROYED_PENDING: Final = "Task was destroyed but it is pending"
_MAX_DEPTH: Final = 32
"""Innermost frames kept of a destroyed task's await chain."""
_AGENT_LOGGERS: Final = ("inspector", "aiomonitor")
"""The agent's own errors go to its health report, not to the app's exceptions."""


def exception_info(exc: BaseException, limit: int = MAX_TRACEBACK) -> ExceptionInfo:
    """An exception as model data: type, bounded message, traceback (innermost frame last)."""
    return ExceptionInfo(
        type=type(exc).__qualname__,
        message=_message(exc),
        traceback=traceback_frames(exc.__traceback__, limit),
    )


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable>"
    leaves = getattr(exc, "exceptions", None)
    if isinstance(leaves, tuple) and leaves and isinstance(exc, BaseException):
        # An ExceptionGroup's message hides what actually failed; name the leaves.
        named = ", ".join(_leaf_text(leaf) for leaf in leaves[:5])
        text = f"{text}: {named}"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _leaf_text(exc: Any) -> str:
    try:
        return f"{type(exc).__qualname__}({str(exc)!r})"
    except Exception:
        return type(exc).__qualname__


def traceback_frames(tb: TracebackType | None, limit: int = MAX_TRACEBACK) -> tuple[Frame, ...]:
    """The frames of a traceback, outermost first, keeping the innermost `limit` (the
    inspector's own left out)."""
    frames: list[Frame] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if not is_own_code(code):
            frames.append(frame_at(code, tb.tb_lineno))
        tb = tb.tb_next
    return tuple(frames[-limit:])


def application_location(exc: BaseException) -> Frame | None:
    """The innermost application frame where `exc` (or, for a group, its first leaf) was raised."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        found = None
        tb = current.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if is_application(code.co_filename):
                found = (code, tb.tb_lineno)
            tb = tb.tb_next
        if found is not None:
            return frame_at(*found)
        leaves = getattr(current, "exceptions", None)
        current = leaves[0] if isinstance(leaves, tuple) and leaves else None
        seen += 1
    return None


class _Entry:
    """One folded event, mutable so that a repeat costs a few attribute updates."""

    __slots__ = (
        "id",
        "kind",
        "info",
        "location",
        "at",
        "count",
        "request_id",
        "request_label",
        "task_name",
        "event",
    )

    def __init__(
        self,
        event_id: int,
        kind: ExceptionKind,
        info: ExceptionInfo,
        location: Frame | None,
        at: float,
        request_id: int | None,
        request_label: str | None,
        task_name: str | None,
    ) -> None:
        self.id = event_id
        self.kind = kind
        self.info = info
        self.location = location
        self.at = at
        self.count = 1
        self.request_id = request_id
        self.request_label = request_label
        self.task_name = task_name
        self.event: ExceptionEvent | None = None

    def to_event(self) -> ExceptionEvent:
        event = self.event
        if event is None or event.count != self.count:
            event = self.event = ExceptionEvent(
                id=self.id,
                kind=self.kind,
                at=self.at,
                error=self.info,
                location=self.location,
                request_id=self.request_id,
                request_label=self.request_label,
                task_name=self.task_name,
                count=self.count,
            )
        return event


class ExceptionLog:
    """The bounded, folded history of exceptions nobody saw. Thread-safe: events come from
    finalizers and worker threads as well as the loop."""

    def __init__(self, max_history: int, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._limit = max(1, max_history)
        self._events: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._recent: OrderedDict[int, str] = OrderedDict()
        self.context: AgentContext | None = None

    def record_exception(
        self,
        kind: ExceptionKind,
        exc: BaseException,
        *,
        request: RequestRecord | None = None,
        request_id: int | None = None,
        request_label: str | None = None,
        task_name: str | None = None,
        location: Frame | None = None,
    ) -> None:
        """Record `exc` once; a later event about the same exception object is ignored."""
        if not self.claim(exc):
            return
        info = exception_info(exc)
        if location is None:
            location = application_location(exc)
        self.record(
            kind,
            info,
            location=location,
            request=request,
            request_id=request_id,
            request_label=request_label,
            task_name=task_name,
        )

    def claim(self, exc: BaseException) -> bool:
        """True the first time an exception object is seen (by id and type, bounded memory)."""
        key = id(exc)
        name = type(exc).__qualname__
        with self._lock:
            if self._recent.get(key) == name:
                return False
            self._recent[key] = name
            if len(self._recent) > _RECENT_EXCEPTIONS:
                self._recent.popitem(last=False)
        return True

    def seen(self, exc: BaseException) -> bool:
        with self._lock:
            return self._recent.get(id(exc)) == type(exc).__qualname__

    def record(
        self,
        kind: ExceptionKind,
        info: ExceptionInfo,
        *,
        location: Frame | None = None,
        request: RequestRecord | None = None,
        request_id: int | None = None,
        request_label: str | None = None,
        task_name: str | None = None,
        at: float | None = None,
    ) -> None:
        if request is not None:
            request_id, request_label = request.id, request.label
        when = self.clock() if at is None else at
        if location is not None:
            key: tuple[Any, ...] = (kind, info.type, location.file, location.line)
        else:
            key = (kind, info.type, info.message)
        with self._lock:
            entry = self._events.get(key)
            if entry is not None:
                entry.at = when
                entry.count += 1
                if request_id is not None:
                    entry.request_id, entry.request_label = request_id, request_label
                return
            while len(self._events) >= self._limit:
                self._events.popitem(last=False)  # the oldest first seen goes first
                if self.context is not None:
                    self.context.record_dropped()
            self._events[key] = _Entry(
                next(self._ids), kind, info, location, when, request_id, request_label, task_name
            )

    def events(self) -> tuple[ExceptionEvent, ...]:
        with self._lock:
            events = [entry.to_event() for entry in self._events.values()]
        events.sort(key=lambda event: event.id)
        return tuple(events)


_SET_HANDLER: Final = "set_exception_handler"
_GET_HANDLER: Final = "get_exception_handler"
RECHAIN_INTERVAL: Final = 0.25
"""Seconds between checks, on the loop, for a handler set behind the agent's back."""

LoopExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class _LoopHandler:
    """The agent's loop exception handler, with the app's own handler chained behind it.

    A loop has one exception handler. An app that sets its own after the agent started (in its
    lifespan, say) would silently replace ours, and unretrieved task exceptions would vanish
    from the report. So the loop's `set_exception_handler`/`get_exception_handler` are shadowed
    on the loop object itself (asyncio's loops and uvloop's both take instance attributes): a
    handler the app sets becomes the one ours hands over to, once per exception, and the app
    reads back exactly what it set. A handler set past the shadows (through the class, or on a
    loop that takes no attributes) is found by a check every `RECHAIN_INTERVAL` seconds on the
    loop's thread and chained the same way (an exception in between reaches only the app's
    handler; on such a loop the app reads back ours).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_exception: Callable[[dict[str, Any]], None],
        record_error: Callable[[str], None],
    ) -> None:
        self.loop = loop
        self.active = True
        self.shadowed = False
        # Whatever the loop answers to now: its class's methods, or an earlier shadow.
        self._set: Callable[[LoopExceptionHandler | None], None] = loop.set_exception_handler
        self._get: Callable[[], LoopExceptionHandler | None] = loop.get_exception_handler
        self.app_handler: LoopExceptionHandler | None = self._get()
        """The handler the app set (None: asyncio's default), called after ours records."""
        self._on_exception = on_exception
        self._record_error = record_error
        self._inside = threading.local()
        self._timer: asyncio.TimerHandle | None = None
        # Bound once, so that close() recognises its own shadows by identity.
        self.handle_bound = self.handle
        self.set_bound = self.set_handler
        self.get_bound = self.get_handler

    def install(self) -> None:
        self._set(self.handle_bound)
        try:
            setattr(self.loop, _SET_HANDLER, self.set_bound)
            setattr(self.loop, _GET_HANDLER, self.get_bound)
            self.shadowed = True
        except (AttributeError, TypeError):
            self._unshadow()
        self._timer = self.loop.call_later(RECHAIN_INTERVAL, self._rechain)

    def handle(self, loop: asyncio.AbstractEventLoop, details: dict[str, Any]) -> None:
        """Record, then hand over to the app's handler or asyncio's default, as without us."""
        if getattr(self._inside, "active", False):
            # The app's handler calls the handler it found before its own, and that was ours
            # (possible only on a loop we could not shadow): that one was asyncio's default.
            loop.default_exception_handler(details)
            return
        if self.active:
            try:
                self._on_exception(details)
            except Exception as error:
                self._record_error(f"exceptions: loop handler: {error!r}")
        behind = self.app_handler
        if behind is None:
            loop.default_exception_handler(details)
            return
        self._inside.active = True
        try:
            behind(loop, details)  # its own errors are the app's: asyncio reports them as before
        finally:
            self._inside.active = False

    def set_handler(self, handler: LoopExceptionHandler | None) -> None:
        """`loop.set_exception_handler` while installed: `handler` goes behind ours."""
        self._set(handler)  # refused exactly as the loop refuses it (not callable: TypeError)
        if self.active:
            self.app_handler = handler
            self._set(self.handle_bound)

    def get_handler(self) -> LoopExceptionHandler | None:
        """`loop.get_exception_handler` while installed: what the app set, not ours."""
        return self.app_handler if self.active else self._get()

    def _rechain(self) -> None:
        """On the loop thread: put a handler set behind our back behind ours."""
        self._timer = None
        if not self.active:
            return
        try:
            current = self._get()
            if current is not self.handle_bound:
                self.app_handler = current
                self._set(self.handle_bound)
            self._timer = self.loop.call_later(RECHAIN_INTERVAL, self._rechain)
        except Exception as error:  # a closing loop; the handler stays as it is
            self._record_error(f"exceptions: loop handler check: {error!r}")

    def _unshadow(self) -> None:
        """Remove our shadows that are still in place (one set on top of ours stays)."""
        try:
            attributes = vars(self.loop)
        except TypeError:
            return
        for name, ours in ((_SET_HANDLER, self.set_bound), (_GET_HANDLER, self.get_bound)):
            if attributes.get(name) is ours:
                delattr(self.loop, name)

    def close(self, loop_thread_id: int) -> None:
        """Leave the app's latest handler (or none) on the loop, as if we had never been there."""
        self.active = False
        self._unshadow()
        if self._get() is self.handle_bound:
            self._set(self.app_handler)
        timer, self._timer = self._timer, None
        if timer is None or self.loop.is_closed():
            return  # inactive, the check would not schedule itself again anyway
        if threading.get_ident() == loop_thread_id:
            timer.cancel()
        else:
            self.loop.call_soon_threadsafe(timer.cancel)


class ExceptionsProbe:
    """Hooks the places where Python and asyncio report exceptions nobody handled."""

    name = "exceptions"

    def __init__(
        self,
        config: AgentConfig,
        log: ExceptionLog,
        tasks: RequestTaskTable | None = None,
        background: BackgroundJobs | None = None,
        requests: RequestTracker | None = None,
    ) -> None:
        self._config = config
        self._requests = requests
        self.log = log
        self._tasks = tasks
        self._background = background
        self._context: AgentContext | None = None
        self._loop_handler: _LoopHandler | None = None
        self._previous_factory: Callable[..., logging.LogRecord] | None = None
        self._factory: Callable[..., logging.LogRecord] | None = None
        self._original_unawaited: Any = None
        self._unawaited: Any = None
        self._active = False

    # --- install / close ---------------------------------------------------------------------

    def install(self, context: AgentContext) -> None:
        self._context = context
        self.log.context = context
        self.log.clock = context.clock
        self._active = True
        for step in (
            self._install_loop_handler,
            self._install_log_factory,
            self._install_unawaited,
        ):
            try:
                step(context)
            except Exception as error:
                context.record_error(f"exceptions: {step.__name__}: {error!r}")

    def close(self) -> None:
        self._active = False
        for step in (self._close_loop_handler, self._close_log_factory, self._close_unawaited):
            try:
                step()
            except Exception as error:  # close must not raise
                if self._context is not None:
                    self._context.record_error(f"exceptions: {step.__name__}: {error!r}")

    def _install_loop_handler(self, context: AgentContext) -> None:
        handler = _LoopHandler(context.loop, self._on_loop_exception, context.record_error)
        self._loop_handler = handler  # first: close() undoes a partial install too
        handler.install()

    def _close_loop_handler(self) -> None:
        handler, self._loop_handler = self._loop_handler, None
        if handler is not None and self._context is not None:
            handler.close(self._context.loop_thread_id)

    def _install_log_factory(self, context: AgentContext) -> None:
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if (
                record.exc_info
                and record.levelno >= logging.ERROR
                and self._active
                and not record.name.startswith(_AGENT_LOGGERS)
            ):
                try:
                    self._on_error_record(record)
                except Exception as error:
                    context.record_error(f"exceptions: log record: {error!r}")
            return record

        logging.setLogRecordFactory(factory)
        self._previous_factory, self._factory = previous, factory

    def _close_log_factory(self) -> None:
        if self._factory is not None and logging.getLogRecordFactory() is self._factory:
            logging.setLogRecordFactory(self._previous_factory)  # type: ignore[arg-type]
        self._factory = None

    def _install_unawaited(self, context: AgentContext) -> None:
        original = getattr(warnings, "_warn_unawaited_coroutine", None)
        code = getattr(original, "__code__", None)
        if not isinstance(original, types.FunctionType) or code is None:
            return
        if "warn" not in code.co_names:
            return
        real_warn_module = warnings

        def warn(
            message: Any, category: Any = None, stacklevel: int = 1, source: Any = None
        ) -> None:
            # Called from inside the stdlib function in place of `warnings.warn`: record, then
            # warn one level higher to skip this frame, so the output is unchanged.
            if self._active and source is not None:
                try:
                    self._on_unawaited(source, sys._getframe(2))
                except Exception as error:
                    context.record_error(f"exceptions: never-awaited: {error!r}")
            real_warn_module.warn(message, category, stacklevel + 1, source)

        namespace = dict(original.__globals__)
        namespace["warn"] = warn
        replacement = types.FunctionType(
            code, namespace, original.__name__, original.__defaults__, original.__closure__
        )
        replacement.__qualname__ = original.__qualname__
        replacement.__kwdefaults__ = original.__kwdefaults__
        warnings._warn_unawaited_coroutine = replacement  # type: ignore[attr-defined]
        self._original_unawaited, self._unawaited = original, replacement

    def _close_unawaited(self) -> None:
        if self._unawaited is not None:
            if getattr(warnings, "_warn_unawaited_coroutine", None) is self._unawaited:
                warnings._warn_unawaited_coroutine = self._original_unawaited  # type: ignore[attr-defined]
        self._unawaited = None

    # --- the events ----------------------------------------------------------------------------

    def _on_loop_exception(self, details: Mapping[str, Any]) -> None:
        if not self._active:
            return
        exc = details.get("exception")
        message = str(details.get("message", ""))
        if message.startswith(_DESTROYED_PENDING):
            self._record_destroyed_pending(details.get("task"))
            return
        if not isinstance(exc, BaseException) or not message.endswith(_NEVER_RETRIEVED):
            return  # other loop errors are logged with exc_info: the log factory records them
        future = details.get("future")
        self._record_task_failure(future, exc)

    def _record_destroyed_pending(self, task: Any) -> None:
        """A pending task the garbage collector took: nothing referenced it, so the rest of its
        work will never run (`create_task(...)` with the result dropped, waiting on a future
        only it knew). Its await chain says where it waited when still intact; usually the
        collector has closed the coroutine first, and its code says which function it ran."""
        if not isinstance(task, asyncio.Task):
            return
        from inspector.agent.tasks import await_chain

        coro = task.get_coro()
        try:
            chain, _ = await_chain(coro)
            stack = tuple(
                frame_at(f.f_code, f.f_lineno) for f in chain if not is_own_code(f.f_code)
            )[-_MAX_DEPTH:]
            name = task.get_name()
        except Exception:  # the task is half torn down: report what can be read
            stack, name = (), None
        location = innermost_application_frame(stack)
        code = getattr(coro, "cr_code", None)
        if location is None and isinstance(code, types.CodeType):
            # The collector usually closes the coroutine before the task's finalizer reports
            # it: its code still says which function it was.
            location = frame_at(code, code.co_firstlineno)
        request_id, request_label = self._creating_request(task)
        qualname = getattr(coro, "__qualname__", None) or "a coroutine"
        info = ExceptionInfo(
            type="Task",
            message=f"{qualname}() was destroyed while pending",
            traceback=stack,
        )
        self.log.record(
            "task-destroyed-pending",
            info,
            location=location,
            request_id=request_id,
            request_label=request_label,
            task_name=name,
        )

    def _creating_request(self, task: asyncio.Task[Any]) -> tuple[int | None, str | None]:
        """The request a dying task was created in: read from the context it was created with
        (its weak references, which the task links use, are already gone)."""
        if self._tasks is not None:
            gone = self._tasks.request_of_gone(task)
            if gone is not None:
                return gone
        get_context = getattr(task, "get_context", None)  # Python >= 3.12
        try:
            request_id = get_context().get(current_request) if get_context is not None else None
        except Exception:
            return None, None
        if request_id is None:
            return None, None
        label = self._requests.label_of(request_id) if self._requests is not None else None
        return request_id, label

    def _record_task_failure(self, future: Any, exc: BaseException) -> None:
        request_id = request_label = task_name = None
        if isinstance(future, asyncio.Task):
            try:
                task_name = future.get_name()
            except Exception:
                task_name = None
            context = self._context
            link = context.link_for(future) if context is not None else None
            if link is not None:
                request_id, request_label = link.request_id, link.request_label
        self.log.record_exception(
            "task-exception-unretrieved",
            exc,
            request_id=request_id,
            request_label=request_label,
            task_name=task_name,
        )

    def _on_error_record(self, record: logging.LogRecord) -> None:
        exc_info = record.exc_info
        exc = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None
        if not isinstance(exc, BaseException):
            return
        request = request_now()
        if request is not None:
            self.log.record_exception("logged-error", exc, request=request)
            return
        escaped = self._requests.request_for_exception(exc) if self._requests else None
        request_id, request_label = escaped if escaped is not None else (None, None)
        if request_id is None:
            request_id = current_request.get()
        self.log.record_exception(
            "logged-error", exc, request_id=request_id, request_label=request_label
        )

    def _on_unawaited(self, coro: Any, gc_frame: types.FrameType | None) -> None:
        name = getattr(coro, "__qualname__", None) or type(coro).__qualname__
        stack = stack_of(gc_frame, MAX_TRACEBACK) if gc_frame is not None else ()
        location = None
        request = request_now()
        request_id = request.id if request is not None else current_request.get()
        request_label = request.label if request is not None else None
        origin = getattr(coro, "cr_origin", None)
        if origin:
            # sys.set_coroutine_origin_tracking_depth() is on (asyncio debug mode): the creating
            # line itself, innermost first.
            for filename, lineno, function in origin:
                if is_application(filename):
                    location = Frame(file=filename, line=lineno, function=function)
                    break
        if location is None and self._background is not None:
            job = self._background.job_for_coroutine(coro)
            if job is not None:
                location = job.call_site
                if job.request_id is not None:
                    request_id, request_label = job.request_id, job.request_label
        if location is None:
            # Where the last reference went away: for the usual forgotten `await` (a call whose
            # result is dropped at once) that is the calling line itself.
            location = innermost_application_frame(stack)
        info = ExceptionInfo(
            type="RuntimeWarning",
            message=f"coroutine '{name}' was never awaited",
            traceback=stack,
        )
        self.log.record(
            "coroutine-never-awaited",
            info,
            location=location,
            request_id=request_id,
            request_label=request_label,
        )

    # --- collect -----------------------------------------------------------------------------

    def _scan_failed_tasks(self) -> None:
        """Report failed, unretrieved tasks created by requests that something still holds."""
        if self._tasks is None:
            return
        for ref in self._tasks.tracked():
            if ref.reported:
                continue
            task = ref()
            if task is None or not task.done() or task.cancelled():
                continue
            exc = getattr(task, "_exception", None)
            if exc is None or not getattr(task, "_log_traceback", False):
                continue
            ref.reported = True
            self._record_task_failure(task, exc)

    def collect(self, context: AgentContext, options: CollectOptions) -> Mapping[str, Any]:
        try:
            self._scan_failed_tasks()
        except Exception as error:
            context.record_error(f"exceptions: task scan: {error!r}")
        return {"exceptions": self.log.events()}
