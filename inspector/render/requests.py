"""How a busy server's requests were recorded, in words shared by the UI and `dump`."""

from __future__ import annotations

from inspector.model import Snapshot
from inspector.plurals import plural


def request_detail_note(snapshot: Snapshot) -> str | None:
    """A sentence when not every request is recorded in full, else None."""
    every = snapshot.requests_detailed_every
    undetailed = snapshot.requests_undetailed
    if every <= 1 and not undetailed:
        return None
    now = (
        f"1 in {every:,} requests is recorded in full right now"
        if every > 1
        else "every request is recorded in full again"
    )
    were = "was" if undetailed == 1 else "were"
    return (
        f"Busy server: {now} (--request-detail-rate); the history and the route latency are "
        f"a sample, and {plural(undetailed, 'request')} so far {were} only listed while in flight"
    )
