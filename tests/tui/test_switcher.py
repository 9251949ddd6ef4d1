"""The worker switcher's rules, without a screen: labels, stepping, following the group."""

from __future__ import annotations

from inspector.tui.switcher import Follow, Notice, WorkerRoster
from inspector.tui.workers import Worker, WorkerStatus

ONE = Worker(pid=501, address="127.0.0.1:20100")
TWO = Worker(pid=502, address="127.0.0.1:20101")
THREE = Worker(pid=503, address="127.0.0.1:20102")


def roster(*workers: Worker, current: Worker | None = ONE) -> WorkerRoster:
    return WorkerRoster(parent_pid=1, workers=workers, current=current)


def test_the_label_names_the_position_and_the_pid() -> None:
    assert roster(ONE, TWO, current=TWO).label() == "worker 2/2 (pid 502)"
    assert roster(TWO, current=ONE).label() == "worker gone (pid 501)"
    assert roster(ONE, current=None).label() == "parent pid 1 · no worker"


def test_stepping_wraps_around_and_says_when_there_is_nowhere_to_go() -> None:
    assert roster(ONE, TWO, THREE).step(1) == TWO
    assert roster(ONE, TWO, THREE).step(-1) == THREE
    assert roster(ONE).step(1) == Notice("This is the only worker.")
    assert isinstance(roster().step(1), Notice)


def test_a_new_round_keeps_the_shown_worker_while_it_lives() -> None:
    updated, follow = roster(ONE, TWO).follow([WorkerStatus(ONE), WorkerStatus(THREE)])
    assert updated.workers == (ONE, THREE) and updated.current == ONE
    assert follow == Follow()


def test_a_worker_restarted_on_its_port_is_followed_without_a_switch() -> None:
    restarted = Worker(pid=601, address=ONE.address)
    updated, follow = roster(ONE, TWO).follow([WorkerStatus(restarted), WorkerStatus(TWO)])
    assert updated.current == restarted
    assert follow.switch_to is None and follow.notice is not None
    assert follow.notice.title == "Worker restarted" and "601" in follow.notice.message


def test_a_gone_worker_is_left_for_the_first_that_answers() -> None:
    statuses = [WorkerStatus(TWO, error="did not answer in time"), WorkerStatus(THREE)]
    _updated, follow = roster(ONE, TWO).follow(statuses)
    assert follow.switch_to == THREE
    assert follow.notice is not None and follow.notice.severity == "warning"


def test_with_no_worker_left_it_says_so_and_stays() -> None:
    updated, follow = roster(ONE).follow([])
    assert follow.switch_to is None and updated.current == ONE
    assert follow.notice is not None and follow.notice.severity == "error"


def test_without_a_shown_worker_the_first_one_is_shown_and_announced() -> None:
    _updated, follow = roster(current=None).follow([WorkerStatus(TWO)])
    assert follow == Follow(switch_to=TWO)
