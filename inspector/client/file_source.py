"""`FileSource`: a snapshot saved by ``inspector dump -o FILE`` (or ``--format json``).

Read once, on `connect`; every `snapshot` returns the same one. Nothing is live, so nothing can be
cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Final

from inspector import protocol
from inspector.client.source import ConnectError
from inspector.collector import without_gc
from inspector.model import Snapshot
from inspector.protocol import Hello, ProtocolError, Result

MAX_FILE_BYTES: Final = 512 * 1024 * 1024
"""Far above any real snapshot (50,000 tasks with stacks is about 40 MB saved), and small
enough that a wrong path (a disk image, a log) is refused before it is read."""


class FileSource:
    """A saved snapshot file, presented as a `Source` that never changes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._snapshot: Snapshot | None = None

    @property
    def address(self) -> str:
        return str(self.path)

    @property
    def live(self) -> bool:
        return False

    async def connect(self) -> Hello:
        snapshot = await self._load()
        return Hello(
            protocol=protocol.PROTOCOL_VERSION,
            agent_version=snapshot.process.agent_version or "",
            process=snapshot.process,
            capabilities=tuple(c for c in snapshot.capabilities if c != "cancel"),
            read_only=True,
            stall_threshold=snapshot.loop.stall_threshold if snapshot.loop else 0.1,
        )

    async def snapshot(self, *, with_stacks: bool = True) -> Snapshot:
        return await self._load()

    async def cancel(self, task_id: int) -> Result:
        return Result(ok=False, message="a saved snapshot cannot act")

    async def close(self) -> None:
        return None

    async def _load(self) -> Snapshot:
        if self._snapshot is None:
            # In a thread: a large file takes a while to decode, and a UI may share this loop.
            snapshot = await asyncio.to_thread(read_snapshot_file, self.path)
            self._snapshot = dataclasses.replace(snapshot, source="file")
        return self._snapshot


def read_snapshot_file(path: Path) -> Snapshot:
    """Read and check a saved snapshot; every failure is a one-line ConnectError."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ConnectError(f"{path} is a directory, not a snapshot file")
        if size > MAX_FILE_BYTES:
            raise ConnectError(
                f"{path} is {size / 1e6:,.0f} MB: too large for a snapshot file "
                f"(the limit is {MAX_FILE_BYTES // 2**20} MB)"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConnectError(f"no such file: {path}") from None
    except PermissionError:
        raise ConnectError(f"cannot read {path}: permission denied") from None
    except OSError as error:
        raise ConnectError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConnectError(f"{path} is not a snapshot file (it is not UTF-8 text)") from None
    try:
        return without_gc(protocol.decode_snapshot_file, text)
    except ProtocolError as error:
        raise ConnectError(f"{path}: {_one_line(str(error))}") from None
    except (ValueError, RecursionError) as error:  # belt and braces: never a traceback
        raise ConnectError(f"{path} is not a snapshot file ({_one_line(str(error))})") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
