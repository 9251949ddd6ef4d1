"""Thumbnail service: sync endpoints fetch originals from object storage and resize them.

Fault: the storage client's fetch blocks for seconds on a slow bucket, and each sync endpoint holds
one of anyio's 40 worker threads while it waits; a burst of requests takes them all and the rest
queue, while the CPU sits idle.
"""

from __future__ import annotations

import time

from fastapi import FastAPI

from tests.scenarios.spec import Scenario, get, hold

SCENARIO = Scenario(calls=(hold("/thumbnails/banner.png?width=320", times=48), get("/health")))

app = FastAPI()


class BucketClient:
    """A blocking object-storage client, as most SDKs are."""

    def __init__(self, bucket: str, latency: float) -> None:
        self.bucket = bucket
        self.latency = latency

    def get_object(self, key: str) -> bytes:
        time.sleep(self.latency)  # bug: threadpool-saturated
        return key.encode() * 64


originals = BucketClient("media-originals", latency=6.0)


def resize(data: bytes, width: int) -> bytes:
    return data[: max(1, width // 8)]


@app.get("/thumbnails/{key}")
def thumbnail(key: str, width: int = 160) -> dict[str, int]:
    data = originals.get_object(f"originals/{key}")
    return {"width": width, "bytes": len(resize(data, width))}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
