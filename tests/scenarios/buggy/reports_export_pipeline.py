"""Reporting service: an export renders a CSV, uploads it and tells its owner, all after the 202.

Faults: the renderer raises on a report with an unknown column, and Starlette then skips the upload
and the notification queued after it; the dashboard's refresh logs a parse error with its
traceback.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging

from fastapi import APIRouter, BackgroundTasks, FastAPI

from tests.scenarios.spec import Scenario, get, post

SCENARIO = Scenario(
    calls=(post("/reports/churn/export"), get("/dashboards/weekly/refresh")),
)

log = logging.getLogger("reports")
REPORTS = {
    "churn": ["account", "plan", "churned_at", "reason_code"],
    "revenue": ["account", "mrr"],
}
KNOWN_COLUMNS = {"account", "plan", "churned_at", "mrr"}
exports = APIRouter(prefix="/reports")
dashboards = APIRouter(prefix="/dashboards")


class ExportStore:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def upload(self, name: str) -> None:
        await asyncio.sleep(0.02)
        self.files[name] = b"uploaded"


store = ExportStore()


def render_csv(report: str) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([_header(column) for column in REPORTS[report]])


def _header(column: str) -> str:
    if column not in KNOWN_COLUMNS:
        raise KeyError(f"column {column!r} is not in the schema")  # bug: background-failed
    return column.replace("_", " ").title()


async def notify_owner(report: str) -> None:
    await asyncio.sleep(0.01)


@exports.post("/{report}/export", status_code=202)
async def export_report(report: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(render_csv, report)
    background_tasks.add_task(store.upload, f"{report}.csv")  # bug: background-skipped
    background_tasks.add_task(notify_owner, report)  # bug: background-skipped
    return {"report": report, "status": "exporting"}


@exports.get("/{report}")
async def report_columns(report: str) -> dict[str, list[str]]:
    return {"columns": REPORTS.get(report, [])}


def parse_widget(spec: str) -> tuple[str, int]:
    name, size = spec.split(":")
    return name, int(size)  # bug: logged-error


@dashboards.get("/{dashboard}/refresh")
async def refresh_dashboard(dashboard: str) -> dict[str, int]:
    widgets = []
    for spec in ("signups:2", "churn:wide", "mrr:1"):
        try:
            widgets.append(parse_widget(spec))
        except ValueError:
            log.exception("dashboard %s: widget %r skipped", dashboard, spec)
    return {"widgets": len(widgets)}


app = FastAPI()
app.include_router(exports)
app.include_router(dashboards)
