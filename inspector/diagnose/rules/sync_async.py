"""`sync-async-deadlock`: the loop thread blocks waiting for work that needs the loop to run.

`asyncio.run_coroutine_threadsafe(coro, loop).result()` is how a worker thread runs a coroutine
on the loop and waits for it. Called on the loop thread itself, it schedules the coroutine on a
loop that it then stops: the loop cannot run it until `result()` returns, and `result()` waits
for it. The stall ends only at its timeout, or never. A stack sampled during the stall shows
it: `concurrent.futures.Future.result` called from an application line that calls
`run_coroutine_threadsafe`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import innermost_application_frame, loop_work_frames, module_of
from inspector.diagnose.rules.base import Settings, plural, quoted_code, seconds, stalls_of, where
from inspector.model import Frame, Snapshot, Stall

HINT = (
    "`run_coroutine_threadsafe` is for other threads. On the loop, `await` the coroutine "
    "instead; from sync code the loop calls, schedule it with `asyncio.create_task(...)` and "
    "do not wait for it there, or move the sync code to a thread "
    "(`await asyncio.to_thread(...)`), where `run_coroutine_threadsafe(...).result()` is right."
)


def waits_on_its_own_loop(stack: Sequence[Frame]) -> Frame | None:
    """The application line that blocks the loop thread on a coroutine meant for that loop."""
    for index, frame in enumerate(stack):
        if module_of(frame) == "concurrent.futures._base" and frame.function.endswith("result"):
            caller = innermost_application_frame(stack[:index])
            if caller is not None and "run_coroutine_threadsafe" in (caller.code or ""):
                return caller
    return None


def self_deadlock_at(stall: Stall) -> Frame | None:
    for sample in stall.samples:
        found = waits_on_its_own_loop(loop_work_frames(sample.frames))
        if found is not None:
            return found
    return None


def sync_async_deadlocks(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """One finding per line that made the loop wait for itself."""
    groups: dict[Frame, list[Stall]] = {}
    for stall in stalls_of(snapshot):
        location = self_deadlock_at(stall)
        if location is not None:
            groups.setdefault(location, []).append(stall)
    for location, stalls in groups.items():
        ongoing = any(stall.ongoing for stall in stalls)
        longest = max(stall.duration for stall in stalls)
        context = next((s.request_label for s in stalls if s.request_label), None)
        during = f" in {context}" if context else ""
        state = "is blocked right now" if ongoing else f"was blocked {seconds(longest)}"
        times = f" ({plural(len(stalls), 'time')})" if len(stalls) > 1 else ""
        yield Finding(
            kind="sync-async-deadlock",
            severity="critical",
            title=f"The event loop waits for a coroutine only it can run{during}{times}",
            detail=(
                f"The loop thread {state} at {where(location, snapshot)}{quoted_code(location)}: "
                "it waits in `Future.result()` for a coroutine handed to "
                "`run_coroutine_threadsafe` on this same loop, which cannot run it until the "
                "wait ends. Every request and task on this worker waits meanwhile; without a "
                "timeout on `result()` this never ends."
            ),
            hint=HINT,
            location=location,
            task_ids=tuple(sorted({s.task_id for s in stalls if s.task_id is not None})),
            request=context,
            count=len(stalls),
        )
