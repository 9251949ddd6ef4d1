"""The wait-for graph and its cycles."""

from __future__ import annotations

from inspector.diagnose.wait_graph import build_wait_graph, find_cycles
from tests.factories import snapshot, task, wait


def lock_held_by(*holders: int, object_id: int = 1) -> object:
    return wait("lock", "Lock.acquire()", object_id=object_id, holder_task_ids=holders)


def cycles(*tasks) -> list[tuple[int, ...]]:
    return find_cycles(build_wait_graph(snapshot(tasks=tasks)))


def test_two_tasks_holding_each_others_lock() -> None:
    assert cycles(task(1, waiting_on=lock_held_by(2)), task(2, waiting_on=lock_held_by(1))) == [
        (1, 2)
    ]


def test_three_task_cycle_in_order() -> None:
    result = cycles(
        task(1, waiting_on=lock_held_by(3)),
        task(2, waiting_on=lock_held_by(1)),
        task(3, waiting_on=lock_held_by(2)),
        task(4, waiting_on=lock_held_by(1)),  # waits on the cycle, is not part of it
    )
    assert result == [(1, 3, 2)]


def test_a_task_waiting_on_a_lock_it_holds() -> None:
    assert cycles(task(5, waiting_on=lock_held_by(5))) == [(5,)]


def test_a_chain_is_not_a_cycle() -> None:
    assert cycles(task(1, waiting_on=lock_held_by(2)), task(2, waiting_on=wait("sleep"))) == []


def test_awaiting_a_task_that_waits_for_you() -> None:
    parent = task(1, waiting_on=wait("task", "await child", awaited_task_ids=(2,)))
    child = task(2, waiting_on=lock_held_by(1))
    assert cycles(parent, child) == [(1, 2)]


def test_finished_holders_make_no_edges() -> None:
    assert (
        cycles(
            task(1, waiting_on=lock_held_by(2)), task(2, state="failed", waiting_on=lock_held_by(1))
        )
        == []
    )


def test_two_separate_deadlocks() -> None:
    result = cycles(
        task(1, waiting_on=lock_held_by(2)),
        task(2, waiting_on=lock_held_by(1)),
        task(7, waiting_on=lock_held_by(8)),
        task(8, waiting_on=lock_held_by(7)),
    )
    assert result == [(1, 2), (7, 8)]


def test_a_long_chain_does_not_hit_the_recursion_limit() -> None:
    n = 5000
    tasks = [task(i, waiting_on=lock_held_by(i + 1)) for i in range(n)] + [
        task(n, waiting_on=lock_held_by(0))
    ]
    assert len(cycles(*tasks)[0]) == n + 1
