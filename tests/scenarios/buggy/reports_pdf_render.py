"""Reports service: invoices are rendered to PDF by a sync library in a worker thread.

Faults: the renderer holds the report lock while it awaits the worker thread, and the worker
asks the loop for the company logo through a coroutine that takes the same lock: the worker
waits on the loop, the loop's task waits on the worker, and neither ever finishes. The preview
endpoint waits on the loop thread for a thumbnail from the renderer's own pool, whose job asks
the loop for the watermark: the loop is frozen until the wait times out.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(
    calls=(get("/reports"), hold("/reports/inv-42.pdf"), get("/reports/inv-7/preview", after=1.5)),
    loop="uvloop",
)


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


class Thumbnailer:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="thumbnails")

    def preview(self, invoice: str) -> bytes:
        """Called from async code: the pool does the work, so this looked safe."""
        loop = asyncio.get_running_loop()
        job = self._pool.submit(self._render_thumbnail, invoice, loop)
        return job.result(timeout=3)  # bug: sync-async-deadlock

    def _render_thumbnail(self, invoice: str, loop: asyncio.AbstractEventLoop) -> bytes:
        mark = asyncio.run_coroutine_threadsafe(self._watermark(), loop)
        return mark.result(timeout=5) + invoice.encode()  # bug: sync-async-deadlock

    async def _watermark(self) -> bytes:
        return b"<draft>"


renderer = ReportRenderer()
thumbnails = Thumbnailer()
app = FastAPI()


@app.get("/reports")
async def reports() -> list[str]:
    return ["inv-42"]


@app.get("/reports/{name}.pdf")
async def report_pdf(name: str) -> dict[str, int]:
    return {"bytes": len(await renderer.render(name))}


@app.get("/reports/{name}/preview")
async def report_preview(name: str) -> dict[str, int]:
    return {"bytes": len(thumbnails.preview(name))}
