"""An app that sets its own loop exception handler keeps it, and the agent keeps its view.

The exceptions probe is installed on a real loop (asyncio's and uvloop's) as the agent does it,
then the app sets its handler, as apps do in their lifespan. Tasks then die with exceptions
nobody retrieves: each must be in the report and reach the app's handler exactly once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from inspector.agent.probe import AgentConfig, AgentContext, CollectOptions
from inspector.agent.probes.exceptions import RECHAIN_INTERVAL, ExceptionLog, ExceptionsProbe
from inspector.model import ExceptionEvent

Handler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


class AttributeRefusingLoop(asyncio.SelectorEventLoop):
    """A loop whose methods cannot be shadowed on the instance, like a compiled loop class."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("set_exception_handler", "get_exception_handler"):
            raise AttributeError(name)
        super().__setattr__(name, value)


class Installed:
    """The exceptions probe on `loop`, installed on the loop's thread as the agent does."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.context = AgentContext(
            loop=loop, loop_thread_id=threading.get_ident(), config=AgentConfig()
        )
        self.probe = ExceptionsProbe(self.context.config, ExceptionLog(50))

    def events(self) -> tuple[ExceptionEvent, ...]:
        events: tuple[ExceptionEvent, ...] = self.probe.collect(self.context, CollectOptions())[
            "exceptions"
        ]
        return events

    def lost(self) -> int:
        """How many unretrieved task exceptions the report counts."""
        return sum(e.count for e in self.events() if e.kind == "task-exception-unretrieved")


def run(
    loop: asyncio.AbstractEventLoop, scenario: Callable[[Installed], Coroutine[Any, Any, Any]]
) -> Any:
    """Install the probe on `loop`, run `scenario` there, close the probe; never leaks a loop."""
    installed = Installed(loop)

    async def main() -> Any:
        installed.probe.install(installed.context)
        try:
            return await scenario(installed)
        finally:
            installed.probe.close()

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


async def lose_a_task(message: str) -> None:
    """A task that fails, its exception never retrieved, collected now: asyncio reports it."""

    async def fails() -> None:
        raise ValueError(message)

    task = asyncio.get_running_loop().create_task(fails())
    while not task.done():
        await asyncio.sleep(0)
    del task
    for _ in range(3):  # uvloop lets go of a finished task's last reference a turn later
        await asyncio.sleep(0)
        gc.collect()


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    made = new_loop(request.param)
    yield made
    if not made.is_closed():
        made.close()


def test_the_apps_handler_is_chained_and_called_once_per_exception(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[BaseException] = []

    def apps_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        seen.append(context["exception"])  # kept, as an error reporter's queue keeps them

    async def scenario(installed: Installed) -> tuple[int, object]:
        running = asyncio.get_running_loop()
        running.set_exception_handler(apps_handler)  # as an app does in its lifespan
        for number in range(3):
            await lose_a_task(f"lost {number}")
        return installed.lost(), running.get_exception_handler()

    lost, read_back = run(loop, scenario)
    assert lost == 3
    assert [str(error) for error in seen] == ["lost 0", "lost 1", "lost 2"]
    assert read_back is apps_handler


def test_after_close_the_apps_handler_is_the_loops_and_no_shadow_remains(
    loop: asyncio.AbstractEventLoop,
) -> None:
    def apps_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        pass

    async def scenario(installed: Installed) -> None:
        asyncio.get_running_loop().set_exception_handler(apps_handler)

    run(loop, scenario)
    assert loop.get_exception_handler() is apps_handler
    assert "set_exception_handler" not in vars(loop)
    assert "get_exception_handler" not in vars(loop)


def test_without_an_app_handler_the_loop_has_none_before_and_after(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def scenario(installed: Installed) -> object:
        return asyncio.get_running_loop().get_exception_handler()

    assert run(loop, scenario) is None
    assert loop.get_exception_handler() is None


def test_an_app_that_resets_its_handler_to_none_gets_asyncios_log_again(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[object] = []

    async def scenario(installed: Installed) -> int:
        running = asyncio.get_running_loop()
        running.set_exception_handler(lambda _loop, context: seen.append(context))
        running.set_exception_handler(None)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            await lose_a_task("after reset")
        return installed.lost()

    assert run(loop, scenario) == 1
    assert seen == []
    assert "exception was never retrieved" in caplog.text


def test_a_handler_that_is_not_callable_is_refused_as_without_the_agent(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def scenario(installed: Installed) -> str:
        with pytest.raises(TypeError) as refused:
            asyncio.get_running_loop().set_exception_handler("not a function")  # type: ignore[arg-type]
        return str(refused.value)

    assert "callable" in run(loop, scenario)


def test_an_app_handler_that_chains_to_the_one_it_found_runs_asyncios_once(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[object] = []

    async def scenario(installed: Installed) -> int:
        running = asyncio.get_running_loop()
        before = running.get_exception_handler()

        def chaining(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            seen.append(context.get("exception"))
            if before is None:
                loop.default_exception_handler(context)
            else:
                before(loop, context)

        running.set_exception_handler(chaining)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            await lose_a_task("chained")
        return installed.lost()

    assert run(loop, scenario) == 1
    assert len(seen) == 1
    assert caplog.text.count("exception was never retrieved") == 1


# --- a loop whose methods cannot be shadowed ------------------------------------------------------


def test_a_handler_set_on_an_unshadowable_loop_is_chained_at_the_next_check() -> None:
    seen: list[str] = []

    def apps_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        seen.append(str(context["exception"]))

    async def scenario(installed: Installed) -> int:
        running = asyncio.get_running_loop()
        running.set_exception_handler(apps_handler)
        await asyncio.sleep(RECHAIN_INTERVAL * 2 + 0.1)  # the probe's check runs on the loop
        await lose_a_task("found late")
        return installed.lost()

    loop = AttributeRefusingLoop()
    assert run(loop, scenario) == 1
    assert seen == ["found late"]
    assert loop.get_exception_handler() is apps_handler


def test_on_an_unshadowable_loop_a_handler_wrapping_ours_does_not_loop_forever(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[object] = []

    async def scenario(installed: Installed) -> int:
        running = asyncio.get_running_loop()
        before: Handler | None = running.get_exception_handler()  # ours, here
        assert before is not None

        def wrapping(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            seen.append(context.get("exception"))
            before(loop, context)

        running.set_exception_handler(wrapping)
        await asyncio.sleep(RECHAIN_INTERVAL * 2 + 0.1)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            await lose_a_task("wrapped")
        return installed.lost()

    assert run(AttributeRefusingLoop(), scenario) == 1
    assert len(seen) == 1
    assert caplog.text.count("exception was never retrieved") == 1


def test_a_handler_set_through_the_class_is_chained_at_the_next_check(
    loop: asyncio.AbstractEventLoop,
) -> None:
    seen: list[str] = []

    def apps_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        seen.append(str(context["exception"]))

    async def scenario(installed: Installed) -> int:
        running = asyncio.get_running_loop()
        type(running).set_exception_handler(running, apps_handler)  # past the agent's shadow
        await asyncio.sleep(RECHAIN_INTERVAL * 2 + 0.1)
        await lose_a_task("set through the class")
        return installed.lost()

    assert run(loop, scenario) == 1
    assert seen == ["set through the class"]
    assert loop.get_exception_handler() is apps_handler
