"""The Source protocol: where snapshots come from, for the CLI and the TUI alike."""

from __future__ import annotations

from typing import Protocol

from inspector.errors import ExitStatus, InspectorError
from inspector.model import Snapshot
from inspector.protocol import Hello, Result


class SourceError(InspectorError):
    """A source could not deliver; the message is one line for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitStatus.ERROR)


class ConnectError(SourceError):
    """Nothing inspectable answered at the address (closed port, other server, bad host)."""


class DisconnectedError(SourceError):
    """The target went away or stopped answering after a successful connect."""


class Source(Protocol):
    """A live agent, a plain aiomonitor, a saved snapshot file, or a test fake."""

    @property
    def address(self) -> str:
        """What the user would type to reach this source again ("127.0.0.1:20101", a path)."""
        ...

    @property
    def live(self) -> bool:
        """False for a saved file: there is nothing to poll or reconnect to."""
        ...

    async def connect(self) -> Hello:
        """Open the connection and handshake; raises ConnectError."""
        ...

    async def snapshot(self, *, with_stacks: bool = True) -> Snapshot:
        """One fresh snapshot; raises DisconnectedError when the target is gone."""
        ...

    async def cancel(self, task_id: int) -> Result:
        """Ask the target to cancel a task; the Result says whether it did."""
        ...

    async def close(self) -> None:
        """Close the connection; never raises."""
        ...
