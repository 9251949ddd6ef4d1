"""The agent's lifecycle in-process: real aiomonitor, real sockets, the test's loop as the app's."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inspector.agent import termui_server
from inspector.agent.agent import Agent, start_agent
from inspector.agent.errors import AgentStartError
from inspector.agent.instrumented import InstrumentedApp, instrument
from inspector.agent.monitor import guarded_monitor_class
from inspector.agent.ports import is_listening, port_is_free
from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions
from inspector.client.agent_source import AgentSource
from inspector.client.source import SourceError
from inspector.model import RequestInfo, Snapshot, ThreadInfo
from inspector.protocol import Hello, Message, Result
from inspector.registration import ENV_RUNTIME_DIR, read_registrations
from tests.apps.fleet_app import serve_lifespan
from tests.helpers.server import free_port, free_port_run
from tests.helpers.telnet import TermuiClient

HOST = "127.0.0.1"


@pytest.fixture
def rundir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "runtime"
    monkeypatch.setenv(ENV_RUNTIME_DIR, str(path))
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def _ask(port: int, line: str) -> Message:
    with TermuiClient(HOST, port, timeout=10) as client:
        return client.command(line)


async def ask(port: int, line: str) -> Message:
    """A command from another thread, so that the app loop (this test's) keeps running."""
    return await asyncio.to_thread(_ask, port, line)


async def test_agent_listens_registers_answers_and_closes_cleanly(rundir: Path) -> None:
    agent = start_agent(config=AgentConfig(port=0, app="tests:app"))
    try:
        assert is_listening(HOST, agent.port)
        [registration] = read_registrations()
        assert registration.pid == os.getpid()
        assert (registration.port, registration.webui_port) == (agent.port, agent.webui_port)
        assert registration.app == "tests:app"
        hello = await ask(agent.port, "inspector-hello")
        assert isinstance(hello.payload, Hello)
        assert hello.payload.process.pid == os.getpid()
        assert hello.payload.process.loop == "asyncio"
        snapshot = await ask(agent.port, "inspector-snapshot --no-stacks --max-tasks 5")
        assert isinstance(snapshot.payload, Snapshot)
        assert "watchdog" in snapshot.payload.health.probes
        assert snapshot.payload.loop is not None
    finally:
        started = time.monotonic()
        agent.close()
        closing = time.monotonic() - started
    assert closing < 3.0
    assert read_registrations() == []
    assert port_is_free(HOST, agent.port)
    assert not list(rundir.glob("*.lock")), "slot lock files are removed"
    agent.close()  # twice is harmless


async def test_agents_sharing_a_base_port_take_consecutive_slots(rundir: Path) -> None:
    base = free_port_run(2)
    first = start_agent(config=AgentConfig(port=base, register=False))
    try:
        second = start_agent(config=AgentConfig(port=base, register=False))
        try:
            assert (first.port, second.port) == (base, base + 1)
        finally:
            second.close()
    finally:
        first.close()
    assert not list(rundir.glob("*.lock"))


async def test_a_busy_port_is_an_error_naming_the_port_without_hanging(
    rundir: Path, busy_port: int
) -> None:
    started = time.monotonic()
    with pytest.raises(AgentStartError, match=f"port {busy_port} .*already in use"):
        start_agent(config=AgentConfig(port=busy_port))
    assert time.monotonic() - started < 2.0
    assert read_registrations() == []
    assert not list(rundir.glob("*.lock"))


async def test_a_non_loopback_address_is_refused_unless_allowed(rundir: Path) -> None:
    with pytest.raises(AgentStartError, match="refusing to listen on 0.0.0.0"):
        start_agent(config=AgentConfig(host="0.0.0.0", port=0))


async def test_a_taken_web_ui_port_makes_aiomonitor_fail_instead_of_hanging(
    busy_port: int,
) -> None:
    monitor = guarded_monitor_class()(
        asyncio.get_running_loop(),
        host=HOST,
        termui_port=free_port(),
        webui_port=busy_port,
    )
    starter = threading.Thread(target=monitor.start, daemon=True)
    starter.start()
    starter.join(5)
    assert not starter.is_alive(), "start() hung on a taken web UI port"
    assert isinstance(monitor.startup_error, OSError)


async def test_the_web_ui_is_off_unless_asked_for_and_a_taken_port_is_an_error(
    rundir: Path, busy_port: int
) -> None:
    agent = start_agent(config=AgentConfig(port=0, register=False))
    try:
        assert agent.webui_port == 0
        assert (await ask(agent.port, "inspector-hello")).type == "hello"
    finally:
        agent.close()
    started = time.monotonic()
    with pytest.raises(AgentStartError, match="did not start"):
        start_agent(config=AgentConfig(port=0, register=False, webui_port=busy_port))
    assert time.monotonic() - started < 2.0


async def test_cancel_cancels_the_task_on_its_own_loop(rundir: Path) -> None:
    agent = start_agent(config=AgentConfig(port=0, register=False))
    try:
        task = asyncio.create_task(asyncio.Event().wait(), name="victim")
        await asyncio.sleep(0)
        answer = await ask(agent.port, f"inspector-cancel {id(task)}")
        assert answer.type == "result"
        assert answer.payload == Result(
            ok=True, message=f"cancellation requested for task {id(task)} (victim)"
        )
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
        missing = await ask(agent.port, "inspector-cancel 12345")
        assert missing.payload.ok is False and "no task" in missing.payload.message
        garbage = await ask(agent.port, "inspector-cancel twelve")
        assert garbage.type == "error" and "integer" in garbage.payload.message
    finally:
        agent.close()


def _ask_many(port: int, lines: list[str]) -> list[Message]:
    with TermuiClient(HOST, port, timeout=10) as client:
        return [client.command(line) for line in lines]


async def test_clients_asking_within_the_ttl_share_one_snapshot(
    rundir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many pollers cost the server one snapshot per TTL, not one each."""
    agent = start_agent(config=AgentConfig(port=0, register=False))
    agent.snapshots.ttl = 60.0
    try:
        task = asyncio.create_task(asyncio.Event().wait(), name="victim")
        await asyncio.sleep(0)
        first, again, other = await asyncio.to_thread(
            _ask_many,
            agent.port,
            ["inspector-snapshot", "inspector-snapshot", "inspector-snapshot --no-stacks"],
        )
        assert again.payload.taken_at == first.payload.taken_at, "served from the shared frame"
        assert other.payload.taken_at != first.payload.taken_at, "each variant is its own frame"
        await ask(agent.port, f"inspector-cancel {id(task)}")
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
        after = (await ask(agent.port, "inspector-snapshot")).payload
        assert after.taken_at > first.payload.taken_at, "a cancel makes the next snapshot fresh"
        assert all(info.id != id(task) or info.state != "pending" for info in after.tasks)
        agent.snapshots.ttl = 0.0
        fresh = (await ask(agent.port, "inspector-snapshot")).payload
        assert fresh.taken_at > after.taken_at
    finally:
        agent.close()


async def test_the_agent_has_one_periodic_thread_and_ages_tasks_before_any_snapshot(
    rundir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task sweeps run on the watchdog's thread: every extra waking thread slows the app."""
    monkeypatch.setattr("inspector.agent.tasks.SWEEP_INTERVAL", 0.05)
    agent = start_agent(config=AgentConfig(port=0, register=False))
    try:
        names = {thread.name for thread in threading.enumerate()}
        assert "inspector-watchdog" in names
        assert "inspector-task-sweep" not in names
        task = asyncio.create_task(asyncio.Event().wait(), name="parked")
        await asyncio.sleep(0.4)  # the age being measured, not a synchronisation
        snapshot = (await ask(agent.port, "inspector-snapshot --no-stacks")).payload
        [info] = [info for info in snapshot.tasks if info.id == id(task)]
        assert info.age is not None and info.age >= 0.3
    finally:
        task.cancel()
        agent.close()


async def test_idle_clients_cost_the_server_nothing(rundir: Path) -> None:
    """A connected client that asks nothing wakes no thread: nothing polls on its behalf (each
    wake-up would take the GIL from the app loop)."""
    agent = start_agent(config=AgentConfig(port=0, register=False))
    try:
        clients = [TermuiClient(HOST, agent.port, timeout=10) for _ in range(3)]
        try:
            for client in clients:
                await asyncio.to_thread(client.command, "inspector-hello")
            monitor = agent.monitor
            assert monitor.termui.connections == 3
            ui_loop = monitor._ui_loop

            def ui_tasks() -> list[str]:
                return [task.get_coro().__qualname__ for task in asyncio.all_tasks(ui_loop)]

            names = await asyncio.to_thread(
                lambda: asyncio.run_coroutine_threadsafe(_gather_names(ui_tasks), ui_loop).result(5)
            )
            assert sum(name == "TermuiServer.run_session" for name in names) == 3, names
            clock = time.pthread_getcpuclockid(monitor._ui_thread.ident)
            before = time.clock_gettime(clock)
            await asyncio.sleep(1.0)
            assert time.clock_gettime(clock) - before < 0.005
        finally:
            for client in clients:
                client.close()
    finally:
        agent.close()


async def test_inspector_clients_get_a_line_session_and_others_aiomonitors_prompt(
    rundir: Path,
) -> None:
    agent = start_agent(config=AgentConfig(port=0, register=False))
    source = AgentSource(HOST, agent.port)
    try:
        with TermuiClient(HOST, agent.port, timeout=10) as person:
            await asyncio.to_thread(person.command, "inspector-hello")
            await source.connect()
            snapshot = await source.snapshot()
            assert snapshot.process.pid == os.getpid()
            session = source._session
            assert session is not None
            assert "inspector session" in session.banner  # not aiomonitor's prompt
            assert not session.full_screen
    finally:
        await source.close()
        agent.close()


async def test_a_line_session_survives_bad_lines(rundir: Path) -> None:
    agent = start_agent(config=AgentConfig(port=0, register=False))
    source = AgentSource(HOST, agent.port)
    try:
        for line, said in [("no-such-command", "No such command"), ('say "open', "quotation")]:
            with pytest.raises(SourceError, match=said):
                await source._command(line, ("result",))
        reply = await source._command("inspector-cancel 1", ("result", "error"))
        assert "no task with id 1" in reply.payload.message
        assert (await source.snapshot()).process.pid == os.getpid()
    finally:
        await source.close()
        agent.close()


async def _gather_names(names: Any) -> list[str]:
    return list(names())


async def test_clients_asking_past_the_cpu_share_are_paced_and_told(
    rundir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = start_agent(config=AgentConfig(port=0, register=False, cpu_share=0.01))
    agent.snapshots.ttl = 0.0
    agent.budget.burst = 0.0
    tasks = [asyncio.create_task(asyncio.Event().wait()) for _ in range(2000)]
    try:
        replies = await asyncio.to_thread(_ask_many, agent.port, ["inspector-snapshot"] * 4)
        health = replies[-1].payload.health
        assert health.paced_seconds > 0.0
        assert agent.budget.paused_seconds >= health.paced_seconds
    finally:
        for task in tasks:
            task.cancel()
        agent.close()


async def test_a_read_only_agent_refuses_to_cancel(rundir: Path) -> None:
    agent = start_agent(config=AgentConfig(port=0, register=False, read_only=True))
    task = asyncio.create_task(asyncio.Event().wait())
    try:
        await asyncio.sleep(0)
        answer = await ask(agent.port, f"inspector-cancel {id(task)}")
        assert answer.payload == Result(ok=False, message="agent is read-only")
        await asyncio.sleep(0.05)
        assert not task.done()
        hello = await ask(agent.port, "inspector-hello")
        assert hello.payload.read_only is True
    finally:
        task.cancel()
        agent.close()


class _BrokenProbe:
    name = "broken"

    def install(self, context: AgentContext) -> None:
        pass

    def collect(self, context: AgentContext, options: CollectOptions) -> dict[str, Any]:
        raise RuntimeError("probe bug")

    def close(self) -> None:
        pass


class _BulkyProbe:
    """Makes every snapshot about 400 KB, so that a client that does not read fills the socket."""

    name = "bulky"
    requests = tuple(
        RequestInfo(id=i, method="GET", path=f"/item/{i}" + "x" * 120, started_at=0.0, phase="done")
        for i in range(2000)
    )

    def install(self, context: AgentContext) -> None:
        pass

    def collect(self, context: AgentContext, options: CollectOptions) -> dict[str, Any]:
        return {"recent_requests": self.requests}

    def close(self) -> None:
        pass


async def test_a_failing_probe_is_reported_in_health_and_the_rest_still_arrives(
    rundir: Path,
) -> None:
    agent = start_agent(config=AgentConfig(port=0, register=False))
    agent.probes = (*agent.probes, _BrokenProbe())
    try:
        snapshot = (await ask(agent.port, "inspector-snapshot")).payload
        assert snapshot.loop is not None
        assert "broken" not in snapshot.health.probes
        assert any("probe bug" in error for error in snapshot.health.recent_errors)
    finally:
        agent.close()


class _UnencodableProbe:
    name = "unencodable"

    def install(self, context: AgentContext) -> None:
        pass

    def collect(self, context: AgentContext, options: CollectOptions) -> dict[str, Any]:
        return {"threads": (object(),)}

    def close(self) -> None:
        pass


async def test_a_part_that_cannot_be_encoded_is_dropped_not_the_snapshot(rundir: Path) -> None:
    agent = start_agent(config=AgentConfig(port=0, register=False))
    agent.probes = (*agent.probes, _UnencodableProbe())
    try:
        answer = await ask(agent.port, "inspector-snapshot --enc zjson")
        assert answer.type == "snapshot"
        assert all(isinstance(thread, ThreadInfo) for thread in answer.payload.threads)
        assert answer.payload.loop is not None
        assert any("cannot be encoded" in e for e in answer.payload.health.recent_errors)
    finally:
        agent.close()


def _writer_stalled(agent: Agent) -> bool:
    termui = agent.monitor.termui if agent.monitor is not None else None
    try:
        return termui is not None and termui.stalled_writers > 0
    except RuntimeError:  # the set changed while read from this thread: ask again
        return False


def _stop_reading_after_asking(port: int, repeats: int) -> TermuiClient:
    client = TermuiClient(HOST, port, rcvbuf=4096)
    client.wait_for_prompt()
    client.raw_socket().sendall(b"inspector-snapshot\r" * repeats)
    return client


async def test_a_client_that_stops_reading_is_dropped_and_others_are_served_again(
    rundir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(termui_server, "SEND_TIMEOUT_BASE", 0.5)
    monkeypatch.setattr(termui_server, "SEND_BYTES_PER_SECOND", 1e12)
    agent = start_agent(config=AgentConfig(port=0, register=False))
    agent.probes = (*agent.probes, _BulkyProbe())
    stuck = await asyncio.to_thread(_stop_reading_after_asking, agent.port, 20)
    try:
        started = time.monotonic()
        hello = await ask(agent.port, "inspector-hello")
        assert hello.type == "hello"
        assert time.monotonic() - started < 8
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not agent.context.health((), 0.0).clients_dropped:
            await asyncio.sleep(0.05)
        errors = agent.context.health((), 0.0).recent_errors
        assert any("stopped reading" in error for error in errors)
    finally:
        stuck.close()
        agent.close()


async def test_close_is_bounded_while_a_client_does_not_read(rundir: Path) -> None:
    agent = start_agent(config=AgentConfig(port=0, register=False))
    agent.probes = (*agent.probes, _BulkyProbe())
    stuck = await asyncio.to_thread(_stop_reading_after_asking, agent.port, 40)
    try:
        deadline = time.monotonic() + 10
        while not _writer_stalled(agent):  # the agent's answers fill the client's window
            assert time.monotonic() < deadline, "the agent never filled the client's window"
            await asyncio.sleep(0.05)
        started = time.monotonic()
        agent.close()
        assert time.monotonic() - started < 3.0
    finally:
        stuck.close()


# --- instrument(app) -------------------------------------------------------------------------


async def plain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
    else:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})


class Lifespan:
    """Drives the ASGI lifespan protocol the way uvicorn does."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def _wait_for(self, kind: str) -> dict[str, Any]:
        for _ in range(500):
            for message in self.sent:
                if message["type"].startswith(kind):
                    return message
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {kind} message; sent {self.sent}")

    async def startup(self) -> dict[str, Any]:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self._send))
        await self.inbox.put({"type": "lifespan.startup"})
        return await self._wait_for("lifespan.startup.")

    async def shutdown(self) -> dict[str, Any]:
        await self.inbox.put({"type": "lifespan.shutdown"})
        message = await self._wait_for("lifespan.shutdown.")
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)
        return message


async def http_get(app: Any) -> bytes:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_instrument_runs_the_agent_from_startup_to_shutdown(rundir: Path) -> None:
    app = instrument(plain_app, AgentConfig(port=0))
    lifespan = Lifespan(app)
    assert (await lifespan.startup())["type"] == "lifespan.startup.complete"
    agent = app.agent
    assert agent is not None and is_listening(HOST, agent.port)
    assert await http_get(app) == b"served"
    assert (await lifespan.shutdown())["type"] == "lifespan.shutdown.complete"
    assert app.agent is None and agent.closed
    assert port_is_free(HOST, agent.port)
    assert read_registrations() == []


async def test_the_app_serves_normally_when_the_agent_cannot_start(
    rundir: Path, busy_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = instrument(plain_app, AgentConfig(port=busy_port))
    lifespan = Lifespan(app)
    with caplog.at_level(logging.WARNING, logger="inspector.agent"):
        assert (await lifespan.startup())["type"] == "lifespan.startup.complete"
    warnings = [r for r in caplog.records if r.name == "inspector.agent"]
    assert len(warnings) == 1
    assert str(busy_port) in warnings[0].getMessage()
    assert app.agent is None
    assert await http_get(app) == b"served"
    assert (await lifespan.shutdown())["type"] == "lifespan.shutdown.complete"


async def test_strict_startup_fails_with_the_port_named(rundir: Path, busy_port: int) -> None:
    reported: list[str] = []
    app = InstrumentedApp(
        plain_app, AgentConfig(port=busy_port), strict=True, on_start_error=reported.append
    )
    message = await Lifespan(app).startup()
    assert message["type"] == "lifespan.startup.failed"
    assert str(busy_port) in message["message"]
    assert reported and str(busy_port) in reported[0]


async def test_without_lifespan_the_agent_starts_at_the_first_request(rundir: Path) -> None:
    app = instrument(plain_app, AgentConfig(port=0))
    assert app.agent is None
    assert await http_get(app) == b"served"
    agent = app.agent
    try:
        assert agent is not None and is_listening(HOST, agent.port)
    finally:
        if agent is not None:
            agent.close()


async def test_instrument_without_lifecycle_tracks_no_request(rundir: Path) -> None:
    app = instrument(plain_app, AgentConfig(port=0, lifecycle=False))
    lifespan = Lifespan(app)
    assert (await lifespan.startup())["type"] == "lifespan.startup.complete"
    agent = app.agent
    assert agent is not None
    assert await http_get(app) == b"served"
    assert "tasks" in agent.capabilities() and "stalls" in agent.capabilities()
    assert "requests" not in agent.capabilities()
    assert [getattr(probe, "name", None) for probe in agent.probes] == ["watchdog", "tasks"]
    await lifespan.shutdown()


def test_instrument_keeps_the_fastapi_object_usable() -> None:
    fastapi = pytest.importorskip("fastapi")
    original = fastapi.FastAPI(title="shop")
    app = instrument(original, AgentConfig(port=0))
    assert app.title == "shop"

    @app.get("/added-after")
    async def added_after() -> dict[str, bool]:
        return {"ok": True}

    assert any(getattr(route, "path", None) == "/added-after" for route in original.routes)


async def test_instrumenting_twice_gives_one_agent(rundir: Path) -> None:
    once = instrument(plain_app, AgentConfig(port=0))
    assert instrument(once) is once
    strict = InstrumentedApp(once, AgentConfig(port=0), strict=True)
    lifespan = Lifespan(strict)
    assert (await lifespan.startup())["type"] == "lifespan.startup.complete"
    assert once.agent is None and strict.agent is not None
    assert len(read_registrations()) == 1
    await lifespan.shutdown()


async def test_metrics_port_serves_prometheus_metrics_until_close(rundir: Path) -> None:
    pytest.importorskip("prometheus_client")
    import urllib.request

    agent = start_agent(config=AgentConfig(port=0, register=False, metrics_port=0))
    try:
        port = agent.metrics_port
        assert port is not None

        def scrape() -> bytes:
            url = f"http://{HOST}:{port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                body: bytes = response.read()
                return body

        assert b"inspector_" in await asyncio.to_thread(scrape)
    finally:
        agent.close()
    assert port_is_free(HOST, port)
