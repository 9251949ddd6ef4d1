"""When cancelling is refused and how old the data is: plain functions of the app's state."""

from __future__ import annotations

import dataclasses

import pytest

from inspector import protocol
from inspector.model import Snapshot
from inspector.tui.connection import ConnectionState, age_of_data, why_not_cancel
from inspector.tui.history import History
from inspector.tui.poller import Observation
from tests.tui.fakes import load


def observe(snapshot: Snapshot, received_at: float = 0.0) -> Observation:
    return Observation(
        snapshot=snapshot, findings=(), events=History().add(snapshot), received_at=received_at
    )


HEALTHY = load("healthy")
HELLO = protocol.Hello(protocol=1, agent_version="test", process=HEALTHY.process)


@pytest.mark.parametrize(
    ("live", "connection", "snapshot", "hello", "refusal"),
    [
        pytest.param(True, "live", HEALTHY, HELLO, None, id="live agent"),
        pytest.param(False, "offline", HEALTHY, HELLO, "this is a saved snapshot", id="file"),
        pytest.param(True, "disconnected", HEALTHY, HELLO, "the target is disconnected", id="away"),
        pytest.param(True, "failed", HEALTHY, HELLO, "the target is disconnected", id="stopped"),
        pytest.param(True, "connecting", None, None, "no data yet", id="no data"),
        pytest.param(
            True,
            "live",
            dataclasses.replace(HEALTHY, capabilities=("tasks",)),
            HELLO,
            "the target does not offer it",
            id="no capability",
        ),
        pytest.param(
            True,
            "live",
            HEALTHY,
            dataclasses.replace(HELLO, read_only=True),
            "the agent is read-only",
            id="read-only",
        ),
    ],
)
def test_why_a_task_cannot_be_cancelled(
    live: bool,
    connection: ConnectionState,
    snapshot: Snapshot | None,
    hello: protocol.Hello | None,
    refusal: str | None,
) -> None:
    observation = observe(snapshot) if snapshot is not None else None
    assert (
        why_not_cancel(live=live, connection=connection, observation=observation, hello=hello)
        == refusal
    )


def test_live_data_ages_from_its_arrival_a_file_from_when_it_was_taken() -> None:
    observation = observe(HEALTHY, received_at=HEALTHY.taken_at + 10)
    assert age_of_data(observation, HEALTHY.taken_at + 12, live=True) == 2
    assert age_of_data(observation, HEALTHY.taken_at + 12, live=False) == 12
    assert age_of_data(None, 5.0, live=True) is None
