"""The tasks probe, collected from another thread while real tasks run on a loop thread.

`LoopThread` plays the app: an asyncio loop in its own thread. The test thread collects like the
agent does, so everything here also holds while the app loop is blocked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from inspector.agent.frames import innermost_application_frame
from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions, TaskLink
from inspector.agent.tasks import TasksProbe, await_chain
from inspector.model import Frame, TaskInfo

T = TypeVar("T")
TIMEOUT = 5.0


def line_of(marker: str, path: str = __file__) -> int:
    """The line number of the line of `path` that ends with the comment `marker`."""
    for number, text in enumerate(Path(path).read_text().splitlines(), start=1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(f"marker {marker!r} not found in {path}")


class LoopThread:
    """An asyncio loop running in a thread of its own, like a server's app loop."""

    def __init__(
        self, new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    ) -> None:
        self.loop = new_loop()
        self.thread_id = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="app-loop", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.thread_id = threading.get_ident()
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> LoopThread:
        self._thread.start()
        assert self._ready.wait(TIMEOUT)
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
        """Run `coro` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, func: Callable[[], T]) -> T:
        """Call `func` on the loop thread and return its result.

        The result is handed over from inside the callback, not by a later turn of the loop, so
        this returns even if what `func` schedules goes on to block the loop.
        """
        box: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                box.set_result(func())
            except BaseException as error:
                box.set_exception(error)

        self.loop.call_soon_threadsafe(call)
        return box.result(TIMEOUT)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        return self.call(lambda: self.loop.create_task(coro, name=name))

    def context(self) -> AgentContext:
        return AgentContext(loop=self.loop, loop_thread_id=self.thread_id, config=AgentConfig())

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_default_executor()

        try:
            self.run(cancel_all(), timeout=TIMEOUT)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(TIMEOUT)
            self.loop.close()


class Inspected:
    """A started loop thread with a TasksProbe installed on it, as the agent sets it up."""

    def __init__(self, app: LoopThread, probe: TasksProbe) -> None:
        self.app = app
        self.probe = probe
        self.context = app.context()

    def collect(self, **options: Any) -> dict[str, Any]:
        return dict(self.probe.collect(self.context, CollectOptions(**options)))

    def task(self, task: asyncio.Task[Any], **options: Any) -> TaskInfo:
        tasks: tuple[TaskInfo, ...] = self.collect(**options)["tasks"]
        found = next((t for t in tasks if t.id == id(task)), None)
        assert found is not None, f"{task.get_name()} not in the snapshot"
        return found

    def wait_for(
        self,
        task: asyncio.Task[Any],
        predicate: Callable[[TaskInfo], bool],
        timeout: float = TIMEOUT,
    ) -> TaskInfo:
        """Collect until `task`'s entry satisfies `predicate`; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last: TaskInfo | None = None
        while time.monotonic() < deadline:
            tasks: tuple[TaskInfo, ...] = self.collect()["tasks"]
            found = next((t for t in tasks if t.id == id(task)), None)
            if found is not None:
                last = found
                if predicate(found):
                    return found
            time.sleep(0.005)
        raise AssertionError(f"condition not reached; last seen: {last!r}")

    def wait_for_absence(self, task: asyncio.Task[Any], timeout: float = TIMEOUT) -> None:
        """Collect until `task` is no longer reported; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(t.id != id(task) for t in self.collect()["tasks"]):
                return
            time.sleep(0.005)
        raise AssertionError(f"{task.get_name()} is still reported")

    def waiting(self, task: asyncio.Task[Any], kind: str) -> TaskInfo:
        return self.wait_for(task, lambda t: t.waiting_on is not None and t.waiting_on.kind == kind)


def running_app(kind: str) -> Generator[LoopThread, None, None]:
    """A started loop thread of `kind` ("asyncio" or "uvloop"), stopped when done."""
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop_thread = LoopThread(uvloop.new_event_loop)
    else:
        loop_thread = LoopThread()
    loop_thread.start()
    try:
        yield loop_thread
    finally:
        loop_thread.stop()


def inspecting(
    app: LoopThread, probe: TasksProbe | None = None
) -> Generator[Inspected, None, None]:
    """`app` with a TasksProbe installed on its loop thread, as the agent does it."""
    state = Inspected(app, probe or TasksProbe())
    app.call(lambda: state.probe.install(state.context))
    try:
        yield state
    finally:
        state.probe.close()


@pytest.fixture(params=["asyncio", "uvloop"])
def app(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    """The app loop: the stock asyncio loop, and uvloop (which uvicorn picks when installed)."""
    yield from running_app(request.param)


@pytest.fixture
def inspected(app: LoopThread) -> Iterator[Inspected]:
    yield from inspecting(app)


# --- a task parked on an Event -------------------------------------------------------------------


async def park_on(event: asyncio.Event) -> None:
    await event.wait()  # parked-on-event


async def middle(event: asyncio.Event) -> None:
    await park_on(event)  # middle-await


async def outer(event: asyncio.Event) -> None:
    await middle(event)  # outer-await


def test_event_wait_shows_the_await_chain_down_to_the_waiting_line(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    task = inspected.app.spawn(outer(event), name="parked")

    info = inspected.waiting(task, "event")

    assert info.name == "parked"
    assert info.state == "pending"
    assert info.coro == "outer"
    app_frames = [f for f in info.stack if f.file == __file__]
    assert [(f.function, f.line) for f in app_frames] == [
        ("outer", line_of("outer-await")),
        ("middle", line_of("middle-await")),
        ("park_on", line_of("parked-on-event")),
    ]
    assert app_frames[-1].code == "await event.wait()  # parked-on-event"
    assert info.stack[-1].function.endswith("wait")  # asyncio's Event.wait, innermost last
    assert info.waiting_on is not None
    assert info.waiting_on.is_set is False
    assert info.waiting_on.object_id == id(event)
    assert info.waiting_on.waiters == 1
    assert innermost_application_frame(info.stack) == app_frames[-1]


def test_a_task_not_started_yet_waits_for_nothing(inspected: Inspected) -> None:
    queue: asyncio.Queue[int] = inspected.app.call(asyncio.Queue)

    def create_and_collect() -> tuple[asyncio.Task[Any], dict[str, Any]]:
        # Still inside this callback, the loop cannot have started the new task.
        task = inspected.app.loop.create_task(queue.get(), name="fresh")
        return task, inspected.collect()

    task, snapshot = inspected.app.call(create_and_collect)

    entry = next(t for t in snapshot["tasks"] if t.id == id(task))
    assert (entry.state, entry.coro, entry.waiting_on) == ("pending", "Queue.get", None)
    assert inspected.waiting(task, "queue-get").waiting_on is not None  # once it has run


# --- the task that is running right now ----------------------------------------------------------


def block_loop(release: threading.Event) -> None:
    release.wait(TIMEOUT)  # blocking-call


async def blocker(started: threading.Event, release: threading.Event) -> None:
    started.set()
    block_loop(release)  # calls-blocking


def is_thread_entry(frame: Frame) -> bool:
    """The loop thread's own entry point, `LoopThread._run`, far above any task."""
    return frame.file == __file__ and frame.function.rsplit(".", 1)[-1] == "_run"


def test_a_task_whose_wait_is_over_but_has_not_run_yet_waits_for_nothing(
    inspected: Inspected,
) -> None:
    """A lock handed over or an Event just set: the task only waits for its turn. Read as
    still waiting it would seem to wait for a lock it already holds."""
    event = inspected.app.call(asyncio.Event)
    task = inspected.app.spawn(park_on(event), name="woken")
    inspected.waiting(task, "event")
    released = threading.Event()

    def set_then_hold_the_loop() -> None:
        event.set()  # the task's Future is done, its turn comes after this callback
        released.wait(TIMEOUT)

    inspected.app.loop.call_soon_threadsafe(set_then_hold_the_loop)
    try:
        inspected.wait_for(task, lambda t: t.waiting_on is None)
    finally:
        released.set()


def test_running_task_stack_is_the_loop_threads_real_stack(inspected: Inspected) -> None:
    started, release = threading.Event(), threading.Event()
    task = inspected.app.spawn(blocker(started, release), name="hog")
    try:
        assert started.wait(TIMEOUT)
        snapshot = inspected.collect()
    finally:
        release.set()

    assert snapshot["current_task_id"] == id(task)
    info = next(t for t in snapshot["tasks"] if t.id == id(task))
    assert info.state == "running"
    assert info.waiting_on is None
    # Outermost is the task's own coroutine: the event-loop plumbing above it is cut.
    assert info.stack[0].function == "blocker"
    assert not any(is_thread_entry(f) for f in info.stack)
    blocking = innermost_application_frame(info.stack)
    assert blocking is not None
    assert (blocking.function, blocking.line) == ("block_loop", line_of("blocking-call"))
    assert [f.line for f in info.stack if f.function == "blocker"] == [line_of("calls-blocking")]
    # The whole thread stack is reported too, innermost last, plumbing included.
    loop_stack = snapshot["loop_thread_stack"]
    assert any(is_thread_entry(f) for f in loop_stack)
    assert innermost_application_frame(loop_stack) == blocking


def test_idle_loop_has_no_current_task(inspected: Inspected) -> None:
    snapshot = inspected.collect()
    assert snapshot["current_task_id"] is None
    assert snapshot["loop_thread_stack"]  # the loop thread, waiting in its selector


# --- options -------------------------------------------------------------------------------------


def test_without_stacks_waits_are_still_described(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    task = inspected.app.spawn(outer(event))
    inspected.waiting(task, "event")

    snapshot = inspected.collect(with_stacks=False)

    info = next(t for t in snapshot["tasks"] if t.id == id(task))
    assert info.stack == ()
    assert info.waiting_on is not None and info.waiting_on.kind == "event"
    assert snapshot["loop_thread_stack"] == ()


def test_tasks_still_parked_show_what_their_wait_is_now(inspected: Inspected) -> None:
    # Later snapshots reuse what was learnt of tasks that have not run since; the state of
    # the primitive they wait on must still be read afresh.
    event = inspected.app.call(asyncio.Event)
    first = [inspected.app.spawn(outer(event), name=f"early-{i}") for i in range(3)]
    for task in first:
        inspected.waiting(task, "event")
    before = inspected.task(first[0])
    assert before.waiting_on is not None and before.waiting_on.waiters == 3

    late = inspected.app.spawn(park_on(event), name="late")
    inspected.waiting(late, "event")
    tasks = {t.id: t for t in inspected.collect()["tasks"]}

    for task in [*first, late]:
        wait = tasks[id(task)].waiting_on
        assert wait is not None and wait.waiters == 4, task.get_name()
    assert tasks[id(first[1])].stack == before.stack  # the chain, down to the same lines
    assert tasks[id(late)].stack[-2].function == "park_on"


def test_a_parked_task_that_ran_and_parked_elsewhere_is_described_again(
    inspected: Inspected,
) -> None:
    first, second = inspected.app.call(asyncio.Event), inspected.app.call(asyncio.Event)

    async def two_waits() -> None:
        await first.wait()  # first-wait
        await second.wait()  # second-wait

    task = inspected.app.spawn(two_waits())
    parked = inspected.waiting(task, "event")
    assert parked.waiting_on is not None and parked.waiting_on.object_id == id(first)
    assert any(f.line == line_of("first-wait") for f in parked.stack)

    inspected.app.call(first.set)
    moved = inspected.wait_for(
        task, lambda t: t.waiting_on is not None and t.waiting_on.object_id == id(second)
    )
    assert any(f.line == line_of("second-wait") for f in moved.stack)
    assert not any(f.line == line_of("first-wait") for f in moved.stack)


def test_max_tasks_keeps_the_oldest_and_the_running_task(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    oldest = inspected.app.spawn(park_on(event), name="oldest")
    inspected.waiting(oldest, "event")
    younger = [inspected.app.spawn(park_on(event), name=f"young-{i}") for i in range(3)]
    for task in younger:
        inspected.waiting(task, "event")

    capped = inspected.collect(max_tasks=2)["tasks"]
    assert len(capped) == 2
    assert capped[0].id == id(oldest)

    started, release = threading.Event(), threading.Event()
    running = inspected.app.spawn(blocker(started, release), name="hog")
    try:
        assert started.wait(TIMEOUT)
        capped = inspected.collect(max_tasks=2)["tasks"]
    finally:
        release.set()
    assert [t.id for t in capped] == [id(oldest), id(running)]


def test_age_grows_from_first_sight(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    task = inspected.app.spawn(park_on(event))
    first_age = inspected.waiting(task, "event").age
    assert first_age is not None and first_age < 1.0
    later = inspected.wait_for(task, lambda t: t.age is not None and t.age >= first_age + 0.05)
    assert later.age is not None and later.age < 5.0


def test_the_probe_keeps_no_task_alive(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    task = inspected.app.spawn(park_on(event))
    inspected.waiting(task, "event")
    reference = weakref.ref(task)
    inspected.app.call(event.set)
    inspected.app.run(asyncio.wait_for(asyncio.shield(task), TIMEOUT))
    del task
    inspected.collect()  # the probe sees it gone

    deadline = time.monotonic() + TIMEOUT
    while reference() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert reference() is None


def test_request_id_comes_from_the_linkers(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    served = inspected.app.spawn(park_on(event), name="serving")
    other = inspected.app.spawn(park_on(event), name="other")

    class Linker:
        def link_for(self, task: asyncio.Task[Any]) -> TaskLink | None:
            if task is served:
                return TaskLink(request_id=42, request_label="GET /slow")
            return None

    inspected.context.linkers.append(Linker())
    assert inspected.wait_for(served, lambda t: t.waiting_on is not None).request_id == 42
    assert inspected.task(other).request_id is None


# --- robustness ----------------------------------------------------------------------------------


class Treacherous:
    """An awaitable whose iterator looks like a compiled coroutine and breaks when inspected."""

    def __init__(self, fut: asyncio.Future[int]) -> None:
        self.fut = fut

    def __await__(self) -> Treacherous:
        return self

    def __iter__(self) -> Treacherous:
        return self

    def __next__(self) -> asyncio.Future[int]:
        if not self.fut.done():
            self.fut._asyncio_future_blocking = True
            return self.fut
        raise StopIteration(self.fut.result())

    @property
    def cr_await(self) -> object:
        raise RuntimeError("this object cannot be inspected")


async def await_treacherous(fut: asyncio.Future[int]) -> int:
    result: int = await Treacherous(fut)  # type: ignore[misc]
    return result


def test_a_task_that_cannot_be_described_is_reported_with_what_is_known(
    inspected: Inspected,
) -> None:
    fut = inspected.app.call(lambda: inspected.app.loop.create_future())
    bad = inspected.app.spawn(await_treacherous(fut), name="treacherous")
    event = inspected.app.call(asyncio.Event)
    good = inspected.app.spawn(park_on(event), name="fine")
    inspected.waiting(good, "event")

    snapshot = inspected.collect()

    entry = next(t for t in snapshot["tasks"] if t.id == id(bad))
    assert (entry.name, entry.state, entry.coro) == ("treacherous", "pending", "await_treacherous")
    health = inspected.context.health((), 0.0)
    assert health.errors >= 1
    assert any("treacherous" in message for message in health.recent_errors)
    assert next(t for t in snapshot["tasks"] if t.id == id(good)).waiting_on is not None
    inspected.app.call(lambda: fut.set_result(1))
    assert inspected.app.run(asyncio.wait_for(asyncio.shield(bad), TIMEOUT)) == 1


def test_a_failing_linker_is_recorded_not_raised(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    task = inspected.app.spawn(park_on(event))

    class Broken:
        def link_for(self, task: asyncio.Task[Any]) -> TaskLink | None:
            raise ValueError("linker bug")

    inspected.context.linkers.append(Broken())
    info = inspected.waiting(task, "event")
    assert info.request_id is None
    assert inspected.context.health((), 0.0).errors >= 1


def test_await_chain_goes_through_async_generators() -> None:
    async def ticker(event: asyncio.Event) -> Any:
        await event.wait()  # inside-agen
        yield 1

    async def consume(event: asyncio.Event) -> None:
        async for _ in ticker(event):  # consume-agen
            pass

    async def scenario() -> list[tuple[str, int]]:
        event = asyncio.Event()
        task = asyncio.create_task(consume(event))
        await asyncio.sleep(0)
        frames, _ = await_chain(task.get_coro())
        chain = [(f.f_code.co_name, f.f_lineno) for f in frames]
        event.set()
        await task
        return chain

    chain = asyncio.run(scenario())
    assert chain[0] == ("consume", line_of("consume-agen"))
    assert ("ticker", line_of("inside-agen")) in chain
    assert chain[-1][0] == "wait"


def test_collecting_many_tasks_stays_fast(inspected: Inspected) -> None:
    count = 2_000

    async def spawn() -> asyncio.Event:
        event = asyncio.Event()
        for _ in range(count):
            asyncio.get_running_loop().create_task(outer(event))
        await asyncio.sleep(0.05)
        return event

    inspected.app.run(spawn())
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        snapshot = inspected.collect()
        timings.append(time.perf_counter() - started)
    assert len(snapshot["tasks"]) >= count
    assert all(t.waiting_on is not None for t in snapshot["tasks"] if t.coro == "outer")
    # About 10 ms on an idle 2-core machine; the bound only catches an accidental O(n^2).
    assert sorted(timings)[1] < 0.5


# --- ages before the first snapshot, and workers that died -----------------------------------


async def fail_later(delay: float) -> None:
    await asyncio.sleep(delay)
    raise ValueError("consumer died")  # worker-raise


def test_age_counts_from_before_the_first_snapshot(
    app: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's first snapshot already knows how long a task has waited."""
    monkeypatch.setattr("inspector.agent.tasks.SWEEP_INTERVAL", 0.02)
    for state in inspecting(app):
        event = state.app.call(asyncio.Event)
        task = state.app.spawn(park_on(event))
        time.sleep(0.4)
        assert state.task(task).age is not None
        assert state.task(task).age >= 0.3  # type: ignore[operator]


def test_a_referenced_task_that_died_is_reported_failed_at_its_raise_line(
    app: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-lived worker kept in a variable never reaches asyncio's "never retrieved" log."""
    monkeypatch.setattr("inspector.agent.tasks.SWEEP_INTERVAL", 0.02)
    for state in inspecting(app):
        task = state.app.spawn(fail_later(0.05))
        found = state.wait_for(task, lambda t: t.state == "failed")
        assert found.exception == "ValueError('consumer died')"
        assert found.stack[-1].line == line_of("worker-raise")
        assert found.stack[-1].function == "fail_later"
        task.exception()  # somebody looks at it: it is no longer reported
        state.wait_for_absence(task)
