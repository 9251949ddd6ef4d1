"""Saved snapshots as a source: read back faithfully, refused with one line when they are not."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from inspector import protocol
from inspector.client import file_source
from inspector.client.file_source import FileSource
from inspector.client.source import ConnectError
from inspector.protocol import Result

from . import factories


def saved(tmp_path: Path, text: str | bytes, name: str = "snap.json") -> FileSource:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return FileSource(path)


async def test_a_saved_snapshot_reads_back_as_a_file_source(tmp_path: Path) -> None:
    snapshot = factories.rich_snapshot()
    source = saved(tmp_path, protocol.encode_snapshot_file(snapshot))
    hello = await source.connect()
    read = await source.snapshot()
    assert read.source == "file"
    assert read.tasks == snapshot.tasks and read.stalls == snapshot.stalls
    assert hello.process == snapshot.process and hello.read_only
    assert "cancel" not in hello.capabilities
    assert source.live is False
    assert await source.cancel(12) == Result(ok=False, message="a saved snapshot cannot act")
    await source.close()


async def connect_error(source: FileSource) -> str:
    with pytest.raises(ConnectError) as caught:
        await source.connect()
    message = str(caught.value)
    assert "\n" not in message and message
    return message


async def test_missing_file(tmp_path: Path) -> None:
    message = await connect_error(FileSource(tmp_path / "nope.json"))
    assert message == f"no such file: {tmp_path / 'nope.json'}"


async def test_corrupt_file(tmp_path: Path) -> None:
    message = await connect_error(saved(tmp_path, '{"kind": "uvicorn-inspector-snapshot", '))
    assert message.startswith(f"{tmp_path / 'snap.json'}: not a snapshot file: invalid JSON")


async def test_some_other_json(tmp_path: Path) -> None:
    message = await connect_error(saved(tmp_path, '{"name": "package.json"}'))
    assert "not a snapshot file (no 'kind: uvicorn-inspector-snapshot')" in message


async def test_binary_file(tmp_path: Path) -> None:
    message = await connect_error(saved(tmp_path, b"\x89PNG\r\n\x1a\n\xff\xfe"))
    assert message.endswith("is not a snapshot file (it is not UTF-8 text)")


async def test_newer_file_version(tmp_path: Path) -> None:
    text = '{"kind": "uvicorn-inspector-snapshot", "protocol": 7, "snapshot": {}}'
    message = await connect_error(saved(tmp_path, text))
    assert "snapshot file has protocol 7, this version reads 1" in message


async def test_too_large_file_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_source, "MAX_FILE_BYTES", 1000)
    message = await connect_error(saved(tmp_path, " " * 2000))
    assert "too large for a snapshot file" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
async def test_unreadable_file(tmp_path: Path) -> None:
    source = saved(tmp_path, "{}")
    source.path.chmod(0)
    message = await connect_error(source)
    assert message.endswith("permission denied")


async def test_directory(tmp_path: Path) -> None:
    message = await connect_error(FileSource(tmp_path))
    assert message == f"{tmp_path} is a directory, not a snapshot file"


async def test_a_file_whose_size_says_empty_is_read_only_to_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A /proc file gives its size as 0 and holds more: the read stops one byte past the limit
    (so a file growing while it is read is bounded the same way)."""
    path = Path("/proc/self/status")
    if not path.exists():
        pytest.skip("no /proc here")
    assert path.stat().st_size == 0
    monkeypatch.setattr(file_source, "MAX_FILE_BYTES", 100)
    monkeypatch.setattr(file_source, "READ_CHUNK_BYTES", 7)
    message = await connect_error(FileSource(path))
    assert message == (
        f"{path} holds more than 100 bytes: too large for a snapshot file (the limit is 100 bytes)"
    )


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (os.mkfifo, "is a FIFO (named pipe), not a snapshot file"),
        (lambda path: os.symlink("/dev/zero", path), "is a character device, not a snapshot file"),
    ],
    ids=["fifo", "dev-zero"],
)
async def test_special_files_are_refused_at_once(
    tmp_path: Path, make: Callable[[Path], None], words: str
) -> None:
    path = tmp_path / "snap.json"
    make(path)
    started = time.monotonic()
    message = await connect_error(FileSource(path))
    assert message == f"{path} {words}"
    assert time.monotonic() - started < 5  # at once; generous for a loaded machine


async def test_a_saved_snapshot_at_the_size_limit_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = protocol.encode_snapshot_file(factories.rich_snapshot())
    monkeypatch.setattr(file_source, "MAX_FILE_BYTES", len(text.encode()))
    assert (await saved(tmp_path, text).snapshot()).tasks == factories.rich_snapshot().tasks
