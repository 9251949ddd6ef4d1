"""A scriptable Source for widget tests, and a reader for the recorded snapshots."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Sequence
from pathlib import Path

from inspector import protocol
from inspector.client.source import ConnectError, DisconnectedError
from inspector.model import Snapshot
from inspector.protocol import Hello, Result

DATA = Path(__file__).parent / "data"


def load(name: str) -> Snapshot:
    """A recorded snapshot from tests/tui/data (see make_fixtures.py)."""
    plain = DATA / f"{name}.json"
    if plain.exists():
        return protocol.decode_snapshot_file(plain.read_text(encoding="utf-8"))
    return protocol.decode_snapshot_file(
        gzip.decompress((DATA / f"{name}.json.gz").read_bytes()).decode("utf-8")
    )


class FakeSource:
    """Serves `snapshots` in order (then repeats the last). Set `down` to make the target vanish."""

    def __init__(
        self,
        snapshots: Sequence[Snapshot],
        *,
        live: bool = True,
        address: str = "127.0.0.1:20101",
        read_only: bool = False,
        cancel_result: Result | None = None,
    ) -> None:
        self.snapshots = list(snapshots)
        self._live = live
        self._address = address
        self.read_only = read_only
        self.cancel_result = cancel_result or Result(ok=True, message="Task cancelled.")
        self.down = False
        self.served = 0
        self.connects = 0
        self.closes = 0
        self.cancelled: list[int] = []
        self.snapshot_calls = threading.Event()
        self._connected = False

    @property
    def address(self) -> str:
        return self._address

    @property
    def live(self) -> bool:
        return self._live

    def push(self, snapshot: Snapshot) -> None:
        """Serve `snapshot` from the next poll on."""
        self.snapshots.append(snapshot)
        self.served = min(self.served, len(self.snapshots) - 1)

    async def connect(self) -> Hello:
        if self.down:
            raise ConnectError(f"nothing answers at {self._address}")
        self.connects += 1
        self._connected = True
        process = self.snapshots[0].process
        return Hello(
            protocol=protocol.PROTOCOL_VERSION,
            agent_version="0.1.0",
            process=process,
            read_only=self.read_only,
        )

    async def snapshot(self, *, with_stacks: bool = True) -> Snapshot:
        if self.down or not self._connected:
            self._connected = False
            raise DisconnectedError("the target closed the connection")
        index = min(self.served, len(self.snapshots) - 1)
        if self.served < len(self.snapshots) - 1:
            self.served += 1
        self.snapshot_calls.set()
        return self.snapshots[index]

    async def cancel(self, task_id: int) -> Result:
        self.cancelled.append(task_id)
        return self.cancel_result

    async def close(self) -> None:
        self.closes += 1
        self._connected = False
