"""An agent started away from its loop's thread, and the app it adopts (in-process, fast)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from inspector.agent.agent import start_agent
from inspector.agent.injected import adopt, loop_thread, unadopt, uvicorn_servers
from inspector.agent.probe import AgentConfig
from inspector.agent.probes import InspectorMiddleware
from inspector.agent.probes import tracker as tracking
from inspector.agent.probes.tracker import RequestTracker
from inspector.commands.inject import LAUNCHER, bootstrap_source, launcher_source
from inspector.commands.inject_debugger import is_lock_wait
from inspector.model import Snapshot
from tests.helpers.telnet import TermuiClient


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class LoopThread:
    """An event loop running in a thread of its own, as a server's main thread would."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        wait_for(self.loop.is_running)

    def run(self, function: Callable[[], Any]) -> Any:
        """`function()` on the loop's thread; its result."""
        done: list[Any] = []
        self.loop.call_soon_threadsafe(lambda: done.append(function()))
        wait_for(lambda: done)
        return done[0]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop_thread_() -> Iterator[LoopThread]:
    running = LoopThread()
    try:
        yield running
    finally:
        running.close()


def snapshot(port: int) -> Snapshot:
    with TermuiClient("127.0.0.1", port, timeout=10) as client:
        payload = client.command("inspector-snapshot").payload
    assert isinstance(payload, Snapshot)
    return payload


def test_an_agent_started_off_the_loop_sees_the_blocked_loop_then_installs_the_rest(
    loop_thread_: LoopThread,
) -> None:
    blocked, release = threading.Event(), threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(10)  # the loop's thread waits, GIL released, like time.sleep

    loop_thread_.loop.call_soon_threadsafe(block)
    assert blocked.wait(5)
    assert loop_thread(loop_thread_.loop) == loop_thread_.thread.ident
    config = AgentConfig(port=0, register=False)
    agent = start_agent(loop_thread_.loop, config, loop_thread_id=loop_thread_.thread.ident)
    try:
        assert agent.off_loop
        assert {p.name for p in agent.probes} == {"watchdog", "tasks"}  # the loop is blocked
        assert "requests" in snapshot(agent.port).health.waiting_for_loop

        def stalled_in_block() -> bool:
            stall = snapshot(agent.port).ongoing_stall
            return stall is not None and any(
                frame.function.endswith("block")
                for sample in stall.samples
                for frame in sample.frames
            )

        wait_for(stalled_in_block)
        release.set()
        wait_for(lambda: "requests" in {p.name for p in agent.probes})
        wait_for(lambda: snapshot(agent.port).ongoing_stall is None)  # the heartbeat runs
        assert "requests" in snapshot(agent.port).capabilities
        assert snapshot(agent.port).health.waiting_for_loop == ()
    finally:
        release.set()
        agent.close()


class Cycle:
    """What adopt reads of uvicorn's RequestResponseCycle."""

    def __init__(self, path: str, gate: asyncio.Event) -> None:
        self.scope = {"type": "http", "method": "GET", "path": path, "headers": []}
        self.gate = gate

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request"}

    async def run_asgi(self, app: Any) -> None:
        await self.gate.wait()


class Protocol:
    """What adopt reads of uvicorn's H11Protocol/HttpToolsProtocol: the app it holds."""

    def __init__(self) -> None:
        self.app: Any = plain_app


class FakeServer:
    def __init__(self, app: Any) -> None:
        self.config = SimpleNamespace(loaded_app=app)
        self.server_state = SimpleNamespace(connections=set(), tasks=set())


async def plain_app(scope: Any, receive: Any, send: Any) -> None:
    pass


def test_adopt_wraps_the_app_and_open_connections_and_lists_requests_in_flight(
    loop_thread_: LoopThread,
) -> None:
    tracker = RequestTracker(10)
    tracking.activate(tracker)
    try:
        server = FakeServer(plain_app)
        connection = Protocol()
        server.server_state.connections.add(connection)
        gate = loop_thread_.run(asyncio.Event)
        cycle = Cycle("/in-flight", gate)
        task = loop_thread_.run(lambda: loop_thread_.loop.create_task(cycle.run_asgi(plain_app)))
        server.server_state.tasks.add(task)
        time.sleep(0.05)  # the task reaches its await

        counts = loop_thread_.run(lambda: adopt([server]))

        assert counts == {"apps": 1, "connections": 1, "in_flight": 1}
        assert isinstance(server.config.loaded_app, InspectorMiddleware)
        assert connection.app is server.config.loaded_app  # one wrapper for one app
        [listed] = tracker.snapshot()["requests"]
        assert (listed.method, listed.path, listed.detailed) == ("GET", "/in-flight", False)
        loop_thread_.loop.call_soon_threadsafe(gate.set)
        wait_for(lambda: not tracker.snapshot()["requests"])  # unlisted when it ends
        again = loop_thread_.run(lambda: adopt([server]))
        assert again["in_flight"] == 0 and isinstance(server.config.loaded_app, InspectorMiddleware)
        assert not isinstance(server.config.loaded_app.app, InspectorMiddleware)  # not twice
    finally:
        tracking.deactivate(tracker)


def test_unadopt_gives_back_the_apps_it_wrapped_and_leaves_others() -> None:
    server = FakeServer(plain_app)
    kept_alive, wrapped_by_someone = Protocol(), Protocol()
    server.server_state.connections.update({kept_alive, wrapped_by_someone})
    wrappers: dict[int, Any] = {}
    adopt([server], wrappers)
    theirs = InspectorMiddleware(plain_app)  # not ours to take off
    wrapped_by_someone.app = theirs

    assert unadopt([server], wrappers) == 2
    assert server.config.loaded_app is plain_app and kept_alive.app is plain_app
    assert wrapped_by_someone.app is theirs


def test_servers_are_found_in_the_loops_tasks(loop_thread_: LoopThread) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    server = uvicorn.Server(uvicorn.Config(plain_app))
    gate = loop_thread_.run(asyncio.Event)

    async def serve(self: Any) -> None:  # a frame with the server as `self`, as Server.serve
        await gate.wait()

    task = loop_thread_.run(lambda: loop_thread_.loop.create_task(serve(server)))
    time.sleep(0.05)
    try:
        assert uvicorn_servers(loop_thread_.loop) == [server]
    finally:
        loop_thread_.loop.call_soon_threadsafe(gate.set)
        wait_for(task.done)


def test_the_launcher_and_the_bootstrap_are_valid_python(tmp_path: Path) -> None:
    odd = tmp_path / 'it\'s a "dir"' / "bootstrap.py"
    compile(launcher_source(odd), "launcher", "exec")
    for action in ("start", "detach"):
        source = bootstrap_source(tmp_path / "result.json", "127.0.0.1", 0, action)
        compile(source, "bootstrap", "exec")
    assert "BOOTSTRAP_PATH" in LAUNCHER and len(launcher_source(odd).encode()) < 4096


def test_a_lock_wait_is_told_from_a_wait_for_the_gil() -> None:
    futex = "__futex_abstimed_wait_common"
    lock_wait = [futex, "sem_clockwait", "PyThread_acquire_lock_timed", "acquire_timed"]
    gil_wait = [futex, "pthread_cond_timedwait", "take_gil", "PyEval_RestoreThread"]
    assert is_lock_wait(lock_wait)
    assert not is_lock_wait(gil_wait)
    assert not is_lock_wait(["__futex_abstimed_wait_common", "malloc"])
