"""Reports service: invoices are rendered to PDF by a sync library in a worker thread.

Fault: the renderer holds the report lock while it awaits the worker thread, and the worker
asks the loop for the company logo through a coroutine that takes the same lock: the worker
waits on the loop, the loop's task waits on the worker, and neither ever finishes.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(calls=(get("/reports"), hold("/reports/inv-42.pdf")), loop="uvloop")


class ReportRenderer:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._logo: bytes | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def render(self, invoice: str) -> bytes:
        self._loop = asyncio.get_running_loop()
        async with self._lock:
            return await asyncio.to_thread(self._render_sync, invoice)  # bug: sync-async-deadlock

    def _render_sync(self, invoice: str) -> bytes:
        loop = self._loop
        assert loop is not None
        fetch = self._company_logo()
        logo = asyncio.run_coroutine_threadsafe(fetch, loop).result()  # bug: sync-async-deadlock
        return b"%PDF-1.7 " + logo + invoice.encode()

    async def _company_logo(self) -> bytes:
        async with self._lock:
            if self._logo is None:
                await asyncio.sleep(0.01)
                self._logo = b"<logo>"
            return self._logo


renderer = ReportRenderer()
app = FastAPI()


@app.get("/reports")
async def reports() -> list[str]:
    return ["inv-42"]


@app.get("/reports/{name}.pdf")
async def report_pdf(name: str) -> dict[str, int]:
    return {"bytes": len(await renderer.render(name))}
