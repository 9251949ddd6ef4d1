"""`FileSource`: a snapshot saved by ``inspector dump -o FILE`` (or ``--format json``).

Read once, on `connect`; every `snapshot` returns the same one. Nothing is live, so nothing can be
cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
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
READ_CHUNK_BYTES: Final = 1 << 20
"""Reads past the size a file gave (a /proc file says 0) take this much at a time."""


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
        data = _read_regular_file(path)
    except FileNotFoundError:
        raise ConnectError(f"no such file: {path}") from None
    except PermissionError:
        raise ConnectError(f"cannot read {path}: permission denied") from None
    except OSError as error:
        raise ConnectError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:  # a path with a NUL in it
        raise ConnectError(f"cannot read {path}: {_one_line(str(error))}") from None
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


def _read_regular_file(path: Path) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `MAX_FILE_BYTES`.

    A wrong path must fail at once, not hang or fill memory: a FIFO would block an ordinary
    open until a writer came, /dev/zero never ends, a /proc file says it is empty and is not.
    So the path is checked before it is opened (a device is never opened), opened without
    blocking, checked again on the open file (the path may have changed between), and read
    to at most one byte past the limit, whatever its size said.
    """
    _check_kind(path, os.stat(path).st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        status = os.fstat(fd)
        _check_kind(path, status.st_mode)
        _check_size(path, status.st_size)
        chunks: list[bytes] = []
        total = 0
        want = status.st_size + 1  # the whole file in one read when its size is right
        while total <= MAX_FILE_BYTES:
            chunk = os.read(fd, min(max(want, READ_CHUNK_BYTES), MAX_FILE_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            want = 0
        if total > MAX_FILE_BYTES:  # it grew while it was read, or its size was not true
            raise ConnectError(
                f"{path} holds more than {MAX_FILE_BYTES:,} bytes: too large for a snapshot file "
                f"(the limit is {_limit()})"
            )
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_kind(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), None)
    if kind is None:
        raise ConnectError(f"{path} is not a regular file")
    raise ConnectError(f"{path} is {kind}, not a snapshot file")


def _check_size(path: Path, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise ConnectError(
            f"{path} is {size:,} bytes: too large for a snapshot file (the limit is {_limit()})"
        )


def _limit() -> str:
    megabytes, rest = divmod(MAX_FILE_BYTES, 2**20)
    return f"{megabytes} MB" if megabytes and not rest else f"{MAX_FILE_BYTES:,} bytes"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
