"""Pausing Python's cyclic garbage collector around work that allocates much and frees it all.

Building, encoding or decoding a 10,000-task snapshot allocates about 100,000 containers that
are all alive until the work ends. With the collector on they set off collections that walk
them (and, in a server, the whole heap) for nothing: half of the decoding time in the client,
60 ms spikes in the agent. Paused, they are freed by reference counting and no collection is
owed for them. A collector that was off stays off.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def without_gc(function: Callable[[str], T], text: str) -> T:
    """`function(text)` with the collector paused, as one callable for `asyncio.to_thread`
    (decoding a 10,000-task snapshot: 180 ms → 80 ms)."""
    with collector_paused():
        return function(text)
