"""An agent started inside a server that is already running (`inspector inject`).

The bootstrap `inspector inject` plants runs `start_injected` on a thread of its own, not on the
loop's: the loop may be blocked right now (that is often why someone injects), and then nothing
scheduled on it would run. So the agent starts from here (`Agent.start` off the loop: listener,
watchdog thread and task probe at once) and everything that must happen on the loop's thread is
queued for when the loop comes back: the loop-bound probes, then `adopt`, which puts the request
middleware around the app the server already built and lists the requests already in flight.

`detach_injected` (`inspector inject --detach`) undoes it: the agent closes from that thread
(listener, registration, watchdog and sweep threads, every probe's patch), and the loop gives
back the apps and the `shutdown` it was handed when it next runs; until then the request
middleware passes everything through. Injecting again afterwards starts a new agent.

Never raises: every outcome is a dict the bootstrap writes to its result file.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from inspector.agent.agent import Agent, live_agents, start_agent
from inspector.agent.probe import AgentConfig

_lock: Final = threading.Lock()
"""Two injections at once start one agent."""

_LOOP_METHODS: Final = frozenset({"run_forever", "_run_once", "run_until_complete"})
_CHAIN_LIMIT: Final = 32
"""Awaits followed down each task looking for `Server.serve`."""
ADOPTION_WAIT: Final = 0.25
"""Seconds the answer waits for the loop to wrap the app, to say whether it did."""
RESTORE_WAIT: Final = 1.0
"""Seconds a detach waits for the loop to take the wrappers off, to say whether it did."""


@dataclass
class _Injection:
    """What an injection changed in the server, so that a detach can give it back."""

    agent: Agent
    servers: list[Any]
    wrappers: dict[int, Any] = field(default_factory=dict)
    """id(wrapper) -> the request middleware put around an app the server held."""
    shutdowns: list[tuple[Any, Any, Any]] = field(default_factory=list)
    """(server, its own `shutdown` attribute or None, ours): the `shutdown`s replaced."""


_injection: _Injection | None = None
"""The agent `start_injected` started and what it changed (guarded by `_lock`)."""


def start_injected(
    host: str,
    port: int,
    loop: asyncio.AbstractEventLoop | None = None,
    loop_thread_id: int | None = None,
) -> dict[str, Any]:
    """Start an agent for the running uvicorn server; the answer for `inspector inject`.

    `loop`/`loop_thread_id` are the running loop and its thread when the bootstrap was planted
    on that thread (found here otherwise).
    """
    try:
        with _lock:
            return _start(host, port, loop, loop_thread_id)
    except BaseException as error:  # the bootstrap reports; nothing reaches the app
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}


def _start(
    host: str,
    port: int,
    loop: asyncio.AbstractEventLoop | None,
    loop_thread_id: int | None,
) -> dict[str, Any]:
    pid = os.getpid()
    if "uvicorn" not in sys.modules:
        return {
            "ok": False,
            "refused": "no-uvicorn",
            "error": "this Python process runs no uvicorn",
        }
    running = live_agents()
    if running:
        agent = running[0]
        return {"ok": True, "already": True, "host": agent.host, "port": agent.port, "pid": pid}
    if loop is None or not loop.is_running():
        loop, loop_thread_id = _running_loop(uvicorn_servers()), None
    if loop is None:
        return {"ok": False, "error": "no running asyncio event loop found in this process"}
    servers = uvicorn_servers(loop)
    if loop_thread_id is None:
        loop_thread_id = loop_thread(loop)
    config = AgentConfig(host=host, port=port, app=_app_name(servers))
    agent = start_agent(loop, config, loop_thread_id=loop_thread_id)
    global _injection
    _injection = injection = _Injection(agent, servers)
    for server in servers:
        _close_at_shutdown(server, injection)
    adoption = _Adoption(injection)
    loop.call_soon_threadsafe(adoption.run)
    answer: dict[str, Any] = {"ok": True, "host": agent.host, "port": agent.port, "pid": pid}
    if adoption.done.wait(ADOPTION_WAIT):
        answer.update(adoption.counts)
    else:
        answer["loop_busy"] = True  # requests are tracked once the loop runs again
    return answer


def uvicorn_servers(loop: asyncio.AbstractEventLoop | None = None) -> list[Any]:
    """The `uvicorn.Server` objects alive in this process (usually one).

    Found in the await chains of the loop's tasks (`Server.serve` is one of them), which costs
    little; else among every object the collector tracks, which holds the GIL for a moment
    proportional to the heap.
    """
    module = sys.modules.get("uvicorn.server")
    server_class = getattr(module, "Server", None)
    if not isinstance(server_class, type):
        return []
    if loop is not None:
        found = _servers_in_tasks(loop, server_class)
        if found:
            return found
    return [obj for obj in gc.get_objects() if isinstance(obj, server_class)]


def _servers_in_tasks(loop: asyncio.AbstractEventLoop, server_class: type) -> list[Any]:
    found: list[Any] = []
    try:
        tasks = asyncio.all_tasks(loop)
    except Exception:
        return found
    for task in tasks:
        awaitable: Any = task.get_coro()
        for _ in range(_CHAIN_LIMIT):
            frame = getattr(awaitable, "cr_frame", None)
            if frame is None or getattr(awaitable, "cr_running", True):
                break  # a coroutine running on the loop's thread right now is not read
            try:
                candidate = frame.f_locals.get("self")
            except Exception:
                candidate = None
            if isinstance(candidate, server_class) and candidate not in found:
                found.append(candidate)
            awaitable = getattr(awaitable, "cr_await", None)
    return found


def _running_loop(servers: list[Any]) -> asyncio.AbstractEventLoop | None:
    """The loop the server's listening sockets belong to, else the one running loop."""
    for server in servers:
        for listener in getattr(server, "servers", None) or ():
            try:
                loop = listener.get_loop()
            except Exception:
                continue
            if isinstance(loop, asyncio.AbstractEventLoop) and loop.is_running():
                return loop
    running = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running()
    ]
    return running[0] if len(running) == 1 else None


def loop_thread(loop: asyncio.AbstractEventLoop) -> int:
    """The thread running `loop`: the one whose stack is in its run_forever, else the main
    thread (where uvicorn runs its loop; uvloop's run_forever has no Python frame)."""
    for ident, frame in sys._current_frames().items():
        current: Any = frame
        while current is not None:
            if current.f_code.co_name in _LOOP_METHODS:
                try:
                    if current.f_locals.get("self") is loop:
                        return ident
                except Exception:
                    pass
            current = current.f_back
    main = threading.main_thread().ident
    return main if main is not None else threading.get_ident()


def _close_at_shutdown(server: Any, injection: _Injection) -> None:
    """Close the agent (and remove its registration) when the server has shut down: uvicorn
    re-raises the SIGTERM it caught once it is done, so atexit handlers never run, and an
    injected agent has no lifespan to follow."""
    agent = injection.agent
    original = getattr(server, "shutdown", None)
    closes = getattr(original, "inspector_closes", None)
    if original is None or (closes is not None and not closes.closed):
        return  # it closes a live agent already; a detached one's (not given back yet) is chained
    own = getattr(server, "__dict__", {}).get("shutdown")

    async def shutdown(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        finally:
            agent.close()

    shutdown.inspector_closes = agent  # type: ignore[attr-defined]
    try:
        server.shutdown = shutdown
    except (AttributeError, TypeError) as error:
        agent.context.record_error(f"inject: the agent will not close with the server: {error!r}")
        return
    injection.shutdowns.append((server, own, shutdown))


def _app_name(servers: list[Any]) -> str | None:
    for server in servers:
        app = getattr(getattr(server, "config", None), "app", None)
        if isinstance(app, str):
            return app
    return None


class _Adoption:
    """`adopt` on the loop's thread, queued behind the agent's loop-bound probes (skipped when
    the agent was detached before the loop came back)."""

    def __init__(self, injection: _Injection) -> None:
        self.injection = injection
        self.report: Callable[[str], None] = injection.agent.context.record_error
        self.counts: dict[str, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        try:
            injection = self.injection
            if not injection.agent.closed:  # a detach queues its restore behind this
                self.counts = adopt(injection.servers, injection.wrappers)
        except Exception as error:  # never raise into the app's loop
            self.report(f"inject: requests not tracked: {error!r}")
        finally:
            self.done.set()


def adopt(servers: list[Any], wrappers: dict[int, Any] | None = None) -> dict[str, int]:
    """Track the requests of servers built without the agent, from now on. Call on the loop.

    New connections get the app from `config.loaded_app`; open ones (keep-alive) hold their
    own reference in `protocol.app`: both are wrapped in the request middleware. Requests
    already being served are listed while they run (their start is not known: they are timed
    from now).
    """
    from inspector.agent.probes import wrap_asgi

    wrapped: dict[int, Any] = {}

    def wrap(app: Any) -> Any:
        done = wrapped.get(id(app))
        if done is None:
            done = wrapped[id(app)] = wrap_asgi(app)
            if wrappers is not None and done is not app:
                wrappers[id(done)] = done
        return done

    counts = {"apps": 0, "connections": 0, "in_flight": 0}
    for server in servers:
        config: Any = getattr(server, "config", None)
        app = getattr(config, "loaded_app", None)
        if app is not None:
            config.loaded_app = wrap(app)
            counts["apps"] += 1
        state = getattr(server, "server_state", None)
        for connection in tuple(getattr(state, "connections", ()) or ()):
            if getattr(connection, "app", None) is not None:
                connection.app = wrap(connection.app)
                counts["connections"] += 1
        counts["in_flight"] += _list_in_flight(tuple(getattr(state, "tasks", ()) or ()))
    return counts


def _list_in_flight(tasks: tuple[asyncio.Task[Any], ...]) -> int:
    """List the requests uvicorn is serving now as in flight (without a full record), each
    until its task ends."""
    from inspector.agent.probes import tracker as tracking

    tracker = tracking.active
    if tracker is None:
        return 0
    listed = 0
    for task in tasks:
        if task.done():
            continue
        scope = _scope_of(task)
        if scope is None or scope.get("type") not in ("http", "websocket"):
            continue
        receive = getattr(_cycle_of(task), "receive", None) or _no_receive
        request_id = next(tracker.ids)
        tracker.start_unknown.add(request_id)
        tracker.light[task] = (request_id, tracker.perf(), scope, receive)
        task.add_done_callback(_unlister(tracker, request_id))
        listed += 1
    return listed


def _unlister(tracker: Any, request_id: int) -> Any:
    def unlist(task: asyncio.Task[Any]) -> None:
        try:
            tracker.start_unknown.discard(request_id)
            entry = tracker.light.pop(task, None)
            if entry is not None and type(entry) is not tuple:
                tracker.finish(entry)  # given a record late (a thread, a failure)
        except Exception as error:
            tracker.report(f"inject: {error!r}")

    return unlist


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def _cycle_of(task: asyncio.Task[Any]) -> Any:
    """uvicorn's RequestResponseCycle a request task runs (`cycle.run_asgi(app)`)."""
    frame = getattr(task.get_coro(), "cr_frame", None)
    if frame is None or frame.f_code.co_name != "run_asgi":
        return None
    try:
        return frame.f_locals.get("self")
    except Exception:
        return None


def _scope_of(task: asyncio.Task[Any]) -> dict[str, Any] | None:
    scope = getattr(_cycle_of(task), "scope", None)
    return scope if isinstance(scope, dict) else None


# --- detach ---------------------------------------------------------------------------------


def detach_injected() -> dict[str, Any]:
    """Close the injected agent and give the server back what the injection changed; the
    answer for `inspector inject --detach`. Never raises."""
    try:
        with _lock:
            return _detach()
    except BaseException as error:  # the bootstrap reports; nothing reaches the app
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}


def _detach() -> dict[str, Any]:
    global _injection
    pid = os.getpid()
    injection, _injection = _injection, None
    if injection is None or injection.agent.closed:
        running = live_agents()
        if not running:
            return {"ok": True, "detached": False, "pid": pid}
        agent = running[0]
        return {
            "ok": False,
            "refused": "not-injected",
            "host": agent.host,
            "port": agent.port,
            "error": "it started with the server (inspector run or instrument(app))",
        }
    agent = injection.agent
    answer: dict[str, Any] = {
        "ok": True,
        "detached": True,
        "host": agent.host,
        "port": agent.port,
        "pid": pid,
    }
    agent.close()  # from this thread: a blocked loop does not hold the ports open
    restore = _Restore(injection)
    try:
        agent.loop.call_soon_threadsafe(restore.run)
    except RuntimeError:  # the loop is closed: the server is going away
        return answer
    if not restore.done.wait(RESTORE_WAIT):
        answer["loop_busy"] = True  # the wrappers pass requests through until it runs
    return answer


class _Restore:
    """On the loop's thread: the apps and `shutdown`s the injection replaced, given back."""

    def __init__(self, injection: _Injection) -> None:
        self.injection = injection
        self.done = threading.Event()

    def run(self) -> None:
        try:
            unadopt(self.injection.servers, self.injection.wrappers)
            for server, own, ours in self.injection.shutdowns:
                _restore_shutdown(server, own, ours)
        except Exception:  # never raise into the app's loop; the wrappers pass through
            pass
        finally:
            self.done.set()


def unadopt(servers: list[Any], wrappers: dict[int, Any]) -> int:
    """Put back the apps `adopt` wrapped, where the server still holds our wrapper; returns
    how many places were given their app back. Call on the loop."""

    def unwrapped(app: Any) -> Any:
        wrapper = wrappers.get(id(app))
        return wrapper.app if wrapper is not None and wrapper is app else None

    restored = 0
    for server in servers:
        config: Any = getattr(server, "config", None)
        original = unwrapped(getattr(config, "loaded_app", None))
        if original is not None:
            config.loaded_app = original
            restored += 1
        state = getattr(server, "server_state", None)
        for connection in tuple(getattr(state, "connections", ()) or ()):
            original = unwrapped(getattr(connection, "app", None))
            if original is not None:
                connection.app = original
                restored += 1
    return restored


def _restore_shutdown(server: Any, own: Any, ours: Any) -> None:
    if getattr(server, "__dict__", {}).get("shutdown") is not ours:
        return  # replaced again since: leave it (ours, inside, only closes a closed agent)
    if own is None:
        del server.shutdown
    else:
        server.shutdown = own
