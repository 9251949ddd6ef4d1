"""Billing service: issuing an invoice archives its PDF and syncs the ledger after the response.

Faults: the archiver (a sync job, run in the threadpool) raises on an invoice without line items,
and the ledger sync (an async job) raises when the ledger rejects the currency of a credit note.
Both happen after the client got its 201, through jobs queued by a dependency.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI
from pydantic import BaseModel

from tests.scenarios.spec import Scenario, post

SCENARIO = Scenario(
    calls=(
        post("/invoices", '{"customer": "acme", "currency": "EUR", "lines": []}'),
        post("/invoices/inv-7/credit-notes", '{"amount": 120, "currency": "CHF"}'),
        post("/invoices", '{"customer": "globex", "currency": "EUR", "lines": [40, 2]}'),
    )
)

app = FastAPI()
LEDGER_CURRENCIES = frozenset({"EUR", "USD", "GBP"})


class InvoiceIn(BaseModel):
    customer: str
    currency: str
    lines: list[int]


class CreditNoteIn(BaseModel):
    amount: int
    currency: str


class LedgerRejected(Exception):
    pass


class PdfArchive:
    """Writes rendered invoices to cold storage; blocking I/O, so it runs in a thread."""

    def __init__(self) -> None:
        self.stored: dict[str, str] = {}

    def store(self, invoice_id: str, lines: list[int]) -> None:
        digest = self._render(invoice_id, lines)
        self.stored[invoice_id] = digest

    def _render(self, invoice_id: str, lines: list[int]) -> str:
        total = sum(lines) / len(lines)  # bug: background-failed
        return hashlib.sha256(f"{invoice_id}:{total}".encode()).hexdigest()


class LedgerClient:
    async def post_entry(self, reference: str, amount: int, currency: str) -> None:
        await asyncio.sleep(0.02)  # the ledger's API round trip
        if currency not in LEDGER_CURRENCIES:
            raise LedgerRejected(f"ledger has no book for {currency}")  # bug: background-failed


archive = PdfArchive()
ledger = LedgerClient()


class InvoiceJobs:
    """Everything that happens once an invoice document exists."""

    def __init__(self, tasks: BackgroundTasks) -> None:
        self.tasks = tasks

    def issued(self, invoice_id: str, invoice: InvoiceIn) -> None:
        self.tasks.add_task(archive.store, invoice_id, invoice.lines)

    def credited(self, reference: str, note: CreditNoteIn) -> None:
        self.tasks.add_task(ledger.post_entry, reference, -note.amount, note.currency)


def invoice_jobs(background_tasks: BackgroundTasks) -> InvoiceJobs:
    return InvoiceJobs(background_tasks)


Jobs = Annotated[InvoiceJobs, Depends(invoice_jobs)]


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/invoices", status_code=201)
async def issue_invoice(invoice: InvoiceIn, jobs: Jobs) -> dict[str, str]:
    invoice_id = f"inv-{uuid.uuid4().hex[:8]}"
    jobs.issued(invoice_id, invoice)
    return {"id": invoice_id}


@app.post("/invoices/{invoice_id}/credit-notes", status_code=201)
async def credit_invoice(invoice_id: str, note: CreditNoteIn, jobs: Jobs) -> dict[str, str]:
    reference = f"{invoice_id}-cn"
    jobs.credited(reference, note)
    return {"reference": reference}


@app.get("/invoices/{invoice_id}/archive")
async def archived(invoice_id: str) -> dict[str, str | None]:
    return {"digest": archive.stored.get(invoice_id)}
