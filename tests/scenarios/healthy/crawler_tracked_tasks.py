"""Link checker service: each check fans out to every link of a page and reports what failed.

Healthy: the fan-out uses gather with return_exceptions and inspects every result, failures
included; the follow-up cache warm-ups are fire-and-forget tasks whose references are kept in a
set until they finish.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(post("/pages/home/check", times=4), get("/pages/home/report", after=1.0)),
    watch=4.0,
)

log = logging.getLogger("linkcheck")
app = FastAPI()
LINKS = {"home": ["/about", "/pricing", "/gone", "/slow"]}
reports: dict[str, dict[str, str]] = {}
warm: set[str] = set()
background: set[asyncio.Task[None]] = set()


class LinkBroken(Exception):
    pass


async def probe_link(link: str) -> int:
    await asyncio.sleep(0.3 if link == "/slow" else 0.02)
    if link == "/gone":
        raise LinkBroken(f"{link} answered 404")
    return 200


async def warm_cache(link: str) -> None:
    await asyncio.sleep(0.2)
    warm.add(link)


def spawn(coro: object) -> None:
    task = asyncio.create_task(coro)  # type: ignore[arg-type]
    background.add(task)
    task.add_done_callback(background.discard)


@app.post("/pages/{page}/check")
async def check(page: str) -> dict[str, int]:
    links = LINKS.get(page, [])
    results = await asyncio.gather(*(probe_link(link) for link in links), return_exceptions=True)
    report = {}
    for link, result in zip(links, results, strict=True):
        if isinstance(result, Exception):
            log.warning("link %s on %s is broken: %s", link, page, result)
            report[link] = f"broken: {result}"
        else:
            report[link] = "ok"
            spawn(warm_cache(link))
    reports[page] = report
    return {"checked": len(links), "broken": sum(v != "ok" for v in report.values())}


@app.get("/pages/{page}/report")
async def report(page: str) -> dict[str, str]:
    return reports.get(page, {})
