"""Starlette background tasks, from the line that queued them to what became of them.

While installed, `BackgroundTask.__init__` and `__call__` and the `__call__` of `BackgroundTasks`
(and of subclasses that override it, such as FastAPI's) are wrapped. The wrappers call the
originals and only observe: when and how the work runs is Starlette's business. Each job records
its function, the first application frame that queued it, the request being served, how Starlette
will dispatch it (on the loop or in the threadpool) and its outcome:

* queued → running → done | failed (with traceback) | cancelled;
* skipped: an earlier job of the same `BackgroundTasks` raised, and Starlette stops at the first
  failure, so the rest never ran;
* dropped: the request finished and the job was never run: the endpoint raised (FastAPI only runs
  the injected tasks on success), or the endpoint returned a Response carrying its own
  `background`, which FastAPI keeps instead of the injected `BackgroundTasks`.

A coroutine object or any other non-callable is flagged the moment it is queued, with its line.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sys
import time
import types
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from inspector.agent.frames import frame_of
from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions
from inspector.agent.probes.current import current_job, current_task
from inspector.agent.probes.exceptions import ExceptionLog, application_location, exception_info
from inspector.agent.probes.records import JobRecord, RequestRecord
from inspector.agent.probes.tracker import RequestTracker, request_now
from inspector.frame_kinds import classify
from inspector.model import BackgroundJob, BackgroundState, Frame

_MAX_JOBS_PER_REQUEST: Final = 100
_MAX_RAN_NAMES: Final = 20
_MAX_CALL_SITE_DEPTH: Final = 40
_TASK_TABLE_PRUNE: Final = 256
_FRAMEWORK_DIRS: Final = tuple(os.sep + name + os.sep for name in ("starlette", "fastapi"))
_CALL_IN_ARGUMENT: Final = (
    r"\b(?P<method>add_task|BackgroundTask)\(\s*(?P<await>await\s+)?(?P<func>[\w.]+)"
    r"\((?P<args>.*)\)\s*\)"
)
"""`add_task(send_email(user))`: a call passed where a function was expected (compiled on use)."""


def callable_name(func: Any) -> str:
    """A readable name for what was queued: "send_email", "Mailer.send", a coroutine's name."""
    if type(func) is not types.FunctionType:
        inner = getattr(func, "func", None)  # functools.partial
        if inner is not None and not asyncio.iscoroutine(func):
            func = inner
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if isinstance(name, str):
        return name
    return type(func).__qualname__


class BackgroundJobs:
    """Every job seen, bounded, plus the lookups the wrappers need."""

    def __init__(self, max_history: int, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._ids = itertools.count(1)
        self.history: deque[JobRecord] = deque(maxlen=max(1, max_history))
        # id(BackgroundTask) -> (weak reference, job). Not a WeakKeyDictionary: that costs a
        # Python-level call and a new weak reference per lookup; dead entries are pruned when
        # the table grows.
        self._by_task: dict[int, tuple[weakref.ref[Any], JobRecord]] = {}
        self._coroutines: OrderedDict[int, tuple[Any, Any, JobRecord]] = OrderedDict()
        self._dying: OrderedDict[int, tuple[Any, Any, JobRecord]] = OrderedDict()

    def new(
        self,
        function: str,
        request: RequestRecord | None,
        call_site: Frame | None,
        dispatch: str | None,
    ) -> JobRecord:
        job = JobRecord(next(self._ids), function, self.clock(), request, call_site, dispatch)
        self.history.append(job)
        return job

    def job_of(self, task: Any) -> JobRecord | None:
        entry = self._by_task.get(id(task))
        if entry is not None and entry[0]() is task:
            return entry[1]
        return None

    def remember_task(self, task: Any, job: JobRecord) -> None:
        try:
            ref = weakref.ref(task)
        except TypeError:  # a subclass with __slots__ and no __weakref__
            return
        table = self._by_task
        if len(table) >= _TASK_TABLE_PRUNE:
            for key in [key for key, (old, _) in table.items() if old() is None]:
                del table[key]
            if len(table) >= _TASK_TABLE_PRUNE:  # all alive: keep the newest half
                for key in list(table)[: len(table) // 2]:
                    del table[key]
        table[id(task)] = (ref, job)

    def remember_coroutine(self, coro: Any, job: JobRecord) -> None:
        """Remember a coroutine object queued as a job, to name the job when it is collected."""
        key = id(coro)
        code = getattr(coro, "cr_code", None)

        def died(_: weakref.ref[Any]) -> None:
            # A coroutine's weak references are cleared just before CPython warns that it was
            # never awaited, so the entry moves to `_dying` where the warning finds it.
            entry = self._coroutines.pop(key, None)
            if entry is not None:
                self._dying[key] = entry
                while len(self._dying) > 16:
                    self._dying.popitem(last=False)

        try:
            ref = weakref.ref(coro, died)
        except TypeError:
            return
        self._coroutines[key] = (ref, code, job)
        while len(self._coroutines) > 256:
            self._coroutines.popitem(last=False)

    def job_for_coroutine(self, coro: Any) -> JobRecord | None:
        """The job a coroutine object being collected was (wrongly) queued as, if any."""
        entry = self._dying.pop(id(coro), None)
        if entry is None:
            return None
        _, code, job = entry
        return job if code is getattr(coro, "cr_code", None) else None

    def jobs(self) -> tuple[BackgroundJob, ...]:
        for _ in range(5):
            try:
                records = tuple(self.history)
                break
            except RuntimeError:
                continue
        else:
            return ()
        return tuple(record.to_model() for record in records)


_APPLICATION: Final = 0
_FRAMEWORK: Final = 1
_OTHER: Final = 2
_code_kinds: dict[int, tuple[types.CodeType, int]] = {}
"""Per code object (by id; equal code objects of different files compare equal): application
code, Starlette/FastAPI/inspector, or another library."""


def _code_kind(code: types.CodeType) -> int:
    known = _code_kinds.get(id(code))
    if known is not None and known[0] is code:
        return known[1]
    filename = code.co_filename
    kind_of_file = classify(filename)
    if kind_of_file == "app":
        kind = _APPLICATION
    elif kind_of_file == "inspector" or any(part in filename for part in _FRAMEWORK_DIRS):
        kind = _FRAMEWORK
    else:
        kind = _OTHER
    if len(_code_kinds) >= 4096:
        _code_kinds.clear()
    _code_kinds[id(code)] = (code, kind)
    return kind


def call_site(frame: types.FrameType | None) -> Frame | None:
    """The first application frame from `frame` outwards (the line that queued the job).

    Falls back to the first frame outside Starlette, FastAPI and the inspector, for apps
    installed as packages.
    """
    fallback: types.FrameType | None = None
    depth = 0
    while frame is not None and depth < _MAX_CALL_SITE_DEPTH:
        kind = _code_kind(frame.f_code)
        if kind == _APPLICATION:
            return frame_of(frame)
        if kind == _OTHER and fallback is None:
            fallback = frame
        frame = frame.f_back
        depth += 1
    return frame_of(fallback) if fallback is not None else None


def flag_for(func: Any, via: str, site: Frame | None) -> str | None:
    """Words for a queued object that is not a function, or None when it is fine."""
    if callable(func):  # the common case first: a coroutine object is not callable
        return None
    if asyncio.iscoroutine(func):
        name = getattr(func, "__qualname__", None) or "the function"
        suggestion = _suggest(site, via) or f"{via}({name}, ...)"
        return (
            f"{via}() got a coroutine object, not a function: the coroutine will never run; "
            f"pass the function and its arguments: {suggestion}"
        )
    what = "None" if func is None else f"a {type(func).__qualname__}"
    suggested = _suggest(site, via)
    hint = (
        f"; pass the function and its arguments: {suggested}"
        if suggested
        else "; pass the function itself and its arguments"
    )
    return (
        f"{via}() got {what}, not a function: the function was called when it was queued "
        f"(so it ran inside the request) and nothing will run in the background{hint}"
    )


def _suggest(site: Frame | None, via: str) -> str | None:
    if site is None or not site.code:
        return None
    match = re.search(_CALL_IN_ARGUMENT, site.code)
    if match is None:
        return None
    args = match.group("args").strip()
    return f"{via}({match.group('func')}, {args})" if args else f"{via}({match.group('func')})"


class BackgroundProbe:
    """Instruments Starlette's BackgroundTask(s) and reports every job's lifecycle."""

    name = "background"

    def __init__(
        self,
        config: AgentConfig,
        jobs: BackgroundJobs,
        log: ExceptionLog | None = None,
        tracker: RequestTracker | None = None,
    ) -> None:
        self._config = config
        self.jobs = jobs
        self._log = log
        self._tracker = tracker
        self._context: AgentContext | None = None
        self._patches: list[tuple[type, str, Any, Any]] = []
        self._active = False
        self._add_task_code: types.CodeType | None = None

    # --- install / close ---------------------------------------------------------------------

    def install(self, context: AgentContext) -> None:
        self._context = context
        self.jobs.clock = context.clock
        self._active = True
        if self._tracker is not None:
            self._tracker.finish_listeners.append(self._on_request_finished)
        self._patch()

    def close(self) -> None:
        self._active = False
        try:
            for cls, attribute, original, wrapper in reversed(self._patches):
                if cls.__dict__.get(attribute) is wrapper:
                    setattr(cls, attribute, original)
            self._patches.clear()
            if self._tracker is not None and self._on_request_finished in (
                self._tracker.finish_listeners
            ):
                self._tracker.finish_listeners.remove(self._on_request_finished)
        except Exception as error:  # close must not raise
            self._report(f"background: close: {error!r}")

    def _patch(self) -> None:
        """Wrap Starlette's classes once starlette.background has been imported."""
        if self._patches or not self._active:
            return
        module = sys.modules.get("starlette.background")
        if module is None:
            return
        try:
            task_class = module.BackgroundTask
            tasks_class = module.BackgroundTasks
            add_task = tasks_class.__dict__.get("add_task")
            self._add_task_code = getattr(add_task, "__code__", None)
            self._wrap(task_class, "__init__", self._wrap_init)
            self._wrap(task_class, "__call__", self._wrap_call)
            for container in _container_classes(tasks_class):
                self._wrap(container, "__call__", self._wrap_container_call)
        except Exception as error:
            self._report(f"background: patch: {error!r}")

    def _wrap(self, cls: type, attribute: str, make: Callable[[Any], Any]) -> None:
        original = cls.__dict__[attribute]
        wrapper = make(original)
        for name in ("__name__", "__qualname__", "__doc__", "__module__"):
            try:
                setattr(wrapper, name, getattr(original, name))
            except (AttributeError, TypeError):
                pass
        wrapper.__wrapped__ = original
        setattr(cls, attribute, wrapper)
        self._patches.append((cls, attribute, original, wrapper))

    def _report(self, message: str) -> None:
        if self._context is not None:
            self._context.record_error(message)

    # --- wrappers ----------------------------------------------------------------------------

    def _wrap_init(self, original: Callable[..., None]) -> Callable[..., None]:
        probe = self

        def __init__(task: Any, func: Any, *args: Any, **kwargs: Any) -> None:
            original(task, func, *args, **kwargs)
            if probe._active:
                try:
                    probe._on_queued(task, func, sys._getframe(1))
                except Exception as error:
                    probe._report(f"background: queue: {error!r}")

        return __init__

    def _wrap_call(self, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        probe = self

        async def __call__(task: Any) -> None:
            job = probe.jobs.job_of(task) if probe._active else None
            request = request_now()
            if request is not None:
                ran = request.background_ran
                if ran is None:
                    ran = request.background_ran = []
                if len(ran) < _MAX_RAN_NAMES:
                    ran.append(
                        job.function
                        if job is not None
                        else callable_name(getattr(task, "func", task))
                    )
            if job is None:
                await original(task)
                return
            token = current_job.set(job)
            previous = request.running_job if request is not None else None
            probe._on_started(job, request)
            try:
                await original(task)
            except asyncio.CancelledError:
                probe._on_finished(job, "cancelled", None)
                raise
            except BaseException as exc:
                probe._on_finished(job, "failed", exc)
                raise
            else:
                probe._on_finished(job, "done", None)
            finally:
                current_job.reset(token)
                if request is not None:
                    request.running_job = previous

        return __call__

    def _wrap_container_call(self, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        probe = self

        async def __call__(container: Any) -> None:
            jobs = probe._jobs_of(container) if probe._active else []
            for job in jobs:
                if job is not None:
                    job.container_started = True
            try:
                await original(container)
            except BaseException:
                if jobs:
                    probe._skip_after_failure(jobs)
                raise

        return __call__

    # --- events ------------------------------------------------------------------------------

    def _on_queued(self, task: Any, func: Any, caller: types.FrameType | None) -> None:
        via = "BackgroundTask"
        if caller is not None and caller.f_code is self._add_task_code:
            via = "add_task"
        site = call_site(caller)
        request = request_now()
        dispatch = "loop" if getattr(task, "is_async", False) else "threadpool"
        job = self.jobs.new(callable_name(func), request, site, dispatch)
        job.flagged = flag_for(func, via, site)
        if job.flagged is not None and asyncio.iscoroutine(func):
            self.jobs.remember_coroutine(func, job)
        self.jobs.remember_task(task, job)
        if request is not None:
            jobs = request.jobs
            if jobs is None:
                jobs = request.jobs = []
            if len(jobs) < _MAX_JOBS_PER_REQUEST:
                jobs.append(job)

    def _on_started(self, job: JobRecord, request: RequestRecord | None) -> None:
        job.state = "running"
        job.started_at = self.jobs.clock()
        task = current_task()
        job.task_id = id(task) if task is not None else None
        job.reason = None
        job.info = None
        if request is not None:
            request.running_job = job

    def _on_finished(
        self, job: JobRecord, state: BackgroundState, exc: BaseException | None
    ) -> None:
        if exc is not None:
            job.error = exception_info(exc)
        job.settle(state, self.jobs.clock())
        if exc is not None and self._log is not None:
            self._log.record_exception(
                "background-failed",
                exc,
                request_id=job.request_id,
                request_label=job.request_label,
                task_name=job.function,
                location=application_location(exc) or job.call_site,
            )

    def _jobs_of(self, container: Any) -> list[JobRecord | None]:
        tasks = getattr(container, "tasks", None)
        if not isinstance(tasks, list):
            return []
        return [self.jobs.job_of(task) for task in tasks]

    def _skip_after_failure(self, jobs: list[JobRecord | None]) -> None:
        culprit = next(
            (job for job in jobs if job is not None and job.state in ("failed", "cancelled")),
            None,
        )
        if culprit is None:
            return
        if culprit.state == "cancelled":
            why = f"{culprit.function}{culprit.where} was cancelled before it"
        else:
            error = culprit.error
            raised = f"{error.type}: {error.message}" if error is not None else "an exception"
            why = f"{culprit.function}{culprit.where} raised {raised} before it"
        reason = (
            f"{why}, and Starlette stops running a response's background tasks at the first failure"
        )
        now = self.jobs.clock()
        after = False
        for job in jobs:
            if job is culprit:
                after = True
            elif after and job is not None and job.state == "queued":
                job.settle("skipped", now, reason)

    def _on_request_finished(self, request: RequestRecord) -> None:
        pending = [job for job in request.jobs or () if job.state == "queued"]
        if not pending:
            return
        now = self.jobs.clock()
        # Whatever ran for this request was not one of these jobs (they are still queued).
        own = list(dict.fromkeys(request.background_ran or ()))
        for job in pending:
            if job.container_started:
                reason = "its BackgroundTasks stopped before reaching it"
                job.settle("skipped", now, reason)
                continue
            if request.error is not None:
                reason = (
                    f"the endpoint raised {request.error}, so FastAPI never ran its "
                    "background tasks"
                )
            elif own:
                reason = (
                    f"the endpoint returned a Response with its own background "
                    f"({', '.join(own)}), which replaced the injected BackgroundTasks: FastAPI "
                    "attaches them only when response.background is None"
                )
            else:
                reason = (
                    "the request finished without running it (the BackgroundTasks or "
                    "BackgroundTask holding it was not attached to the response that was sent)"
                )
            job.settle("dropped", now, reason)

    # --- collect -----------------------------------------------------------------------------

    def collect(self, context: AgentContext, options: CollectOptions) -> Mapping[str, Any]:
        if not self._patches:
            self._patch()  # starlette may have been imported after install
        return {"background": self.jobs.jobs()}


def _container_classes(base: type) -> Iterator[type]:
    """`base` and every subclass that defines its own `__call__` (FastAPI's BackgroundTasks)."""
    seen: set[type] = set()
    pending = [base]
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        if cls is base or "__call__" in cls.__dict__:
            yield cls
        pending.extend(cls.__subclasses__())
