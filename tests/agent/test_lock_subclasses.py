"""Lock owners are tracked for the app's own Lock and Semaphore classes too.

Apps subclass asyncio's primitives (a named lock for their logs, a semaphore that counts) and
lock-debugging helpers even put a subclass in `asyncio.Lock`'s place. None of that may turn
owner tracking off, or a deadlock between two such locks goes unreported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, Literal

import pytest

from inspector.agent import locks
from inspector.agent.locks import LockTracker, asyncio_class, original_method
from inspector.agent.tasks import TasksProbe
from tests.agent.test_tasks import Inspected, LoopThread, inspecting, running_app

STDLIB_LOCK = asyncio.locks.Lock
STDLIB_SEMAPHORE = asyncio.locks.Semaphore


class NamedLock(asyncio.Lock):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class CountingLock(asyncio.Lock):
    """Overrides both methods and hands over to asyncio's with super()."""

    def __init__(self) -> None:
        super().__init__()
        self.acquired = 0
        self.released = 0

    async def acquire(self) -> Literal[True]:
        result = await super().acquire()
        self.acquired += 1
        return result

    def release(self) -> None:
        super().release()
        self.released += 1


class CountingSemaphore(asyncio.Semaphore):
    async def acquire(self) -> Literal[True]:
        return await super().acquire()

    def release(self) -> None:
        super().release()


class PoolSlots(asyncio.BoundedSemaphore):
    pass


class TracedLock(asyncio.Lock):
    """What a lock-debugging helper installs as `asyncio.Lock`: it overrides `acquire` only."""

    async def acquire(self) -> Literal[True]:
        return await super().acquire()


class TracedSemaphore(asyncio.Semaphore):
    async def acquire(self) -> Literal[True]:
        return await super().acquire()


def stdlib_methods() -> list[Any]:
    return [
        cls.__dict__[name]
        for cls in (STDLIB_LOCK, STDLIB_SEMAPHORE)
        for name in ("acquire", "release")
    ]


@pytest.fixture
def tracker() -> Iterator[LockTracker]:
    tracking = LockTracker()
    tracking.install()
    try:
        yield tracking
    finally:
        tracking.close()


@pytest.fixture
def replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """`asyncio.Lock` and `asyncio.Semaphore` replaced by subclasses, as a debugging helper does."""
    monkeypatch.setattr(asyncio, "Lock", TracedLock)
    monkeypatch.setattr(asyncio, "Semaphore", TracedSemaphore)


@pytest.mark.parametrize("make", [lambda: NamedLock("orders"), CountingLock, TracedLock])
async def test_a_lock_subclass_names_its_holder_and_forgets_it_at_release(
    tracker: LockTracker, make: Any
) -> None:
    lock = make()
    async with lock:
        holder = tracker.lock_holder(lock)
        assert holder is not None and holder.task is asyncio.current_task()
    assert tracker.lock_holder(lock) is None


async def test_an_overriding_subclass_behaves_as_without_tracking(tracker: LockTracker) -> None:
    lock = CountingLock()
    for _ in range(3):
        async with lock:
            pass
    assert (lock.acquired, lock.released, lock.locked()) == (3, 3, False)


@pytest.mark.parametrize("make", [lambda: CountingSemaphore(2), lambda: PoolSlots(2)])
async def test_a_semaphore_subclass_lists_its_holders(tracker: LockTracker, make: Any) -> None:
    semaphore = make()
    await semaphore.acquire()
    holders = tracker.semaphore_holders(semaphore)
    assert holders is not None and holders.live == (asyncio.current_task(),)
    semaphore.release()
    holders = tracker.semaphore_holders(semaphore)
    assert holders is not None and holders.live == ()


async def test_a_bounded_semaphore_subclass_still_refuses_an_extra_release(
    tracker: LockTracker,
) -> None:
    slots = PoolSlots(1)
    async with slots:
        pass
    with pytest.raises(ValueError):
        slots.release()


async def test_tracking_starts_when_asyncio_lock_was_replaced_by_a_subclass(
    replaced: None,
) -> None:
    before = stdlib_methods()
    tracking = LockTracker()
    tracking.install()  # used to fail with KeyError('release'), leaving tracking off
    try:
        assert tracking.installed
        assert all(now is not then for now, then in zip(stdlib_methods(), before, strict=True))
        assert "acquire" in TracedLock.__dict__ and "release" not in TracedLock.__dict__
        lock, semaphore = asyncio.Lock(), asyncio.Semaphore(1)
        async with lock, semaphore:
            assert tracking.lock_holder(lock) is not None
            holders = tracking.semaphore_holders(semaphore)
            assert holders is not None and holders.live == (asyncio.current_task(),)
    finally:
        tracking.close()
    assert stdlib_methods() == before
    assert asyncio.Lock is TracedLock  # the app's replacement is left as it was


def test_asyncio_class_is_the_stdlib_class_whatever_asyncio_lock_names(replaced: None) -> None:
    assert asyncio_class("Lock") is STDLIB_LOCK
    assert asyncio_class("Semaphore") is STDLIB_SEMAPHORE
    assert original_method(TracedLock, "release") is STDLIB_LOCK.__dict__["release"]


def test_a_failed_install_patches_nothing_and_a_later_one_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = stdlib_methods()

    def broken(name: str) -> type:
        raise LookupError(f"no {name}")

    with monkeypatch.context() as patch:
        patch.setattr(locks, "asyncio_class", broken)
        with pytest.raises(LookupError):
            LockTracker().install()
        assert stdlib_methods() == before
    tracking = LockTracker()
    tracking.install()
    try:
        assert all(now is not then for now, then in zip(stdlib_methods(), before, strict=True))
    finally:
        tracking.close()
    assert stdlib_methods() == before


# --- what a waiting task is reported to wait on ------------------------------------------------


@pytest.fixture(params=["asyncio", "uvloop"])
def app(request: pytest.FixtureRequest) -> Iterator[LoopThread]:
    yield from running_app(request.param)


def holder_and_waiter(
    inspected: Inspected, make: Any
) -> tuple[Any, asyncio.Task[Any], asyncio.Task[Any]]:
    primitive = inspected.app.call(make)
    release = inspected.app.call(asyncio.Event)

    async def hold() -> None:
        async with primitive:
            await release.wait()

    holder = inspected.app.spawn(hold(), name="holder")
    waiter = inspected.app.spawn(primitive.acquire(), name="waiter")
    return primitive, holder, waiter


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (CountingLock, "lock"),
        (lambda: NamedLock("orders"), "lock"),
        (lambda: CountingSemaphore(1), "semaphore"),
        (lambda: PoolSlots(1), "semaphore"),
    ],
)
def test_a_task_waiting_on_a_subclass_is_told_who_holds_it(
    app: LoopThread, make: Any, kind: str
) -> None:
    inspecting_app = inspecting(app, TasksProbe())
    inspected = next(inspecting_app)
    try:
        primitive, holder, waiter = holder_and_waiter(inspected, make)
        info = inspected.waiting(waiter, kind).waiting_on
        assert info is not None
        assert info.object_id == id(primitive)
        assert info.holder_task_ids == (id(holder),)
        assert "held by holder" in info.description
        assert type(primitive).__name__ in info.description
    finally:
        inspecting_app.close()


def test_waits_on_the_replacement_lock_are_described(app: LoopThread, replaced: None) -> None:
    inspecting_app = inspecting(app, TasksProbe())
    inspected = next(inspecting_app)
    try:
        lock, holder, waiter = holder_and_waiter(inspected, asyncio.Lock)
        assert type(lock) is TracedLock
        info = inspected.waiting(waiter, "lock").waiting_on
        assert info is not None and info.holder_task_ids == (id(holder),)
        assert inspected.context.health((), 0.0).errors == 0
    finally:
        inspecting_app.close()
