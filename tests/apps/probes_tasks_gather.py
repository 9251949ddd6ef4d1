"""gather imported by name (bound when this module is imported, whoever patches asyncio later)."""

from __future__ import annotations

from asyncio import gather

from tests.apps.probes_tasks_app import fails_later, times_out


async def shelves() -> str:
    try:
        await gather(times_out(), fails_later())
    except TimeoutError:
        return "fallback"
    return "all"
