"""The UI keeps retrying what can come back and stops, saying why once, on what cannot.

The realistic case: the UI is attached to a worker, the worker restarts with another
uvicorn-inspector version. Before, the poller retried the version mismatch forever.
"""

from __future__ import annotations

import threading

from textual.message import Message

from inspector import protocol
from inspector.client.agent_source import AgentSource
from inspector.client.source import ConnectError, DisconnectedError
from inspector.model import Snapshot
from inspector.tui.app import make_app
from inspector.tui.messages import SourceDisconnected
from inspector.tui.poller import Disconnected, Fetched, Poller
from inspector.tui.widgets.banners import ConnectionBanner
from tests.client.fake_monitor import FakeMonitor, hello_frame, running
from tests.tui.conftest import build_app, fixed_findings, frozen_clock, until_applied, wait_for
from tests.tui.fakes import FakeSource, load

SIZE = (120, 36)
NEWER = protocol.PROTOCOL_VERSION + 1


class UpgradedAgent:
    """Answers as an agent of this version until `upgrade()`; then the old agent hangs up and
    the one that answers next speaks protocol `NEWER`."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.frame = protocol.encode_message("snapshot", snapshot)
        self.version = protocol.PROTOCOL_VERSION

    def upgrade(self) -> None:
        self.version = NEWER

    def __call__(self, line: str) -> str | None:
        if line == protocol.CMD_HELLO:
            return hello_frame(self.version) + "\n"
        if line.startswith(protocol.CMD_SNAPSHOT) and self.version == protocol.PROTOCOL_VERSION:
            return self.frame + "\n"
        return None  # hang up


async def test_an_agent_of_another_version_is_reported_once_and_not_polled_again(
    healthy: Snapshot,
) -> None:
    agent = UpgradedAgent(healthy)
    async with running(FakeMonitor(agent)) as monitor:
        app = make_app(
            AgentSource("127.0.0.1", monitor.port),
            clock=frozen_clock,
            interval=0.1,
            diagnose=fixed_findings,
            vitals=None,
        )
        app.poller._backoff = (0.05,)
        posted: list[Message] = []
        async with app.run_test(size=SIZE, message_hook=posted.append) as pilot:
            await until_applied(pilot)
            assert app.connection == "live"
            agent.upgrade()
            await wait_for(pilot, lambda: app.connection == "failed")
            await pilot.pause(1.0)  # twenty backoffs: a retrying poller would have asked again
            assert monitor.lines.count(protocol.CMD_HELLO) == 2  # the first agent, the new one
            gave_up = [m for m in posted if isinstance(m, SourceDisconnected) and not m.retryable]
            assert len(gave_up) == 1
            banner = str(app.query_one(ConnectionBanner).render())
            assert app.query_one(ConnectionBanner).display
            assert f"the agent speaks protocol {NEWER}" in banner
            assert "install the same uvicorn-inspector version" in banner
            assert "Not retrying" in banner and "Reconnecting" not in banner
            assert "stopped" in str(app.query_one("#target-line").render())
            assert app.cancel_refusal() == "the target is disconnected"


async def test_a_lost_connection_is_still_retried(blocked: Snapshot) -> None:
    source = FakeSource([blocked])
    app = build_app([], source=source)
    app.poller._backoff = (0.05,)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        source.down = True
        await wait_for(pilot, lambda: app.connection == "disconnected")
        banner = str(app.query_one(ConnectionBanner).render())
        assert "Reconnecting every" in banner and "Not retrying" not in banner
        connects = source.connects
        source.down = False
        await wait_for(pilot, lambda: app.connection == "live" and source.connects > connects)


async def test_the_task_view_says_at_once_that_cancelling_is_unavailable(blocked) -> None:
    """The Task view is bound to the app's state: a disconnect brings no snapshot, yet its
    hint follows."""
    source = FakeSource([blocked])
    app = build_app([], source=source)
    app.poller._backoff = (60.0,)
    async with app.run_test(size=SIZE) as pilot:
        await until_applied(pilot)
        app.action_open_task(1061)
        actions = app.query_one("#task-actions")
        await wait_for(pilot, lambda: "x cancel this task" in str(actions.render()))
        source.down = True
        await wait_for(pilot, lambda: app.connection == "disconnected")
        await wait_for(pilot, lambda: "the target is disconnected" in str(actions.render()))


# --- the poller alone -------------------------------------------------------------------------


class RefusingSource(FakeSource):
    """Connects once, then fails with `error` (at connect, or on the first snapshot)."""

    def __init__(self, error: Exception, *, at_connect: bool) -> None:
        super().__init__([load("healthy")])
        self.error = error
        self.at_connect = at_connect

    async def connect(self) -> protocol.Hello:
        if self.at_connect:
            self.connects += 1
            raise self.error
        return await super().connect()

    async def snapshot(self, *, with_stacks: bool = True) -> Snapshot:
        raise self.error


def run_until_stopped(source: FakeSource) -> list[object]:
    events: list[object] = []
    poller = Poller(source, emit=events.append, interval=0.01, diagnose=lambda s, x: [])
    poller._backoff = (0.01,)
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    thread.join(timeout=5)
    stopped = not thread.is_alive()
    poller.stop()
    assert stopped, "the poller kept retrying"
    return events


def test_the_poller_stops_on_an_error_that_retrying_cannot_fix() -> None:
    error = ConnectError("127.0.0.1:1: the agent speaks protocol 2", retryable=False)
    source = RefusingSource(error, at_connect=True)
    events = run_until_stopped(source)
    assert source.connects == 1
    assert events == [Disconnected(str(error), None, False, retryable=False)]


def test_the_poller_stops_when_a_snapshot_cannot_be_read() -> None:
    error = DisconnectedError("the agent sent a malformed snapshot", retryable=False)
    source = RefusingSource(error, at_connect=False)
    events = run_until_stopped(source)
    assert not any(isinstance(e, Fetched) for e in events)
    assert events[-1] == Disconnected(str(error), None, True, retryable=False)
    assert source.connects == 1
