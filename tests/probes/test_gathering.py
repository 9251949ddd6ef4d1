"""The gather watch on its own: which children's exceptions gather hid, on which loop."""

from __future__ import annotations

import asyncio
from typing import Any

from inspector.agent.probes.gathering import GatherWatch


async def fails(delay: float, exc: BaseException) -> None:
    await asyncio.sleep(delay)
    raise exc


def watching(loop: asyncio.AbstractEventLoop, hidden: list[BaseException]) -> GatherWatch:
    def on_hidden(child: Any, exc: BaseException) -> None:
        hidden.append(exc)

    errors: list[str] = []
    watch = GatherWatch(loop, on_hidden, None, errors.append)
    watch.install()
    return watch


async def test_a_sibling_failing_after_gather_raised_is_hidden_and_reported() -> None:
    hidden: list[BaseException] = []
    watch = watching(asyncio.get_running_loop(), hidden)
    try:
        try:
            await asyncio.gather(fails(0.01, KeyError("first")), fails(0.05, ValueError("second")))
        except KeyError:
            pass
        await asyncio.sleep(0.1)
    finally:
        watch.close()
    assert [type(e) for e in hidden] == [ValueError]  # not the KeyError gather raised


async def test_return_exceptions_and_successes_are_not_reported() -> None:
    hidden: list[BaseException] = []
    watch = watching(asyncio.get_running_loop(), hidden)
    try:
        results = await asyncio.gather(
            fails(0.01, KeyError("a")), asyncio.sleep(0.05), return_exceptions=True
        )
    finally:
        watch.close()
    assert isinstance(results[0], KeyError) and hidden == []


async def test_gathers_of_another_loop_are_not_watched() -> None:
    hidden: list[BaseException] = []
    other = asyncio.new_event_loop()
    watch = watching(other, hidden)
    try:
        try:
            await asyncio.gather(fails(0.01, KeyError("first")), fails(0.05, ValueError("second")))
        except KeyError:
            pass
        await asyncio.sleep(0.1)
    finally:
        watch.close()
        other.close()
    assert hidden == []


def test_closing_gives_asyncio_its_own_class_back() -> None:
    import asyncio.tasks

    original = asyncio.tasks._GatheringFuture  # type: ignore[attr-defined]
    loop = asyncio.new_event_loop()
    try:
        watch = watching(loop, [])
        assert asyncio.tasks._GatheringFuture is not original  # type: ignore[attr-defined]
        watch.close()
        assert asyncio.tasks._GatheringFuture is original  # type: ignore[attr-defined]
    finally:
        loop.close()
