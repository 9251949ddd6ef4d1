"""A method that only hands over to its base class is not the line to fix: its caller is."""

from __future__ import annotations

from inspector.diagnose.locate import innermost_application_frame
from tests.factories import app, std

LOCK_ACQUIRE = std("asyncio/locks.py", 114, "Lock.acquire", "await fut")


def test_a_lock_subclass_handing_over_to_super_names_the_line_that_takes_the_lock() -> None:
    caller = app(20, "transfer", "async with lock_b:")
    stack = (
        caller,
        app(8, "CountingLock.acquire", "result = await super().acquire()"),
        LOCK_ACQUIRE,
    )
    assert innermost_application_frame(stack) == caller


def test_a_method_that_does_more_than_hand_over_is_named() -> None:
    pool = app(31, "Pool.acquire", "async with self._lock:")
    stack = (app(20, "checkout", "conn = await pool.acquire()"), pool, LOCK_ACQUIRE)
    assert innermost_application_frame(stack) == pool


def test_a_hand_over_to_another_method_of_the_base_is_named() -> None:
    helper = app(12, "Cache.refresh", "await super().load(key)")
    assert innermost_application_frame((app(3, "main", "await c.refresh()"), helper)) == helper


def test_with_nothing_but_hand_overs_the_innermost_is_named() -> None:
    forward = app(8, "CountingLock.acquire", "return await super().acquire()")
    assert innermost_application_frame((forward, LOCK_ACQUIRE)) == forward
