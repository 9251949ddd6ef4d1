"""A snapshot as readable text, in the spirit of ``py-spy dump``.

Sections, most urgent first: the process, the event loop and its stalls, the loop thread's stack,
requests, background jobs, the threadpool and its threads, exceptions nobody saw, then every task
with its await chain and what it waits for. Stacks are printed innermost last, as Python prints
tracebacks, each frame followed by its source line.

Everything that came from the target (names, paths, messages) is treated as untrusted text and
goes through `inspector.escape.printable`: control and format characters and lone
surrogates are shown escaped, so a task named with terminal escape codes cannot repaint the
reader's terminal, and a task name that cannot be encoded cannot crash the print. Any valid
`Snapshot` renders; odd values (NaN, negative durations, dates beyond the year 9999) print as
``?`` rather than raising.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from typing import Final

from inspector.durations import duration
from inspector.escape import printable
from inspector.frame_kinds import is_application, library_path
from inspector.model import (
    BackgroundJob,
    ExceptionEvent,
    ExceptionInfo,
    Frame,
    RequestInfo,
    Snapshot,
    StackCut,
    StackSample,
    Stall,
    TaskInfo,
    ThreadInfo,
    WaitInfo,
)
from inspector.plurals import plural
from inspector.render.requests import request_detail_note

MAX_SAMPLES_SHOWN: Final = 3
"""Distinct stacks shown per stall; a stall sampled 20 times usually shows one or two."""
MAX_FOLDED_NAMES: Final = 5
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*")

_SOURCES: Final = {
    "agent": "inspector agent",
    "aiomonitor": "plain aiomonitor",
    "file": "saved file",
}
_CAPABILITY_TITLES: Final = {
    "stalls": "event loop lag and stalls",
    "requests": "requests",
    "background": "background jobs",
    "threadpool": "threadpool",
    "exceptions": "exceptions nobody saw",
    "tasks": "tasks",
}


def render_snapshot(snapshot: Snapshot, *, color: bool = False) -> str:
    """The whole snapshot as text; `color` adds ANSI styles for a terminal."""
    view = _View(snapshot, _Style(color))
    view.header()
    view.loop()
    view.loop_thread()
    view.requests()
    view.background()
    view.threadpool()
    view.exceptions()
    view.tasks()
    return "\n".join(view.lines).rstrip("\n") + "\n"


class _Style:
    """ANSI styles, or nothing when writing to a file or pipe."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and text else text

    def title(self, text: str) -> str:
        return self._wrap("1", text)

    def bad(self, text: str) -> str:
        return self._wrap("1;31", text)

    def warn(self, text: str) -> str:
        return self._wrap("33", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def app(self, text: str) -> str:
        return self._wrap("36", text)


class _View:
    def __init__(self, snapshot: Snapshot, style: _Style) -> None:
        self.s = snapshot
        self.style = style
        self.lines: list[str] = []
        self.cwd = snapshot.process.cwd
        self._tasks = {task.id: task for task in snapshot.tasks}
        self._requests = {r.id: r for r in snapshot.recent_requests}
        self._requests.update({r.id: r for r in snapshot.requests})
        self._threads = {thread.id: thread for thread in snapshot.threads}

    # --- sections ----------------------------------------------------------------------------

    def header(self) -> None:
        p = self.s.process
        argv = " ".join(printable(arg) for arg in p.argv) or "?"
        self.add(self.style.title(f"Process {p.pid}: {argv}"))
        python = printable(p.python)
        facts = [python if "Py" in python else f"Python {python}"] if python else []
        if p.uvicorn:
            facts.append(f"uvicorn {printable(p.uvicorn)}")
        loop_impl = self.s.loop.implementation if self.s.loop else p.loop
        if loop_impl:
            facts.append(f"loop {printable(loop_impl)}")
        if p.app:
            facts.append(f"app {printable(p.app)}")
        if p.worker is not None:
            facts.append(f"worker {p.worker}")
        if p.ppid is not None:
            facts.append(f"parent pid {p.ppid}")
        if facts:
            self.add("  " + " · ".join(facts))
        when = [f"snapshot taken {_datetime(self.s.taken_at)}"]
        if p.started_at is not None:
            when.append(f"up {_duration(self.s.taken_at - p.started_at)}")
        described = _SOURCES.get(self.s.source, printable(str(self.s.source)))
        if p.agent_version:
            described += f" {printable(p.agent_version)}"
        when.append(f"from {described}")
        if p.cwd:
            when.append(f"cwd {printable(p.cwd)}")
        self.add("  " + " · ".join(when))
        if self.s.source == "aiomonitor":
            self.add("  no inspector agent: tasks and stacks only")
        else:
            self.add("  " + self._health())
        if self.s.health.read_only:
            self.add("  the agent is read-only: it will not cancel tasks")
        self.blank()

    def _health(self) -> str:
        h = self.s.health
        parts = []
        if h.errors:
            parts.append(self.style.warn(f"agent health: {h.errors} error{_s(h.errors)}"))
        else:
            parts.append("agent health: ok")
        if h.probes:
            parts.append(f"probes {', '.join(printable(p) for p in h.probes)}")
        if h.collect_seconds:
            parts.append(f"collected in {_duration(h.collect_seconds)}")
        if h.dropped_events:
            parts.append(self.style.warn(f"{plural(h.dropped_events, 'event')} dropped"))
        if h.paced_seconds:
            parts.append(
                f"answers held back {_duration(h.paced_seconds)} in total"
                " (clients asked for more than the agent's CPU share)"
            )
        text = " · ".join(parts)
        for error in h.recent_errors[-3:]:
            text += "\n    " + self.style.warn(printable(error))
        return text

    def loop(self) -> None:
        if not self.available("stalls"):
            return
        loop = self.s.loop
        if loop is None:
            if self.s.stalls:
                self.section("Event loop")
            else:
                self.section("Event loop", "no measurements")
        else:
            summary = (
                f"lag {_duration(loop.lag)} (stall threshold {_duration(loop.stall_threshold)})"
                f"; {loop.total_stalls} stall{_s(loop.total_stalls)}, "
                f"{_duration(loop.total_stalled_seconds)} stalled in total"
            )
            self.section("Event loop", summary)
            if loop.stalled_for is not None:
                self.add(
                    "  "
                    + self.style.bad(f"STALLED RIGHT NOW for {_duration(loop.stalled_for)}")
                    + " (the loop thread's stack below shows where)"
                )
            lags = [lag for _, lag in loop.lag_series if math.isfinite(lag)]
            if lags:
                span = loop.lag_series[-1][0] - loop.lag_series[0][0]
                self.add(
                    f"  lag over the last {_duration(span)}: max {_duration(max(lags))}, "
                    f"mean {_duration(sum(lags) / len(lags))} ({plural(len(lags), 'sample')})"
                )
        if self.s.stalls:
            self.blank()
            self.section(f"Stalls ({len(self.s.stalls)}, newest last)")
            for stall in self.s.stalls:
                self.stall(stall)
        self.blank()

    def stall(self, stall: Stall) -> None:
        label = stall.request_label or stall.background_label
        who = []
        if label:
            who.append(printable(label))
        if stall.task_name or stall.task_id is not None:
            who.append(f"task {self.task_name(stall.task_id, stall.task_name)}")
        when = f"{_clock(stall.started_at)} ({_ago(self.s.taken_at - stall.started_at)})"
        line = f"  #{stall.id}  {when}  {self.style.bad(_duration(stall.duration))}"
        if stall.ongoing:
            line += " " + self.style.bad("ONGOING")
        if who:
            line += "  in " + ", ".join(who)
        self.add(line)
        heaviest = stall_profile(stall.samples)
        total = sum(sample.count for sample in heaviest)
        for shown, sample in enumerate(heaviest):
            if shown == MAX_SAMPLES_SHOWN:
                rest = sum(other.count for other in heaviest[shown:])
                stacks = plural(len(heaviest) - shown, "more stack", "more stacks")
                more = f"{stacks}, {_share(rest, total)} of the samples"
                self.add(self.style.dim(f"      ({more})"))
                break
            note = f"first seen at +{_duration(sample.offset)}"
            if total > 1:
                note += f", {_share(sample.count, total)} of {total} samples"
            self.add(self.style.dim(f"    {note}:"))
            self.stack(sample.frames, indent=6)
        if not stall.samples:
            self.add(self.style.dim("    no stack was sampled"))

    def loop_thread(self) -> None:
        if not self.s.loop_thread_stack and self.s.current_task_id is None:
            return
        current = self.s.current_task_id
        if current is not None:
            what = f"running {self.task_ref(current)}"
        else:
            what = "no task running"
        self.section("Loop thread", what)
        if self.s.loop_thread_stack:
            self.stack(self.s.loop_thread_stack, indent=4)
        else:
            self.add("    stack not available")
        self.blank()

    def requests(self) -> None:
        if not self.available("requests"):
            return
        live = self.s.requests
        self.section(f"Requests in flight ({len(live)})", "none" if not live else "")
        note = request_detail_note(self.s)
        if note is not None:
            self.add(f"  {note}")
        for request in live:
            self.request(request, in_flight=True)
        if self.s.recent_requests:
            self.section(f"Recent requests ({len(self.s.recent_requests)}, newest last)")
            for request in self.s.recent_requests:
                self.request(request, in_flight=False)
        if self.s.routes:
            self.section("Latency per route (finished requests)")
            rows = [("method", "route", "count", "errors", "p50", "p95", "max")]
            for route in self.s.routes:
                rows.append(
                    (
                        printable(route.method),
                        printable(route.route),
                        str(route.count),
                        str(route.errors),
                        _duration(route.p50),
                        _duration(route.p95),
                        _duration(route.max),
                    )
                )
            for row in _table(rows, right_aligned={2, 3, 4, 5, 6}):
                self.add("  " + row)
        self.blank()

    def request(self, request: RequestInfo, *, in_flight: bool) -> None:
        parts = [f"#{request.id}", f"{printable(request.method)} {printable(request.path)}"]
        if request.status is not None:
            status = str(request.status)
            parts.append(self.style.bad(status) if request.status >= 500 else status)
        if in_flight or request.phase != "done":
            parts.append(printable(request.phase))
        if not request.detailed:
            parts.append("(no full record)")
        parts.append(_duration(request.duration))
        if request.route and request.route != request.path:
            parts.append(f"route {printable(request.route)}")
        if request.scheme not in ("http", "https"):
            parts.append(printable(request.scheme))
        if request.task_id is not None:
            name = self.task_name(request.task_id)  # "task 0x…" once the task is gone
            parts.append(f"task {name}" if request.task_id in self._tasks else name)
        if request.client:
            parts.append(f"client {printable(request.client)}")
        if request.bytes_sent:
            parts.append(f"{plural(request.bytes_sent, 'byte')} sent")
        line = "  " + "  ".join(parts)
        if request.disconnected:
            gone = "client gone"
            if request.disconnected_at is not None:
                gone += f" {_duration(self.s.taken_at - request.disconnected_at)} ago"
            line += "  " + self.style.warn(f"[{gone}]")
        self.add(line)
        if request.thread_ids:
            threads = ", ".join(self.thread_name(t) for t in request.thread_ids)
            self.add(f"      in worker thread{_s(len(request.thread_ids))}: {threads}")
        if request.background_ids:
            self.add("      background jobs: " + ", ".join(f"#{b}" for b in request.background_ids))
        if request.error:
            self.add("      " + self.style.bad(f"raised {printable(request.error)}"))

    def background(self) -> None:
        if not self.available("background"):
            return
        jobs = self.s.background
        self.section(f"Background jobs ({len(jobs)})", "none" if not jobs else "")
        for job in jobs:
            self.job(job)
        self.blank()

    def job(self, job: BackgroundJob) -> None:
        state = printable(job.state)
        if job.state in ("failed", "dropped", "skipped"):
            state = self.style.bad(state.upper())
        elif job.state == "cancelled":
            state = self.style.warn(state)
        line = f"  #{job.id}  {printable(job.function)}  {state}"
        if job.request_id is not None:
            line += f"  for {self.request_ref(job.request_id)}"
        if job.dispatch:
            line += f"  (runs in the {'event loop' if job.dispatch == 'loop' else 'threadpool'})"
        self.add(line)
        times = [f"queued {_clock(job.queued_at)}"]
        if job.call_site is not None:
            times[0] += f" at {self.where(job.call_site)}"
        if job.started_at is not None:
            times.append(f"started {_duration(job.started_at - job.queued_at)} later")
        if job.finished_at is not None:
            start = job.started_at if job.started_at is not None else job.queued_at
            times.append(f"ran {_duration(job.finished_at - start)}")
        elif job.started_at is not None:
            times.append(f"running for {_duration(self.s.taken_at - job.started_at)}")
        if job.task_id is not None:
            times.append(f"task {self.task_name(job.task_id)}")
        self.add("      " + "; ".join(times))
        if job.reason:
            self.add("      why: " + printable(job.reason))
        if job.flagged:
            self.add("      " + self.style.warn("problem: " + printable(job.flagged)))
        if job.error is not None:
            self.exception_info(job.error, indent=6)

    def threadpool(self) -> None:
        if not self.available("threadpool"):
            return
        pool = self.s.threadpool
        if pool is None:
            self.section("Threadpool", "no data")
        else:
            summary = f"{pool.borrowed} of {pool.total} tokens borrowed, {pool.waiting} waiting"
            if pool.total and pool.borrowed >= pool.total:
                summary = self.style.bad("SATURATED: ") + summary
            self.section("Threadpool (anyio)", summary)
            if pool.executor_max_workers is not None or pool.executor_threads:
                limit = pool.executor_max_workers
                self.add(
                    f"  loop's default executor: {pool.executor_threads} thread"
                    f"{_s(pool.executor_threads)}"
                    + (f" (max {limit})" if limit is not None else "")
                    + f", {pool.executor_queued} queued"
                )
            for borrower in pool.borrowers:
                line = f"  token held by {self.task_ref(borrower.task_id)}"
                if borrower.request_id is not None and not self._task_request(borrower.task_id):
                    line += f" for {self.request_ref(borrower.request_id)}"
                if borrower.since is not None:
                    line += f" since {_ago(self.s.taken_at - borrower.since)}"
                self.add(line)
        if self.s.threads:
            self.blank()
            self.section(f"Threads ({len(self.s.threads)})")
            for thread in self.s.threads:
                self.thread(thread)
        self.blank()

    def thread(self, thread: ThreadInfo) -> None:
        facts = [printable(thread.pool)]
        if thread.busy:
            facts.append("busy")
        elif thread.pool in ("anyio", "executor"):
            facts.append("idle")
        line = f"  Thread {thread.id} '{printable(thread.name)}' ({', '.join(facts)})"
        if thread.request_id is not None:
            line += f" for {self.request_ref(thread.request_id)}"
        self.add(line)
        if thread.pool == "loop":
            self.add(self.style.dim("      (the loop thread: its stack is shown above)"))
        elif thread.pool == "agent":
            self.add(self.style.dim("      (the inspector's own thread)"))
        elif thread.stack:
            self.stack(thread.stack, indent=6)

    def exceptions(self) -> None:
        if not self.available("exceptions"):
            return
        events = self.s.exceptions
        self.section(f"Exceptions nobody saw ({len(events)})", "none" if not events else "")
        for event in events:
            self.exception_event(event)
        self.blank()

    def exception_event(self, event: ExceptionEvent) -> None:
        count = f" ×{event.count}" if event.count > 1 else ""
        headline = f"{printable(event.error.type)}: {printable(event.error.message)}"
        self.add(f"  #{event.id}  {printable(event.kind)}{count}  {self.style.bad(headline)}")
        facts = [f"{'last ' if event.count > 1 else ''}{_clock(event.at)}"]
        if event.location is not None:
            facts.insert(0, f"at {self.where(event.location)}")
        if event.task_name:
            facts.append(f"task {printable(event.task_name)}")
        if event.request_label or event.request_id is not None:
            label = printable(event.request_label) if event.request_label else ""
            ref = f"#{event.request_id}" if event.request_id is not None else ""
            facts.append("during " + " ".join(part for part in (label, ref) if part))
        self.add("      " + "; ".join(facts))
        if event.location is not None and event.location.code:
            self.add("          " + self.style.app(printable(event.location.code)))
        self.exception_info(event.error, indent=6, headline=False)

    def exception_info(self, error: ExceptionInfo, *, indent: int, headline: bool = True) -> None:
        pad = " " * indent
        if headline:
            self.add(pad + self.style.bad(f"{printable(error.type)}: {printable(error.message)}"))
        if error.traceback:
            self.add(pad + self.style.dim("Traceback (innermost last):"))
            self.stack(error.traceback, indent=indent + 2)
        message_lines = printable(error.message, multiline=True).split("\n")
        if headline is False and len(message_lines) > 1:
            for extra in message_lines[1:8]:
                self.add(pad + "  " + printable(extra))

    def tasks(self) -> None:
        if not self.available("tasks"):
            return
        tasks = self.s.tasks
        self.section(f"Tasks ({len(tasks)})", "none" if not tasks else "")
        if tasks and "stacks" not in self.s.capabilities:
            self.add(self.style.dim("  (stacks were not collected)"))
        for group in _fold(_task_order(tasks, self.s.current_task_id)):
            self.task(group[0], group[1:])
        self.blank()

    def task(self, task: TaskInfo, same: Sequence[TaskInfo]) -> None:
        state = printable(task.state)
        if task.state == "running":
            state = self.style.warn("RUNNING")
        elif task.state == "failed":
            state = self.style.bad("FAILED")
        line = f"  {self.style.title(self.task_name(task.id))}  {state}  {printable(task.coro)}"
        if task.age is not None:
            line += f"  age {_duration(task.age)}"
        if task.request_id is not None:
            line += f"  for {self.request_ref(task.request_id)}"
        self.add(line)
        facts = [f"id {_hex(task.id)}"]
        if task.parent_task_id is not None:
            facts.append(f"created by {self.task_name(task.parent_task_id)}")
        if task.created_at is not None:
            facts.append(f"created at {self.where(task.created_at)}")
        self.add(self.style.dim("      " + "; ".join(facts)))
        if task.exception:
            self.add("      " + self.style.bad("exception: " + printable(task.exception)))
        if task.id == self.s.current_task_id and self.s.loop_thread_stack:
            self.add("      running now: its stack is the loop thread's stack above")
        elif task.stack:
            self.add(self.style.dim("      await chain (outermost first):"))
            self.stack(task.stack, indent=8, cut=task.stack_cut)
        if task.waiting_on is not None:
            self.add("      " + self.wait(task.waiting_on))
        if same:
            names = ", ".join(self.task_name(t.id) for t in same[:MAX_FOLDED_NAMES])
            more = len(same) - MAX_FOLDED_NAMES
            if more > 0:
                names += f" and {more:,} more"
            self.add(
                self.style.dim(
                    f"      + {len(same):,} more task{_s(len(same))} with the same stack: {names}"
                )
            )

    def wait(self, wait: WaitInfo) -> str:
        """ "waiting on Lock 0x7f… held by Task-12 (transfer, POST /transfer); 1 waiting".

        The agent's description is already a phrase; this adds what only the whole snapshot
        knows (the request each task serves) and what the description leaves out.
        """
        described = bool(wait.description.strip())
        text = printable(wait.description) if described else printable(wait.kind)
        if wait.object_id is not None and _hex(wait.object_id) not in text:
            first, space, rest = text.partition(" ")
            if _IDENTIFIER.fullmatch(first):
                text = f"{first} {_hex(wait.object_id)}{space}{rest}"
            else:
                text += f" (object {_hex(wait.object_id)})"
        for verb, task_ids in (
            ("held by", wait.holder_task_ids),
            ("awaits", wait.awaited_task_ids),
        ):
            missing = [t for t in task_ids if not self._mention(t, text)]
            text = self._with_requests(text, task_ids)
            if missing:
                shown = [self.task_ref(t) for t in missing[:MAX_FOLDED_NAMES]]
                more = len(missing) - len(shown)
                text += f" {verb} " + ", ".join(shown) + (f" and {more} more" if more > 0 else "")
        if wait.thread_id is not None and str(wait.thread_id) not in text:
            text += f" in thread {self.thread_name(wait.thread_id)}"
        if not described or " " not in wait.description.strip():
            extras = []
            if wait.waiters is not None:
                extras.append(f"{wait.waiters} waiter{_s(wait.waiters)}")
            if wait.is_set is not None:
                extras.append("set" if wait.is_set else "not set")
            if wait.remaining is not None:
                extras.append(f"{_duration(wait.remaining)} left")
            if extras:
                text += f" ({', '.join(extras)})"
        return "waiting on " + text

    def _mention(self, task_id: int, text: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and printable(task.name) in text

    def _with_requests(self, text: str, task_ids: Sequence[int]) -> str:
        """Name the request next to each task the text mentions as "Task-12 (transfer)"."""
        for task_id in task_ids:
            task = self._tasks.get(task_id)
            request = self._task_request(task_id)
            if task is None or request is None:
                continue
            label = f"{printable(task.name)} ({printable(task.coro)})"
            if label in text:
                text = text.replace(
                    label, f"{printable(task.name)} ({printable(task.coro)}, {request})"
                )
        return text

    # --- building blocks -------------------------------------------------------------------

    def stack(self, frames: Iterable[Frame], *, indent: int, cut: StackCut | None = None) -> None:
        """One line per frame and its source line; where `cut` says frames were left out, one
        line saying how many, at that point."""
        pad = " " * indent
        shown = list(frames)
        at = cut_position(cut, len(shown))
        for index, frame in enumerate(shown):
            if index == at:
                self.add(pad + self.style.warn(left_out_note(cut)))
            where = f"{printable(frame.function)} ({self.path(frame.file)}:{frame.line})"
            library = not is_application(frame.file)
            self.add(pad + (self.style.dim(where) if library else self.style.app(where)))
            if frame.code:
                self.add(pad + "    " + printable(frame.code))
        if at == len(shown):
            self.add(pad + self.style.warn(left_out_note(cut)))

    def where(self, frame: Frame) -> str:
        return f"{self.path(frame.file)}:{frame.line} in {printable(frame.function)}"

    def path(self, file: str) -> str:
        return printable(_short_path(file, self.cwd))

    def task_name(self, task_id: int | None, fallback: str | None = None) -> str:
        task = self._tasks.get(task_id) if task_id is not None else None
        if task is not None:
            return printable(task.name)
        if fallback:
            return printable(fallback)
        return f"task {_hex(task_id)}" if task_id is not None else "?"

    def task_ref(self, task_id: int) -> str:
        """A task's name with the request it serves: "Task-12 (GET /transfer)"."""
        name = self.task_name(task_id)
        request = self._task_request(task_id)
        return f"{name} ({request})" if request else name

    def _task_request(self, task_id: int) -> str | None:
        task = self._tasks.get(task_id)
        if task is None or task.request_id is None:
            return None
        request = self._requests.get(task.request_id)
        return f"{printable(request.method)} {printable(request.path)}" if request else None

    def request_ref(self, request_id: int) -> str:
        request = self._requests.get(request_id)
        if request is None:
            return f"request #{request_id}"
        return f"{printable(request.method)} {printable(request.path)} (#{request_id})"

    def thread_name(self, thread_id: int) -> str:
        thread = self._threads.get(thread_id)
        return f"{thread_id} '{printable(thread.name)}'" if thread else str(thread_id)

    def available(self, capability: str) -> bool:
        if capability in self.s.capabilities:
            return True
        title = _CAPABILITY_TITLES.get(capability, capability)
        if not self.s.by_agent:
            reason = "not available without the inspector agent"
        elif capability in self.s.health.waiting_for_loop:
            reason = "not tracked yet: the injected agent's probe waits for the blocked loop"
        else:
            reason = (
                "not tracked by this agent (started with --no-lifecycle, or its probe failed: "
                "see agent health at the top)"
            )
        self.add(self.style.dim(f"{title[0].upper()}{title[1:]}: {reason}"))
        self.blank()
        return False

    def section(self, title: str, summary: str = "") -> None:
        self.add(self.style.title(title) + (f": {summary}" if summary else ""))

    def add(self, line: str) -> None:
        self.lines.append(line)

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")


# --- tasks: order and folding ---------------------------------------------------------------


def _task_order(tasks: Sequence[TaskInfo], current: int | None) -> list[TaskInfo]:
    """The running task first, then tasks serving requests, then the rest; oldest first."""

    def key(task: TaskInfo) -> tuple[int, int, float]:
        age = task.age if task.age is not None and math.isfinite(task.age) else 0.0
        return (task.id != current, task.request_id is None, -age)

    return sorted(tasks, key=key)


def _fold(tasks: Sequence[TaskInfo]) -> list[list[TaskInfo]]:
    """Group tasks that look identical (same coroutine, state, stack and kind of wait), so a
    server with 10,000 parked connections prints one entry, not 10,000."""
    groups: dict[object, list[TaskInfo]] = {}
    order: list[list[TaskInfo]] = []
    for task in tasks:
        if task.request_id is not None or task.exception or not task.stack:
            order.append([task])
            continue
        wait = task.waiting_on
        key = (
            task.state,
            task.coro,
            tuple((f.file, f.line, f.function) for f in task.stack),
            task.stack_cut,
            (wait.kind, wait.object_id, wait.holder_task_ids) if wait else None,
        )
        group = groups.get(key)
        if group is None:
            group = groups[key] = [task]
            order.append(group)
        else:
            group.append(task)
    return order


# --- text helpers ---------------------------------------------------------------------------


def cut_position(cut: StackCut | None, count: int) -> int | None:
    """Before which of `count` shown frames the note of a cut goes (`count`: after the last);
    None without a cut. A position outside the stack (a corrupt file) is brought inside it."""
    if cut is None or cut.left_out <= 0:
        return None
    return min(max(cut.outer, 0), count)


def left_out_note(cut: StackCut | None) -> str:
    """ "… 436 frames left out …": said where a stack too deep to report whole was cut."""
    count = cut.left_out if cut is not None else 0
    return f"… {count:,} frame{_s(count)} left out …"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _hex(value: int | None) -> str:
    if value is None:
        return "?"
    return f"0x{value:x}" if value >= 0 else f"-0x{-value:x}"


def stall_profile(samples: Sequence[StackSample]) -> list[StackSample]:
    """A stall's stacks, the one it spent most of its time at first, each once with its count
    and the first time it was seen (snapshots saved by older agents list a stack once per
    sample: they add up the same)."""
    merged: dict[tuple[Frame, ...], StackSample] = {}
    for sample in samples:
        seen = merged.get(sample.frames)
        merged[sample.frames] = (
            sample
            if seen is None
            else dataclasses.replace(
                seen, offset=min(seen.offset, sample.offset), count=seen.count + sample.count
            )
        )
    return sorted(merged.values(), key=lambda sample: -sample.count)


def _share(part: int, whole: int) -> str:
    """ "94 %": a part of a stall's samples."""
    return f"{round(100 * part / whole)} %" if whole else "0 %"


def _duration(seconds: float | None) -> str:
    return duration(seconds)


def _ago(seconds: float) -> str:
    text = _duration(seconds)
    return f"{text} before the snapshot" if text != "?" else "at an unknown time"


def _local(timestamp: float) -> time.struct_time | None:
    try:
        return time.localtime(timestamp) if math.isfinite(timestamp) else None
    except (OverflowError, OSError, ValueError):
        return None


def _clock(timestamp: float) -> str:
    local = _local(timestamp)
    if local is None:
        return "?"
    millis = int((timestamp % 1) * 1000)
    return time.strftime("%H:%M:%S", local) + f".{millis:03d}"


def _datetime(timestamp: float) -> str:
    local = _local(timestamp)
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", local).strip() if local else "?"


def _short_path(path: str, cwd: str | None) -> str:
    """site-packages and stdlib paths from the package on; app paths relative to the cwd."""
    below_root = library_path(path)
    if below_root is not None:
        return below_root
    if cwd:
        prefix = cwd.rstrip("/\\") + os.sep
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _table(rows: Sequence[Sequence[str]], right_aligned: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right_aligned else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines
