"""What a parked task waits for, for each primitive, as the tasks probe reports it.

Real primitives on a real loop thread, collected from the test thread like the agent does.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from inspector.agent.probe import CollectOptions
from inspector.agent.tasks import TasksProbe
from inspector.agent.waits import WaitContext, describe_wait, task_label
from inspector.model import WaitInfo
from tests.agent.test_tasks import (
    TIMEOUT,
    Inspected,
    LoopThread,
    inspecting,
    park_on,
    running_app,
)


@pytest.fixture(params=["asyncio", "uvloop"])
def app(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    yield from running_app(request.param)


@pytest.fixture
def inspected(app: LoopThread) -> Iterator[Inspected]:
    yield from inspecting(app)


def wait_of(inspected: Inspected, task: asyncio.Task[Any], kind: str) -> WaitInfo:
    info = inspected.waiting(task, kind).waiting_on
    assert info is not None
    return info


def held_and_awaited(
    inspected: Inspected, make: Callable[[], Any]
) -> tuple[Any, asyncio.Task[Any], asyncio.Task[Any]]:
    """A lock-like primitive made on the loop, a task "holder" that holds it until the test
    ends, and a task "waiter" parked trying to acquire it."""
    primitive = inspected.app.call(make)
    release = inspected.app.call(asyncio.Event)

    async def hold() -> None:
        async with primitive:
            await release.wait()

    holder = inspected.app.spawn(hold(), name="holder")
    waiter = inspected.app.spawn(primitive.acquire(), name="waiter")
    return primitive, holder, waiter


# --- locks ---------------------------------------------------------------------------------------


def test_deadlock_each_task_waits_on_a_lock_held_by_the_other(inspected: Inspected) -> None:
    first_lock, second_lock = inspected.app.call(lambda: (asyncio.Lock(), asyncio.Lock()))
    holding = inspected.app.call(lambda: [asyncio.Event(), asyncio.Event()])

    async def take(mine: asyncio.Lock, theirs: asyncio.Lock, me: int) -> None:
        async with mine:
            holding[me].set()
            await holding[1 - me].wait()
            async with theirs:
                pass

    one = inspected.app.spawn(take(first_lock, second_lock, 0), name="one")
    two = inspected.app.spawn(take(second_lock, first_lock, 1), name="two")

    one_waits = wait_of(inspected, one, "lock")
    two_waits = wait_of(inspected, two, "lock")
    assert one_waits.object_id == id(second_lock)
    assert one_waits.holder_task_ids == (id(two),)
    assert two_waits.object_id == id(first_lock)
    assert two_waits.holder_task_ids == (id(one),)
    assert one_waits.waiters == 1
    assert "held by two" in one_waits.description


def test_lock_leaked_by_a_finished_task_names_it(inspected: Inspected) -> None:
    lock = inspected.app.call(asyncio.Lock)

    async def leak() -> None:
        await lock.acquire()
        raise RuntimeError("error path that forgets to release")

    async def want() -> None:
        async with lock:
            pass

    leaker = inspected.app.spawn(leak(), name="leaker")
    inspected.app.run(asyncio.wait([leaker]))
    waiter = inspected.app.spawn(want(), name="waiter")

    info = wait_of(inspected, waiter, "lock")
    assert info.holder_task_ids == (id(leaker),)
    assert "never released" in info.description
    assert isinstance(inspected.app.call(leaker.exception), RuntimeError)


def test_lock_without_tracking_says_so(app: LoopThread) -> None:
    untracked = inspecting(app, TasksProbe(track_locks=False))
    inspected = next(untracked)
    lock = app.call(asyncio.Lock)

    async def hold(release: asyncio.Event) -> None:
        async with lock:
            await release.wait()

    release = app.call(asyncio.Event)
    app.spawn(hold(release))
    waiter = app.spawn(lock.acquire())
    info = wait_of(inspected, waiter, "lock")
    assert info.holder_task_ids == ()
    assert "tracking off" in info.description
    untracked.close()


def test_semaphore_lists_its_holders(inspected: Inspected) -> None:
    semaphore, holder, waiter = held_and_awaited(inspected, lambda: asyncio.Semaphore(1))

    info = wait_of(inspected, waiter, "semaphore")
    assert info.object_id == id(semaphore)
    assert info.holder_task_ids == (id(holder),)
    assert info.waiters == 1
    assert "value 0" in info.description


def test_semaphore_leaked_on_an_error_path(inspected: Inspected) -> None:
    semaphore = inspected.app.call(lambda: asyncio.Semaphore(1))

    async def leak() -> None:
        await semaphore.acquire()
        raise RuntimeError("forgot to release")

    leaker = inspected.app.spawn(leak())
    inspected.app.run(asyncio.wait([leaker]))
    waiter = inspected.app.spawn(semaphore.acquire())

    info = wait_of(inspected, waiter, "semaphore")
    assert info.holder_task_ids == ()
    assert "leaked" in info.description
    assert isinstance(inspected.app.call(leaker.exception), RuntimeError)


def test_condition(inspected: Inspected) -> None:
    condition = inspected.app.call(asyncio.Condition)

    async def wait_for_notify() -> None:
        async with condition:
            await condition.wait()

    task = inspected.app.spawn(wait_for_notify())
    info = wait_of(inspected, task, "condition")
    assert info.object_id == id(condition)
    assert info.waiters == 1


# --- queues --------------------------------------------------------------------------------------


def test_queue_get_on_an_empty_queue(inspected: Inspected) -> None:
    queue: asyncio.Queue[int] = inspected.app.call(asyncio.Queue)
    task = inspected.app.spawn(queue.get())

    info = wait_of(inspected, task, "queue-get")
    assert info.object_id == id(queue)
    assert info.waiters == 1
    assert "0 items" in info.description


def test_queue_put_on_a_full_queue(inspected: Inspected) -> None:
    queue: asyncio.Queue[int] = inspected.app.call(lambda: asyncio.Queue(maxsize=1))
    queue.put_nowait(1)  # nothing waits on it yet: safe from this thread
    task = inspected.app.spawn(queue.put(2))

    info = wait_of(inspected, task, "queue-put")
    assert info.object_id == id(queue)
    assert "1/1" in info.description


def test_queue_join_with_unfinished_items(inspected: Inspected) -> None:
    queue: asyncio.Queue[int] = inspected.app.call(asyncio.Queue)
    queue.put_nowait(1)
    queue.put_nowait(2)
    task = inspected.app.spawn(queue.join())

    info = wait_of(inspected, task, "queue-join")
    assert info.object_id == id(queue)
    assert "2 unfinished" in info.description


# --- time, tasks, gather -------------------------------------------------------------------------


def test_sleep_reports_the_time_left(inspected: Inspected) -> None:
    task = inspected.app.spawn(asyncio.sleep(30))

    info = wait_of(inspected, task, "sleep")
    assert info.remaining is not None
    assert 25 < info.remaining <= 30


def test_awaiting_another_task(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    awaited = inspected.app.spawn(park_on(event), name="awaited")

    async def await_it() -> None:
        await awaited

    task = inspected.app.spawn(await_it())
    info = wait_of(inspected, task, "task")
    assert info.awaited_task_ids == (id(awaited),)
    assert "awaited" in info.description


def test_gather_lists_its_children(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)

    async def gather_two() -> None:
        await asyncio.gather(park_on(event), asyncio.sleep(30))

    task = inspected.app.spawn(gather_two())
    info = wait_of(inspected, task, "gather")
    assert len(info.awaited_task_ids) == 2
    children = {t.id: t for t in inspected.collect()["tasks"] if t.id in info.awaited_task_ids}
    assert sorted(t.coro for t in children.values()) == ["park_on", "sleep"]
    assert "of 2 (0 done)" in info.description


def test_asyncio_wait_lists_what_it_waits_for(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)
    children = [inspected.app.spawn(park_on(event)) for _ in range(2)]

    async def wait_both() -> None:
        await asyncio.wait(children)

    task = inspected.app.spawn(wait_both())
    info = wait_of(inspected, task, "gather")
    assert sorted(info.awaited_task_ids) == sorted(id(t) for t in children)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in 3.11")
def test_asyncio_task_group(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)

    async def group() -> None:
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
            tg.create_task(park_on(event))
            tg.create_task(park_on(event))

    task = inspected.app.spawn(group())
    info = wait_of(inspected, task, "taskgroup")
    assert len(info.awaited_task_ids) == 2


def test_anyio_task_group(inspected: Inspected) -> None:
    event = inspected.app.call(asyncio.Event)

    async def group() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(park_on, event)
            tg.start_soon(park_on, event)
            tg.start_soon(park_on, event)

    task = inspected.app.spawn(group())
    info = wait_of(inspected, task, "taskgroup")
    assert len(info.awaited_task_ids) == 3
    assert "anyio TaskGroup of 3 (0 done)" in info.description


def test_socket_read(inspected: Inspected) -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    try:

        async def read() -> bytes:
            return await asyncio.get_running_loop().sock_recv(ours, 10)

        task = inspected.app.spawn(read())
        info = inspected.wait_for(task, lambda t: t.waiting_on is not None).waiting_on
        assert info is not None
        if isinstance(inspected.app.loop, asyncio.BaseEventLoop):
            assert info.kind == "stream"
            assert f"fd {ours.fileno()}" in info.description
        else:  # uvloop reads sockets in C: only a pending Future is visible
            assert info.kind == "future"
        theirs.sendall(b"hi")
        assert inspected.app.run(asyncio.wait_for(asyncio.shield(task), TIMEOUT)) == b"hi"
    finally:
        ours.close()
        theirs.close()


# --- threads -------------------------------------------------------------------------------------


def test_to_thread_names_the_worker_thread(inspected: Inspected) -> None:
    release = threading.Event()
    worker: list[int] = []

    def blocking_io() -> None:
        worker.append(threading.get_ident())
        release.wait(TIMEOUT)

    task = inspected.app.spawn(asyncio.to_thread(blocking_io))
    try:
        info = inspected.wait_for(
            task, lambda t: t.waiting_on is not None and t.waiting_on.thread_id is not None
        ).waiting_on
    finally:
        release.set()
    assert info is not None
    assert info.kind == "thread"
    assert info.thread_id == worker[0]
    assert "blocking_io" in info.description


def test_run_in_executor_names_the_function_and_thread(inspected: Inspected) -> None:
    release = threading.Event()
    worker: list[int] = []

    def crunch() -> None:
        worker.append(threading.get_ident())
        release.wait(TIMEOUT)

    async def run() -> None:
        await asyncio.get_running_loop().run_in_executor(None, crunch)

    task = inspected.app.spawn(run())
    try:
        info = inspected.wait_for(
            task, lambda t: t.waiting_on is not None and t.waiting_on.thread_id is not None
        ).waiting_on
    finally:
        release.set()
    assert info is not None
    assert info.kind == "thread"
    assert info.thread_id == worker[0]
    assert "run_in_executor(" in info.description and "crunch" in info.description


def test_anyio_to_thread_names_the_worker_thread(inspected: Inspected) -> None:
    release = threading.Event()
    worker: list[int] = []

    def blocking_io() -> None:
        worker.append(threading.get_ident())
        release.wait(TIMEOUT)

    task = inspected.app.spawn(anyio.to_thread.run_sync(blocking_io))
    try:
        info = inspected.wait_for(
            task,
            lambda t: t.waiting_on is not None and t.waiting_on.kind == "thread" and bool(worker),
        ).waiting_on
    finally:
        release.set()
    assert info is not None
    assert info.thread_id == worker[0]
    assert "blocking_io" in info.description


def test_anyio_capacity_limiter_wait(inspected: Inspected) -> None:
    _limiter, holder, waiter = held_and_awaited(inspected, lambda: anyio.CapacityLimiter(1))

    info = wait_of(inspected, waiter, "limiter")
    assert "1/1 tokens" in info.description
    assert info.holder_task_ids == (id(holder),)
    assert info.waiters == 1


def test_anyio_lock_holder(inspected: Inspected) -> None:
    _lock, holder, waiter = held_and_awaited(inspected, anyio.Lock)

    info = wait_of(inspected, waiter, "lock")
    assert info.holder_task_ids == (id(holder),)


def test_anyio_memory_stream_receive(inspected: Inspected) -> None:
    send, receive = inspected.app.call(lambda: anyio.create_memory_object_stream[int](1))
    task = inspected.app.spawn(receive.receive())
    try:
        info = wait_of(inspected, task, "stream")
        assert "receive" in info.description
        assert "0/1 buffered" in info.description
    finally:
        inspected.app.call(send.close)  # the receiver ends with EndOfStream

        async def settle() -> None:
            await asyncio.gather(task, return_exceptions=True)

        inspected.app.run(settle())
        inspected.app.call(receive.close)


def test_stream_reader_read(inspected: Inspected) -> None:
    reader = inspected.app.call(asyncio.StreamReader)
    task = inspected.app.spawn(reader.read(10))

    info = wait_of(inspected, task, "stream")
    assert "read" in info.description


def test_plain_future(inspected: Inspected) -> None:
    fut = inspected.app.call(lambda: inspected.app.loop.create_future())

    async def await_future() -> None:
        await fut

    task = inspected.app.spawn(await_future())
    info = wait_of(inspected, task, "future")
    assert info.object_id == id(fut)
    assert "await_future" in info.description


# --- the function itself -------------------------------------------------------------------------


def test_describe_wait_of_a_task_ready_to_run_is_none() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert describe_wait([], None, WaitContext(loop)) is None
    finally:
        loop.close()


def test_task_label() -> None:
    async def named() -> None:
        return None

    async def scenario() -> str:
        task = asyncio.get_running_loop().create_task(named(), name="job")
        label = task_label(task)
        await task
        return label

    assert asyncio.run(scenario()) == "job (test_task_label.<locals>.named)"


def test_collect_options_are_respected_for_waits(inspected: Inspected) -> None:
    queue: asyncio.Queue[int] = inspected.app.call(asyncio.Queue)
    task = inspected.app.spawn(queue.get())
    wait_of(inspected, task, "queue-get")
    part = inspected.probe.collect(inspected.context, CollectOptions(with_stacks=False))
    entry = next(t for t in part["tasks"] if t.id == id(task))
    assert entry.waiting_on is not None and entry.waiting_on.kind == "queue-get"
    assert entry.stack == ()
