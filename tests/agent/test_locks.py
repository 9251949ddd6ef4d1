"""Lock ownership tracking: who holds a Lock or Semaphore, without changing how they behave."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from inspector.agent import locks
from inspector.agent.locks import LockTracker, original_method

PATCHED = (
    (asyncio.Lock, "acquire"),
    (asyncio.Lock, "release"),
    (asyncio.Semaphore, "acquire"),
    (asyncio.Semaphore, "release"),
)


def methods() -> list[Any]:
    return [cls.__dict__[name] for cls, name in PATCHED]


@pytest.fixture
def tracker() -> Iterator[LockTracker]:
    tracking = LockTracker()
    tracking.install()
    try:
        yield tracking
    finally:
        tracking.close()


def test_close_restores_the_original_methods() -> None:
    originals = methods()
    tracker = LockTracker()
    tracker.install()
    assert all(now is not before for now, before in zip(methods(), originals, strict=True))
    tracker.close()
    assert all(now is before for now, before in zip(methods(), originals, strict=True))
    tracker.close()  # a second close is harmless
    assert all(now is before for now, before in zip(methods(), originals, strict=True))


def test_installs_are_counted() -> None:
    originals = methods()
    first, second = LockTracker(), LockTracker()
    first.install()
    second.install()
    first.close()
    assert asyncio.Lock.__dict__["acquire"] is not originals[0]  # still needed by `second`
    second.close()
    assert methods() == originals


def test_wrapped_methods_look_like_the_originals(tracker: LockTracker) -> None:
    original = original_method(asyncio.Lock, "acquire")
    assert asyncio.Lock.acquire is not original
    assert asyncio.Lock.acquire.__name__ == "acquire"
    assert asyncio.Lock.acquire.__doc__ == original.__doc__
    assert asyncio.iscoroutinefunction(asyncio.Lock.acquire)
    assert asyncio.iscoroutinefunction(asyncio.Semaphore.acquire)
    assert not asyncio.iscoroutinefunction(asyncio.Lock.release)


async def test_the_holder_is_recorded_and_cleared(tracker: LockTracker) -> None:
    lock = asyncio.Lock()
    assert tracker.lock_holder(lock) is None
    async with lock:
        holder = tracker.lock_holder(lock)
        assert holder is not None
        assert holder.task is asyncio.current_task()
        assert holder.task_id == id(asyncio.current_task())
    assert tracker.lock_holder(lock) is None


async def test_a_lock_taken_before_tracking_has_no_known_holder() -> None:
    lock = asyncio.Lock()
    await lock.acquire()
    tracker = LockTracker()
    tracker.install()
    try:
        assert tracker.lock_holder(lock) is None
        lock.release()
    finally:
        tracker.close()


async def lock_transcript(cancel_second: bool) -> list[str]:
    """Three waiters queue on a held lock; optionally the second is cancelled while queued."""
    lock = asyncio.Lock()
    events: list[str] = []

    async def worker(name: str) -> None:
        try:
            result = await lock.acquire()
        except asyncio.CancelledError:
            events.append(f"{name} cancelled")
            raise
        events.append(f"{name} got {result}")
        await asyncio.sleep(0)
        lock.release()

    assert await lock.acquire() is True
    workers = [asyncio.create_task(worker(f"w{i}")) for i in range(3)]
    await asyncio.sleep(0)
    if cancel_second:
        workers[1].cancel()
        await asyncio.sleep(0)
    lock.release()
    results = await asyncio.gather(*workers, return_exceptions=True)
    events.append(f"results {[type(r).__name__ for r in results]}")
    events.append(f"locked at the end: {lock.locked()}")
    with pytest.raises(RuntimeError) as unlocked:
        lock.release()
    events.append(f"release unlocked: {unlocked.value}")
    async with lock:
        events.append("async with works")
    return events


@pytest.mark.parametrize("cancel_second", [False, True])
async def test_lock_semantics_are_unchanged(cancel_second: bool) -> None:
    plain = await lock_transcript(cancel_second)
    tracker = LockTracker()
    tracker.install()
    try:
        tracked = await lock_transcript(cancel_second)
    finally:
        tracker.close()
    assert tracked == plain
    gets = [event for event in tracked if " got " in event]
    if cancel_second:
        assert gets == ["w0 got True", "w2 got True"]  # FIFO, the cancelled waiter skipped
        assert "w1 cancelled" in tracked
        assert "results ['NoneType', 'CancelledError', 'NoneType']" in tracked
    else:
        assert gets == ["w0 got True", "w1 got True", "w2 got True"]
    assert "locked at the end: False" in tracked


async def semaphore_transcript() -> list[str]:
    semaphore = asyncio.BoundedSemaphore(2)
    events: list[str] = []

    async def worker(name: str) -> None:
        async with semaphore:
            events.append(f"{name} in, value {semaphore._value}")
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(f"w{i}") for i in range(4)))
    with pytest.raises(ValueError) as too_many:
        semaphore.release()
    events.append(f"over-release: {too_many.value}")
    return events


async def test_semaphore_semantics_are_unchanged() -> None:
    plain = await semaphore_transcript()
    tracker = LockTracker()
    tracker.install()
    try:
        tracked = await semaphore_transcript()
    finally:
        tracker.close()
    assert tracked == plain


async def test_condition_works_on_a_tracked_lock(tracker: LockTracker) -> None:
    condition = asyncio.Condition()
    woken: list[str] = []

    async def waiter() -> None:
        async with condition:
            await condition.wait()
            woken.append("woken")
            holder = tracker.lock_holder(condition._lock)  # type: ignore[attr-defined]  # re-acquired after the wait
            assert holder is not None and holder.task is asyncio.current_task()

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    async with condition:
        condition.notify()
    await asyncio.wait_for(task, 5)
    assert woken == ["woken"]


async def test_semaphore_holders_live_and_leaked(tracker: LockTracker) -> None:
    semaphore = asyncio.Semaphore(2)
    release = asyncio.Event()

    async def hold() -> None:
        async with semaphore:
            await release.wait()

    async def leak() -> None:
        await semaphore.acquire()

    holder = asyncio.create_task(hold())
    await asyncio.create_task(leak())
    await asyncio.sleep(0)
    holders = tracker.semaphore_holders(semaphore)
    assert holders is not None
    assert holders.live == (holder,)
    assert holders.finished == 1
    release.set()
    await holder
    holders = tracker.semaphore_holders(semaphore)
    assert holders is not None and holders.live == () and holders.finished == 1


async def test_tracking_keeps_no_task_alive(tracker: LockTracker) -> None:
    lock = asyncio.Lock()

    async def leak() -> None:
        await lock.acquire()  # never released

    task = asyncio.create_task(leak())
    await task
    task_id = id(task)
    reference = weakref.ref(task)
    del task
    for _ in range(3):  # let the loop drop the handle that woke us
        await asyncio.sleep(0)
    gc.collect()
    assert reference() is None
    holder = tracker.lock_holder(lock)
    assert holder is not None
    assert holder.task is None  # gone, but still named
    assert holder.task_id == task_id


async def test_a_condition_made_while_tracking_works_after_close() -> None:
    tracker = LockTracker()
    tracker.install()
    condition = asyncio.Condition()  # binds the wrapped lock methods now
    tracker.close()
    async with condition:
        condition.notify_all()
    assert not condition.locked()


async def test_side_tables_stay_small_when_held_locks_are_dropped(tracker: LockTracker) -> None:
    for _ in range(3 * locks._SWEEP_AT):
        await asyncio.Lock().acquire()  # held, then dropped: a leak in the app, not in us
    assert len(locks._lock_owners) < 2 * locks._SWEEP_AT

    batch = [asyncio.Lock() for _ in range(100)]
    for lock in batch:
        await lock.acquire()
    assert all(tracker.lock_holder(lock) is not None for lock in batch)
    del batch, lock
    gc.collect()
    locks._sweep(locks._lock_owners, 0)
    assert all(entry[0]() is not None for entry in locks._lock_owners.values())


async def test_side_tables_stay_small_with_many_short_lived_semaphores(
    tracker: LockTracker,
) -> None:
    for _ in range(3 * locks._SWEEP_AT):
        async with asyncio.Semaphore(1):
            pass
    assert len(locks._semaphore_holders) < 2 * locks._SWEEP_AT
