"""Provides `save_snapshot`: the `s` key's file, named so that saving twice never overwrites."""

from __future__ import annotations

import time
from pathlib import Path

from inspector import protocol
from inspector.model import Snapshot


def save_snapshot(snapshot: Snapshot, directory: Path) -> Path:
    """Write `snapshot` as a saved-snapshot file in `directory` and return its path; OSError.

    Named after the process and the time the snapshot was taken
    (``inspector-snapshot-4242-20250101-120000.json``), with a suffix when that name is taken.
    Writing 10,000 tasks is about 6 MB of JSON: call it off the UI thread.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(snapshot.taken_at))
    base = f"inspector-snapshot-{snapshot.process.pid}-{stamp}"
    path = directory / f"{base}.json"
    suffix = 1
    while path.exists():
        path = directory / f"{base}-{suffix}.json"
        suffix += 1
    path.write_text(protocol.encode_snapshot_file(snapshot), encoding="utf-8")
    return path
