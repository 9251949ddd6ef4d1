"""Where the agent may listen: loopback checks, free ports, and one port slot per worker.

aiomonitor waits forever when a port it wants is taken, so the agent checks each port here
before handing it over.
Several workers of one server asking for the same port each take a numbered slot (an `flock`ed
file in the runtime directory) and listen on base port + slot.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Final

from inspector.addresses import is_loopback
from inspector.agent.errors import AgentStartError
from inspector.agent.probe import AgentConfig

MAX_SLOTS: Final = 64


def check_host(config: AgentConfig, remote_hint: str = "set allow_remote=True") -> None:
    """Refuse addresses the agent must not or cannot listen on."""
    if ":" in config.host:
        raise AgentStartError(
            f"cannot listen on {config.host}: aiomonitor's terminal server supports IPv4 only"
        )
    if not is_loopback(config.host) and not config.allow_remote:
        raise AgentStartError(
            f"refusing to listen on {config.host}: not a loopback address, and the agent has no "
            f"authentication ({remote_hint} to do it anyway)"
        )
    if not 0 <= config.port <= 65535:
        raise AgentStartError(f"port {config.port} is out of range")


def port_is_free(host: str, port: int) -> bool:
    """Whether aiomonitor could bind `port` now (tested the way it binds: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def is_listening(host: str, port: int) -> bool:
    """Whether something listens on `port` (a listener makes our bind fail)."""
    return not port_is_free(host, port)


def free_port(host: str) -> int:
    """A port nobody uses right now (the OS picks it; we close it again at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class PortSlot:
    """Base port + the first free slot: how workers of one server get one port each.

    A slot is owned by holding an exclusive `flock` on its file for the life of the agent; the
    OS releases it when the process dies, so a restarted worker takes its predecessor's slot.
    """

    def __init__(
        self, index: int, port: int, handle: int | None = None, path: Path | None = None
    ) -> None:
        self.index = index
        self.port = port
        self._handle = handle
        self._path = path

    @classmethod
    def acquire(cls, base_port: int, directory: Path | None) -> PortSlot:
        if directory is None:
            return cls(0, base_port)
        for index in range(MAX_SLOTS):
            port = base_port + index
            if port > 65535:
                break
            path = directory / f"slot-{base_port}-{index}.lock"
            handle = cls._lock(path)
            if handle is not None:
                return cls(index, port, handle, path)
        raise AgentStartError(f"no free agent slot from port {base_port} ({MAX_SLOTS} in use)")

    @staticmethod
    def _lock(path: Path) -> int | None:
        """An fd holding the lock on `path`, or None when another agent holds it."""
        for _ in range(3):
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(handle)
                return None
            try:
                # The owner unlinks the file when it lets go; a lock on an unlinked file
                # protects nothing, so check that the path still names what we locked.
                if os.stat(path).st_ino == os.fstat(handle).st_ino:
                    return handle
            except FileNotFoundError:
                pass
            os.close(handle)
        return None

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        if self._path is not None:
            try:
                self._path.unlink()  # while still locked, so nobody can lock it and lose it
            except OSError:
                pass
        try:
            os.close(handle)  # closing drops the lock
        except OSError:
            pass
