"""The Source protocol: where snapshots come from, for the CLI and the TUI alike."""

from __future__ import annotations

from typing import Protocol

from inspector.errors import ExitStatus, InspectorError
from inspector.model import Snapshot
from inspector.protocol import Hello, ProtocolError, Result


class SourceError(InspectorError):
    """A source could not deliver; the message is one line for a person (the CLI prints it).

    `retryable` tells a poller whether trying again can help: a refused, reset or silent
    connection may come back (a worker restarting); an agent of another protocol version, a peer
    that is not an agent, or a payload that fails validation will say the same thing again.
    `protocol_error` keeps the typed `ProtocolError` behind the message, when there is one, so
    callers can tell a `VersionMismatchError` from a `NotAnAgentError` without reading text.
    """

    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        protocol_error: ProtocolError | None = None,
    ) -> None:
        super().__init__(message, ExitStatus.ERROR)
        self.protocol_error = protocol_error
        if retryable is not None:
            self.retryable = retryable
        elif protocol_error is not None:
            self.retryable = protocol_error.retryable


class ConnectError(SourceError):
    """Nothing inspectable answered at the address (closed port, other server, bad host)."""


class DisconnectedError(SourceError):
    """The target went away or stopped answering after a successful connect."""


def is_retryable(error: BaseException) -> bool:
    """Whether trying again can help after `error`: what the typed errors say; True for the
    transport's own errors (OSError, timeouts), which a restarted target clears."""
    if isinstance(error, (SourceError, ProtocolError)):
        return error.retryable
    return True


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
        """Open the connection and handshake; raises ConnectError (see `SourceError.retryable`)."""
        ...

    async def snapshot(self, *, with_stacks: bool = True) -> Snapshot:
        """One fresh snapshot; raises DisconnectedError when the target is gone, SourceError
        when it answered with a failure."""
        ...

    async def cancel(self, task_id: int) -> Result:
        """Ask the target to cancel a task; the Result says whether it did."""
        ...

    async def close(self) -> None:
        """Close the connection; never raises."""
        ...
