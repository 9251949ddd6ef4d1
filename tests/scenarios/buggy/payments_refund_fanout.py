"""Payments service: a refund checks the ledger and the fraud service side by side.

Faults: the fraud check waits for a verdict the fraud service never publishes (no timeout), so
the refund request hangs inside its `gather`; the receipt archive writes and re-reads every
receipt file on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI

from tests.scenarios.spec import Scenario, get, hold, post

SCENARIO = Scenario(
    calls=(get("/health"), hold("/refunds/rf-1001"), post("/receipts/archive", after=0.2))
)

app = FastAPI()


@dataclass
class Ledger:
    balances: dict[str, int] = field(default_factory=lambda: {"rf-1001": 4200})

    async def refundable(self, refund_id: str) -> int:
        await asyncio.sleep(0.01)
        return self.balances.get(refund_id, 0)


@dataclass
class FraudClient:
    """Verdicts arrive on a callback the fraud service posts; callers wait for theirs."""

    verdicts: dict[str, asyncio.Future[str]] = field(default_factory=dict)

    def publish(self, refund_id: str, verdict: str) -> None:
        self._slot(refund_id).set_result(verdict)

    def _slot(self, refund_id: str) -> asyncio.Future[str]:
        if refund_id not in self.verdicts:
            self.verdicts[refund_id] = asyncio.get_running_loop().create_future()
        return self.verdicts[refund_id]

    async def verdict(self, refund_id: str) -> str:
        return await self._slot(refund_id)  # bug: hanging-request


ledger = Ledger()
fraud = FraudClient()


def get_ledger() -> Ledger:
    return ledger


def get_fraud() -> FraudClient:
    return fraud


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/fraud/verdicts/{refund_id}")
async def fraud_callback(refund_id: str, verdict: str) -> dict[str, str]:
    fraud.publish(refund_id, verdict)
    return {"refund_id": refund_id}


@app.get("/refunds/{refund_id}")
async def refund(
    refund_id: str,
    ledger: Annotated[Ledger, Depends(get_ledger)],
    fraud: Annotated[FraudClient, Depends(get_fraud)],
) -> dict[str, object]:
    amount, verdict = await asyncio.gather(ledger.refundable(refund_id), fraud.verdict(refund_id))
    return {"refund_id": refund_id, "amount": amount, "verdict": verdict}


ARCHIVE = tempfile.mkdtemp(prefix="receipts-")


def _write_receipts(count: int) -> int:
    written = 0
    for number in range(count):
        path = os.path.join(ARCHIVE, f"receipt-{number % 50}.txt")
        with open(path, "w") as receipt:
            receipt.write(f"receipt {number}: refunded\n")
            receipt.flush()
            os.fsync(receipt.fileno())  # bug: loop-blocked
        written += 1
    return written


@app.post("/receipts/archive")
async def archive_receipts() -> dict[str, int]:
    return {"archived": _write_receipts(1500)}
