"""`instrument(app)`: the one call for people who start uvicorn themselves.

The app always works: if the agent cannot start, one warning is logged and requests are served
as before. The agent follows the app's lifespan, or starts on the first request without one.
(The module is not named `instrument`: importing it would then hide the
`inspector.agent.instrument` function behind a submodule of the same name.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from inspector.agent.agent import Agent
from inspector.agent.probe import AgentConfig

logger = logging.getLogger("inspector.agent")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _wrap_requests(app: Any, errors: list[str]) -> Any:
    try:
        from inspector.agent.probes import wrap_asgi
    except Exception as error:
        errors.append(f"request middleware unavailable: {error!r}")
        return app
    try:
        return wrap_asgi(app)
    except Exception as error:
        errors.append(f"request middleware failed: {error!r}")
        return app


def _preload(errors: list[str]) -> None:
    """Import aiomonitor now (~0.3 s) rather than on the running loop at startup."""
    try:
        import inspector.agent.commands  # noqa: F401
    except Exception as error:
        errors.append(f"aiomonitor is not usable: {error!r}")


class InstrumentedApp:
    """An ASGI app with the agent: started at lifespan startup, stopped at shutdown.

    Attribute access falls through to the wrapped app, so `app.state`, `app.include_router` and
    FastAPI decorators keep working on the returned object.
    """

    def __init__(
        self,
        app: Any,
        config: AgentConfig | None = None,
        *,
        strict: bool = False,
        on_start_error: Callable[[str], None] | None = None,
        on_started: Callable[[str, int], None] | None = None,
    ) -> None:
        if isinstance(app, InstrumentedApp):  # never two agents for one app
            app = app.__dict__["_inspector_original"]
        self.__dict__["_inspector_original"] = app
        self._config = config or AgentConfig()
        self._strict = strict
        self._on_start_error = on_start_error
        self._on_started = on_started
        self._errors: list[str] = []
        self._app = _wrap_requests(app, self._errors) if self._config.lifecycle else app
        self._agent: Agent | None = None
        self._attempted = False
        _preload(self._errors)

    @property
    def agent(self) -> Agent | None:
        """The running agent, or None before startup or when it could not start."""
        return self._agent

    def __getattr__(self, name: str) -> Any:
        try:
            original = self.__dict__["_inspector_original"]
        except KeyError:
            raise AttributeError(name) from None
        return getattr(original, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if not self._attempted:  # no lifespan (uvicorn --lifespan off): start on first request
            self._start()
        await self._app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first.get("type") == "lifespan.startup" and not self._attempted:
            error = self._start()
            if error is not None and self._strict:
                await send({"type": "lifespan.startup.failed", "message": error})
                return
        pending = [first]
        shutdown_seen = False

        async def replay_receive() -> Message:
            nonlocal shutdown_seen
            message = pending.pop() if pending else await receive()
            if message.get("type") == "lifespan.shutdown":
                shutdown_seen = True
            return message

        async def watch_send(message: Message) -> None:
            if message.get("type") in (
                "lifespan.startup.failed",
                "lifespan.shutdown.complete",
                "lifespan.shutdown.failed",
            ):
                self._stop()
            await send(message)

        try:
            await self._app(scope, replay_receive, watch_send)
        finally:
            # An app without lifespan support raises at once; the agent then lives until exit.
            if shutdown_seen:
                self._stop()

    def _start(self) -> str | None:
        """Start the agent; return None, or the one-line reason it did not start."""
        self._attempted = True
        try:
            agent = Agent(
                asyncio.get_running_loop(), self._config, extra_errors=tuple(self._errors)
            )
            agent.start()
        except Exception as error:
            message = f"inspector agent not started: {error}"
            if self._strict:
                logger.error(message)
            else:
                logger.warning("%s (the app runs without it)", message)
            if self._on_start_error is not None:
                self._on_start_error(message)
            return message
        self._agent = agent
        if self._on_started is not None:
            self._on_started(agent.host, agent.port)
        return None

    def _stop(self) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            agent.close()


INSTRUMENTED_MARK: Final = "__inspector_instrumented__"
"""The agent configuration of an app that `instrument` changed in place: also the mark that
keeps anything from adding a second agent to it."""


def is_instrumented(app: Any) -> bool:
    """Whether `app` already runs the agent (wrapped, or changed in place by `instrument`)."""
    return isinstance(app, InstrumentedApp) or getattr(app, INSTRUMENTED_MARK, None) is not None


def instrument(app: Any, config: AgentConfig | None = None) -> Any:
    """Put the inspector agent inside an ASGI app (FastAPI, Starlette, any); returns the app.

    The one line for people who start uvicorn themselves::

        app = FastAPI()
        inspector.agent.instrument(app)

    A FastAPI or Starlette app stays the same object (its middleware stack, built when it first
    serves, gets the agent outermost), so ``fastapi run`` and ``fastapi dev`` still find it and
    everything done to it later still counts. Any other ASGI callable is returned wrapped:
    ``app = instrument(app)``.

    Without `config`, the ``INSPECTOR_*`` variables configure the agent (``INSPECTOR_ENABLED=0``
    leaves the app untouched), so a deployment can switch it on or off without a code change.

    The agent starts at lifespan startup (or at the first request without lifespan) and stops
    at shutdown. If it cannot start (a busy port), one warning is logged and the app serves as
    if it were not there.
    """
    if is_instrumented(app):
        return app
    if config is None:
        config = _config_from_environment()
        if config is None:
            return app
    build = getattr(app, "build_middleware_stack", None)
    if not callable(build) or not hasattr(app, "middleware_stack"):
        return InstrumentedApp(app, config)

    def build_middleware_stack() -> Any:
        return InstrumentedApp(build(), getattr(app, INSTRUMENTED_MARK))

    app.build_middleware_stack = build_middleware_stack
    setattr(app, INSTRUMENTED_MARK, config)
    if app.middleware_stack is not None:  # it has served already: rebuild with the agent
        app.middleware_stack = build_middleware_stack()
    return app


def reconfigure(app: Any, config: AgentConfig) -> bool:
    """Give an app that called `instrument` itself the agent configuration `config` instead, as
    long as its agent has not started; whether it could. `inspector run` does this: the options
    given where the server is started win over the ones written in the app."""
    if isinstance(app, InstrumentedApp):
        if app._attempted:
            return False
        app._config = config
        return True
    if getattr(app, INSTRUMENTED_MARK, None) is not None and app.middleware_stack is None:
        setattr(app, INSTRUMENTED_MARK, config)
        return True
    return False


def _config_from_environment() -> AgentConfig | None:
    """The agent's configuration from ``INSPECTOR_*``; None when switched off or unreadable."""
    import os

    from inspector.agent.settings import SettingError, config_from_environment, enabled

    try:
        if not enabled(os.environ):
            return None
        return config_from_environment(os.environ)
    except SettingError as error:
        logger.warning("inspector agent not started: %s (the app runs without it)", error)
        return None
