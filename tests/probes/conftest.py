"""A real uvicorn server in a thread with the lifecycle probes installed on its loop.

The probes are installed exactly as the agent installs them (on the loop thread, with an
`AgentContext`), and `collect()` is called from the test's thread, as the agent does.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions, Probe
from inspector.agent.probes import default_probes, wrap_asgi

HOST = "127.0.0.1"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class LiveServer:
    """uvicorn serving `app` (wrapped in the request middleware) on a free port."""

    def __init__(self, app: Any, config: AgentConfig | None = None, loop: str = "asyncio") -> None:
        self.app = app
        self.config = config or AgentConfig(max_history=50)
        self.loop_name = loop
        self.probes: list[Probe] = []
        self.context: AgentContext | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-uvicorn", daemon=True)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((HOST, 0))
        self.port: int = self._socket.getsockname()[1]
        self.error: BaseException | None = None
        self._stopped = False

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(15):
            raise AssertionError(f"server did not start: {self.error!r}")
        return self

    def _run(self) -> None:
        config = uvicorn.Config(
            wrap_asgi(self.app), loop=self.loop_name, lifespan="off", log_level="warning"
        )
        self.server = uvicorn.Server(config)
        try:
            if self.loop_name == "uvloop":
                import uvloop

                uvloop.run(self._serve())
            else:
                asyncio.run(self._serve())
        except BaseException as error:  # surfaced by start() / stop()
            self.error = error
            self._ready.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.context = AgentContext(
            loop=loop, loop_thread_id=threading.get_ident(), config=self.config
        )
        for probe in default_probes(self.config):
            probe.install(self.context)
            self.probes.append(probe)
        assert self.server is not None
        serving = asyncio.ensure_future(self.server.serve(sockets=[self._socket]))
        while not self.server.started and not serving.done():
            await asyncio.sleep(0.01)
        self._ready.set()
        await serving

    def collect(self, options: CollectOptions | None = None) -> dict[str, Any]:
        assert self.context is not None
        merged: dict[str, Any] = {}
        for probe in self.probes:
            merged.update(probe.collect(self.context, options or CollectOptions()))
        return merged

    def call_on_loop(self, function: Callable[[], Any], timeout: float = 5.0) -> Any:
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(_call(function), self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.server is not None:
            self.server.should_exit = True
        self._thread.join(15)
        for probe in reversed(self.probes):
            probe.close()
        self._socket.close()


async def _call(function: Callable[[], Any]) -> Any:
    return function()


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def start(app: Any, **kwargs: Any) -> LiveServer:
        server = LiveServer(app, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
