"""`loop-blocked`: something held the event loop, so every request on the worker waited."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inspector.diagnose.findings import Finding, Severity
from inspector.diagnose.locate import (
    Blocking,
    application_frames,
    classify_samples,
    innermost_application_frame,
    is_application_frame,
    library_call,
    loop_work_frames,
    module_of,
    most_common_frame,
)
from inspector.diagnose.rules.base import (
    Settings,
    distinct_frames,
    doing,
    examples,
    plural,
    quoted_code,
    seconds,
    stalls_of,
    where,
)
from inspector.diagnose.rules.sync_async import self_deadlock_at
from inspector.frame_kinds import library_path
from inspector.model import Frame, Snapshot, Stall

HINTS = {
    "sleep": (
        "`time.sleep()` stops the whole event loop. In `async def` code use "
        "`await asyncio.sleep(...)`; or declare the endpoint with plain `def` so FastAPI runs "
        "it in the threadpool."
    ),
    "io": (
        "This is blocking I/O on the event loop. Use an async client (httpx.AsyncClient, "
        "aiohttp; anyio/aiofiles for files; asyncio.create_subprocess_exec for processes), or "
        "move the call off the loop with `await asyncio.to_thread(func, ...)`, or declare the "
        "endpoint with plain `def`."
    ),
    "db": (
        "A synchronous database driver runs on the event loop. Use an async driver (asyncpg, "
        "aiosqlite, aiomysql, psycopg's AsyncConnection, SQLAlchemy's AsyncEngine), or declare "
        "the endpoint with plain `def` so FastAPI runs it in the threadpool."
    ),
    "thread-wait": (
        "The loop thread waits for another thread (`Future.result()`, `Thread.join()`, a "
        "threading lock). Await it instead: `await asyncio.wrap_future(future)` or "
        "`await asyncio.to_thread(...)`. If that thread needs the loop to finish, this never "
        "ends."
    ),
    "cpu": (
        "CPU-bound Python code runs on the event loop. Move it off the loop with "
        "`await asyncio.to_thread(func, ...)` (the loop keeps answering, but pure-Python work "
        "still holds the GIL) or run it in a process pool "
        "(`await loop.run_in_executor(process_pool, func, ...)`) for real parallelism."
    ),
    "idle": (
        "Nothing in the application held the loop: it was waiting for I/O when sampled, so the "
        "process did not get the CPU. Check the machine's load (other processes, more workers "
        "than cores), swapping, and long garbage-collection pauses."
    ),
    "unknown": (
        "No stack was sampled during the stall (it was short). Run `inspector attach` while it "
        "happens again, or lower the agent's stall threshold, to see the blocking line."
    ),
}
STARTUP_HINT = (
    " It ran in the lifespan, while no request was served, so it only delays startup or "
    "shutdown; move it to a thread (`await asyncio.to_thread(...)`) if that matters."
)
SERIALIZATION_HINT = (
    " Large responses are serialized on the loop by FastAPI: return a smaller payload, or "
    "serialize in a thread and return a `Response` yourself."
)


@dataclass(frozen=True)
class _Observed:
    stall: Stall
    location: Frame | None
    blocking: Blocking | None
    stack: tuple[Frame, ...]
    """One representative sampled stack (loop-running frames removed)."""

    @property
    def at_startup(self) -> bool:
        """The stall ran in the lifespan task: startup or shutdown, when no request is served."""
        return any((module_of(frame) or "").startswith("uvicorn.lifespan") for frame in self.stack)

    @property
    def context(self) -> str:
        if self.at_startup:
            return "the app's lifespan (startup or shutdown)"
        if self.stall.request_label:
            return self.stall.request_label
        if self.stall.background_label:
            return f"background task {self.stall.background_label}"
        if self.stall.task_name:
            return f"task {self.stall.task_name}"
        return "a loop callback outside any task"


def loop_blocked(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """One finding per place that blocked the loop, with how often and for how long.

    A loop that waits for itself is a `sync-async-deadlock` instead, said once."""
    stalls = [stall for stall in stalls_of(snapshot) if self_deadlock_at(stall) is None]
    observed = [_observe(stall) for stall in stalls]
    groups: dict[tuple[object, ...], list[_Observed]] = {}
    for item in observed:
        if item.location is not None:
            key: tuple[object, ...] = (item.location.file, item.location.line)
        else:
            what = item.blocking.what if item.blocking else None
            key = (None, item.context, what)
        groups.setdefault(key, []).append(item)
    for items in groups.values():
        yield _finding(items, snapshot, settings)


IDLE_MODULES = ("selectors", "asyncio.base_events", "asyncio.selector_events", "asyncio.events")


def _is_idle(stack: Sequence[Frame]) -> bool:
    """The loop thread sat in the loop's own I/O wait: nothing ran; the process was not
    scheduled."""
    if not stack:
        return True
    modules = [module_of(frame) or "" for frame in stack]
    return all(module in IDLE_MODULES for module in modules)


def _observe(stall: Stall) -> _Observed:
    """Where the stall spent most of its time: each sampled stack weighs as many samples as
    found the loop thread there (the agent samples a stall every 10 ms)."""
    all_stacks = [(loop_work_frames(sample.frames), sample.count) for sample in stall.samples]
    if stall.samples and all(_is_idle(stack) for stack, _ in all_stacks):
        return _Observed(stall, None, Blocking("idle", "nothing (the loop was idle)", None), ())
    busy = [(stack, n) for stack, n in all_stacks if stack and not _is_idle(stack)]
    stacks = [stack for stack, _ in busy]
    weights = [n for _, n in busy]
    blocking = classify_samples(stacks, weights)
    location = most_common_frame((innermost_application_frame(s) for s in stacks), weights)
    representative = next(
        (s for s in stacks if location is not None and location in s), stacks[-1] if stacks else ()
    )
    return _Observed(stall, location, blocking, tuple(representative))


def _finding(items: Sequence[_Observed], snapshot: Snapshot, settings: Settings) -> Finding:
    first = items[0]
    stalls = [item.stall for item in items]
    ongoing = next((s for s in stalls if s.ongoing), None)
    longest = max(s.duration for s in stalls)
    total = sum(s.duration for s in stalls)
    blocking = next((i.blocking for i in items if i.blocking is not None), None)
    kind = blocking.kind if blocking else "unknown"
    by = blocking.what if blocking else "code that was not sampled"
    contexts = [item.context for item in items]
    context = max(set(contexts), key=lambda c: (contexts.count(c), c == first.context))
    count = len(items)

    if kind == "idle":
        times = f"{count} times, {seconds(total)} in all" if count > 1 else seconds(longest)
        title = f"Event loop lagged ({times}) while idle: the process did not get the CPU"
    elif ongoing is not None:
        so_far = seconds(ongoing.duration)
        title = f"Event loop is blocked right now ({so_far} so far) by {by} in {context}"
    elif count == 1:
        title = f"Event loop blocked {seconds(longest)} by {by} in {context}"
    else:
        title = f"Event loop blocked {count} times ({seconds(total)} in all) by {by} in {context}"

    location = first.location
    sentences = []
    if kind == "idle":
        sentences.append(
            f"The event loop ran {plural(count, 'heartbeat')} late, {seconds(total)} in all, the "
            f"longest {seconds(longest)}."
        )
    elif count == 1:
        state = "has not run for" if ongoing else "did not run for"
        sentences.append(f"The event loop {state} {seconds(longest)} while running {context}.")
    else:
        sentences.append(
            f"{plural(count, 'stall')}, {seconds(total)} in all, the longest {seconds(longest)}"
            f"{', one still going' if ongoing else ''}, while running {examples(contexts)}."
        )
    if location is not None:
        sentences.append(
            f"The loop thread was at {where(location, snapshot)}{quoted_code(location)}, "
            f"{doing(kind, by)}."
        )
    elif kind == "idle":
        sentences.append(
            "The loop thread was idle in the loop's own I/O wait when sampled: no code held the "
            "loop, the process simply did not run."
        )
    elif first.stack:
        sentences.append(_without_application_code(first.stack, doing(kind, by)))
    else:
        sentences.append("No stack was sampled during the stall.")
    if kind != "idle":
        sentences.append("Every other request and task on this worker waited meanwhile.")

    hint = HINTS[kind]
    if blocking is not None and blocking.what.startswith("serialization"):
        hint += SERIALIZATION_HINT
    if "background task" in context and kind in ("sleep", "io", "db"):
        hint += " A background function declared with plain `def` runs in the threadpool."

    library: Frame | None = blocking.frame if blocking is not None else None
    if library is not None and is_application_frame(library):
        library = None
    call = library_call(first.stack) if location is None else None
    caller = call.caller if call is not None else None
    related = distinct_frames([library, caller, *application_frames(first.stack)[1:4]], location)
    severity: Severity = "critical" if ongoing or longest >= settings.critical_stall else "warning"
    serialization = blocking is not None and blocking.what.startswith("serialization")
    if kind == "idle":
        # Nothing in the application held the loop: a fact about the machine, not a bug.
        severity = "warning" if longest >= settings.critical_stall else "info"
    elif all(item.at_startup for item in items) and ongoing is None:
        # Before the first request or after the last: it delayed startup, it starved no one.
        severity = "info"
        hint += STARTUP_HINT
    elif severity == "warning" and location is None and not serialization:
        # A short stall with no application code on the stack is far more often CPU contention
        # or a GC pause than a bug to fix: worth knowing, not worth failing a CI run over.
        severity = "info"
    task_ids = tuple(sorted({s.task_id for s in stalls if s.task_id is not None}))
    request = next((s.request_label for s in stalls if s.request_label == context), None)
    return Finding(
        kind="loop-blocked",
        severity=severity,
        title=title,
        detail=" ".join(sentences),
        hint=hint,
        location=location,
        related=related,
        task_ids=task_ids,
        request=request,
        count=count,
    )


def _without_application_code(stack: Sequence[Frame], doing: str) -> str:
    """Which library call held the loop and what called it, as far as the samples reach:
    "… blocked in logging at logging/__init__.py:1113 in StreamHandler.emit, entered through
    Logger.info, called from uvicorn/protocols/http/httptools_impl.py:493 in
    RequestResponseCycle.send"."""
    call = library_call(stack)
    if call is None:
        return f"No application code was on the sampled stack; the loop thread was {doing}."
    sentence = (
        f"No application code was on the sampled stack: the loop thread was {doing} at "
        f"{_library_where(call.inner)}"
    )
    if call.entry != call.inner:
        sentence += f", entered through {call.entry.function}"
    if call.caller is not None:
        sentence += f", called from {_library_where(call.caller)}"
    else:
        sentence += "; the samples show nothing further out"
    return sentence + "."


def _library_where(frame: Frame) -> str:
    """ "logging/__init__.py:1113 in StreamHandler.emit": a library path from its package."""
    return f"{library_path(frame.file) or frame.file}:{frame.line} in {frame.function}"
