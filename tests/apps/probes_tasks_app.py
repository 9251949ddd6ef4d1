"""Tasks whose failures nobody sees: a worker dying on its first line, a gather hiding a child's
exception, a task collected while pending. Beside each, its healthy twin."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

app = FastAPI()
workers: list[asyncio.Task[None]] = []


class IndexUnavailable(Exception):
    pass


async def compact_index() -> None:
    raise KeyError("INGEST_COMPACTION_THRESHOLD")


async def supervise(worker: asyncio.Task[None]) -> None:
    try:
        await worker
    except KeyError:
        pass


def start_worker() -> asyncio.Task[None]:
    worker = asyncio.create_task(compact_index(), name="index-compactor")
    workers.append(worker)
    return worker


def start_supervised_worker() -> None:
    worker = asyncio.create_task(compact_index(), name="supervised-compactor")
    workers.append(worker)
    workers.append(asyncio.create_task(supervise(worker)))


async def times_out() -> int:
    await asyncio.sleep(0.01)
    raise TimeoutError("first shelf timed out")


async def fails_later() -> int:
    await asyncio.sleep(0.1)
    raise IndexUnavailable("similar items: the vector index is down")


async def slow_answer() -> int:
    await asyncio.sleep(0.6)
    return 1


@app.post("/gather-hides")
async def gather_hides() -> dict[str, str]:
    try:
        await asyncio.gather(times_out(), fails_later())
    except TimeoutError:
        return {"shelves": "fallback"}
    return {"shelves": "all"}


@app.post("/gather-all")
async def gather_all() -> dict[str, int]:
    results = await asyncio.gather(times_out(), slow_answer(), return_exceptions=True)
    return {"failed": sum(isinstance(result, Exception) for result in results)}


async def wait_for_signal() -> None:
    await asyncio.get_running_loop().create_future()


@app.post("/orphan")
async def orphan() -> dict[str, bool]:
    asyncio.create_task(wait_for_signal())  # noqa: RUF006 - the bug under test
    return {"started": True}


watchers: list[asyncio.Task[None]] = []


async def watch_price() -> None:
    while True:
        await asyncio.sleep(0.5)


@app.post("/watch")
async def watch() -> dict[str, int]:
    watchers.append(asyncio.create_task(watch_price()))
    return {"watchers": len(watchers)}


@app.post("/gather-by-name")
async def gather_by_name() -> dict[str, str]:
    from tests.apps.probes_tasks_gather import shelves

    return {"shelves": await shelves()}


@app.post("/wait-all")
async def wait_all() -> dict[str, int]:
    """Healthy: asyncio.wait, then every task's outcome read, the failed one's too."""
    tasks = {asyncio.create_task(times_out()), asyncio.create_task(slow_answer())}
    done, _ = await asyncio.wait(tasks)
    return {"failed": sum(task.exception() is not None for task in done)}
