"""How fast the live UI applies a snapshot, and what an hour of updates costs in memory.

    python benchmarks/bench_tui.py            # ~1 minute on 2 cores
    python benchmarks/bench_tui.py --quick    # fewer rounds

1. Apply time: a 10,000-task snapshot with churn (every age moves, 1% of tasks change, 50 come
   and 50 go) is posted to the app with the Tasks view visible. "apply" is the message
   handler (diff and update every widget); "apply + paint" adds the screen refresh that follows.
   The decoding, diagnosis and row building happen on the poller's thread, as in real use, and
   are reported separately.
2. Memory: 3,600 updates (an hour at 1 Hz, run at full speed) of a 1,000-task server whose
   stalls and exceptions keep coming, so every bounded history fills. Each update runs the
   poller's preparation and the app's handler; the screen repaints every 20th. RSS and
   tracemalloc before and after (after 100 warm-up updates).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector import codec, model, protocol  # noqa: E402
from inspector.model import ExceptionEvent, ExceptionInfo, Snapshot, Stall, TaskInfo  # noqa: E402
from inspector.tui.app import make_app  # noqa: E402
from inspector.tui.history import History  # noqa: E402
from inspector.tui.messages import SnapshotReceived  # noqa: E402
from inspector.tui.poller import Observation, load_diagnose, observe  # noqa: E402
from inspector.tui.widgets.live_table import LiveTable  # noqa: E402
from tests.tui.make_fixtures import TAKEN_AT, blocked, many_tasks  # noqa: E402


class IdleSource:
    """The app's own poller stays idle: the benchmark posts observations itself."""

    address = "127.0.0.1:0"
    live = True

    def __init__(self, first: Snapshot) -> None:
        self.first = first

    async def connect(self) -> protocol.Hello:
        return protocol.Hello(
            protocol=protocol.PROTOCOL_VERSION, agent_version="bench", process=self.first.process
        )

    async def snapshot(self, *, with_stacks: bool = True) -> Snapshot:
        await asyncio.sleep(3600)
        return self.first

    async def cancel(self, task_id: int) -> protocol.Result:
        return protocol.Result(ok=False, message="bench")

    async def close(self) -> None:
        pass


def churn(base: Snapshot, step: int, *, count_changes: int = 100, replace: int = 50) -> Snapshot:
    """The server `step` seconds later: older tasks, some finished, some new, some changed."""
    tasks = list(base.tasks)
    keep = tasks[replace * step % len(tasks) :] + tasks[: replace * step % len(tasks)]
    keep = keep[replace:]
    changed: list[TaskInfo] = []
    for index, task in enumerate(keep):
        age = (task.age or 0.0) + step
        if index % (len(keep) // count_changes or 1) == 0:
            task = dataclasses.replace(task, state="running" if step % 2 else "pending")
        changed.append(dataclasses.replace(task, age=age))
    fresh = [
        TaskInfo(
            id=1_000_000 + step * replace + i,
            name=f"Task-new-{step}-{i}",
            state="pending",
            coro="fetch_price",
            age=0.2,
            stack=base.tasks[-1].stack,
            waiting_on=base.tasks[-1].waiting_on,
        )
        for i in range(replace)
    ]
    return dataclasses.replace(base, taken_at=base.taken_at + step, tasks=tuple(changed + fresh))


def as_received(snapshot: Snapshot) -> Snapshot:
    """Through JSON and back, so every object is new, as the agent source delivers it."""
    return codec.from_json_dict(
        model.Snapshot, json.loads(json.dumps(codec.to_json_dict(snapshot)))
    )


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    median = statistics.median(values) * 1000
    return f"median {median:6.1f} ms   p95 {p95 * 1000:6.1f} ms   max {values[-1] * 1000:6.1f} ms"


async def bench_apply(rounds: int) -> None:
    base = many_tasks()
    print(f"preparing {rounds} snapshots of {len(base.tasks):,} tasks with churn…", flush=True)
    snapshots = [as_received(churn(base, step)) for step in range(1, rounds + 1)]
    diagnose = load_diagnose()
    history = History()
    prepare: list[float] = []
    painted: list[float] = []
    previous: Observation | None = None

    def prepared(snapshot: Snapshot) -> Observation:
        """What the poller's thread does with each snapshot (timed apart from the UI)."""
        nonlocal previous
        started = time.perf_counter()
        previous = observe(
            snapshot,
            history=history,
            diagnose=diagnose,
            stuck_after=5.0,
            received_at=snapshot.taken_at,
            previous=previous,
        )
        prepare.append(time.perf_counter() - started)
        return previous

    app = make_app(IdleSource(base), clock=lambda: TAKEN_AT, interval=3600, vitals=None)
    async with app.run_test(size=(160, 50)) as pilot:
        app.post_message(SnapshotReceived(prepared(snapshots[0])))
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        app.apply_seconds.clear()
        for snapshot in snapshots[1:]:
            observation = prepared(snapshot)
            started = time.perf_counter()
            app.post_message(SnapshotReceived(observation))
            await pilot.pause()
            painted.append(time.perf_counter() - started)
        applied = list(app.apply_seconds)
        rows = app.query_one("#task-table", LiveTable).row_count
    print(f"\n10,000-task snapshot, Tasks view visible ({rows:,} rows), {len(applied)} updates:")
    print(f"  apply (UI thread)           {percentiles(applied)}")
    print(f"  apply + paint (UI thread)   {percentiles(painted)}")
    print(f"  prepare (poller thread)     {percentiles(prepare)}   (diagnose + history + rows)")


def events_at(base: Snapshot, step: int) -> tuple[tuple[Stall, ...], tuple[ExceptionEvent, ...]]:
    """A stall every minute and an exception every 30 s; the target keeps the latest 20 / 50."""
    samples = base.stalls[0].samples
    traceback = base.exceptions[3].error.traceback
    stalls = tuple(
        Stall(
            id=n,
            started_at=TAKEN_AT + n * 60,
            duration=0.3,
            ongoing=False,
            samples=samples,
            request_label="GET /export",
        )
        for n in range(max(0, step // 60 - 20), step // 60 + 1)
    )
    exceptions = tuple(
        ExceptionEvent(
            id=n,
            kind="logged-error",
            at=TAKEN_AT + n * 30,
            error=ExceptionInfo(type="KeyError", message=f"'k{n}'", traceback=traceback),
        )
        for n in range(max(0, step // 30 - 50), step // 30 + 1)
    )
    return stalls, exceptions


async def bench_memory(updates: int) -> None:
    fixture = blocked()
    base = dataclasses.replace(
        many_tasks(1000), stalls=fixture.stalls, exceptions=fixture.exceptions
    )
    variants = [as_received(churn(base, step, count_changes=10, replace=5)) for step in range(60)]
    diagnose = load_diagnose()
    history = History()
    app = make_app(IdleSource(base), clock=lambda: TAKEN_AT, interval=3600, vitals=None)
    process = psutil.Process()
    previous = None
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("2")

        async def run(steps: range) -> None:
            nonlocal previous
            for step in steps:
                stalls, exceptions = events_at(base, step)
                snapshot = dataclasses.replace(
                    variants[step % len(variants)],
                    taken_at=TAKEN_AT + step,
                    stalls=stalls,
                    exceptions=exceptions,
                )
                previous = observe(
                    snapshot,
                    history=history,
                    diagnose=diagnose,
                    stuck_after=5.0,
                    received_at=snapshot.taken_at,
                    previous=previous,
                )
                # The handler itself, every update; the screen repaints every 20th (painting
                # keeps no state, and full speed is the point here).
                app.apply_snapshot(SnapshotReceived(previous))
                if step % 20 == 0:
                    await pilot.pause()

        await run(range(100))
        gc.collect()
        rss_before = process.memory_info().rss
        tracemalloc.start()
        started = time.perf_counter()
        await run(range(100, 100 + updates))
        elapsed = time.perf_counter() - started
        gc.collect()
        traced_after, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_after = process.memory_info().rss
        assert app.observation is not None, "no snapshot was applied"
        events = app.observation.events
    print(f"\n{updates:,} updates of a 1,000-task server (an hour at 1 Hz) in {elapsed:.0f} s:")
    print(
        f"  RSS           {rss_before / 2**20:7.1f} MB → {rss_after / 2**20:7.1f} MB "
        f"({(rss_after - rss_before) / 2**20:+.1f} MB)"
    )
    print(
        f"  tracemalloc   {traced_after / 2**20:+.1f} MB still allocated "
        f"from the {updates:,} updates "
        f"(peak {traced_peak / 2**20:.1f} MB)"
    )
    print(
        f"  history kept  {len(events.stalls)} stalls, {len(events.exceptions)} exceptions "
        "(bounded at 500 each)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20 apply rounds and 600 updates")
    args = parser.parse_args()
    asyncio.run(bench_apply(20 if args.quick else 60))
    asyncio.run(bench_memory(600 if args.quick else 3600))
    return 0


if __name__ == "__main__":
    sys.exit(main())
