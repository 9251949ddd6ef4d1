"""Turn what a person typed (an address, a port, a file, a pid) into a `Source`.

Target forms::

    HOST:PORT   [IPv6]:PORT   PORT   :PORT     an agent's termui address
    path/to/snapshot.json                      a saved snapshot (an existing file)
    (nothing)                                  127.0.0.1:20101, aiomonitor's default

``--pid PID`` finds the agent of a process through its registration file, then through
`inspector.client.discovery`. An address where a plain aiomonitor answers (no agent) is read
through `inspector.client.aiomonitor_source`, with fewer facts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

from inspector.client.source import ConnectError, Source
from inspector.errors import InspectorError

if TYPE_CHECKING:
    from inspector.registration import Registration

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 20101
TARGET_FORMS: Final = "HOST:PORT, PORT, [IPv6]:PORT or a saved snapshot file"
_SERVER_WORDS: Final = ("uvicorn", "gunicorn", "hypercorn", "fastapi", "granian")


def open_source(
    target: str | None,
    pid: int | None = None,
    *,
    connect_timeout: float | None = None,
    command_timeout: float | None = None,
) -> Source:
    """The `Source` for a target or a pid; raises InspectorError with one line."""
    from inspector.client import agent_source
    from inspector.client.file_source import FileSource

    def agent(host: str, port: int) -> Source:
        source = agent_source.AgentSource(
            host,
            port,
            connect_timeout=connect_timeout or agent_source.DEFAULT_CONNECT_TIMEOUT,
            command_timeout=command_timeout or agent_source.DEFAULT_COMMAND_TIMEOUT,
        )
        return _with_plain_aiomonitor_fallback(source, host, port)

    if pid is not None:
        if target:
            raise InspectorError("give a TARGET or --pid, not both")
        return agent(*agent_address_for_pid(pid))
    if target is None or not target.strip():
        return agent(DEFAULT_HOST, DEFAULT_PORT)
    target = target.strip()
    if _names_a_file(target):
        return FileSource(target)
    return agent(*parse_address(target))


def _with_plain_aiomonitor_fallback(source: Source, host: str, port: int) -> Source:
    """Read a plain aiomonitor (tasks and stacks only) where the agent turns out to be missing."""
    try:
        from inspector.client.aiomonitor_source import with_aiomonitor_fallback
    except ImportError:
        return source
    return with_aiomonitor_fallback(source, host, port)


def parse_address(text: str, default_host: str = DEFAULT_HOST) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``PORT`` or ``:PORT`` → (host, port); InspectorError."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise InspectorError(f"invalid address {text!r}: write IPv6 as [ADDRESS]:PORT")
        return host, _port(rest[1:] if rest else "", text)
    if text.count(":") > 1:
        raise InspectorError(
            f"invalid address {text!r}: write an IPv6 address in brackets, as [ADDRESS]:PORT"
        )
    if ":" in text:
        host, _, port_text = text.partition(":")
        return host or default_host, _port(port_text, text)
    if text.isdigit():
        return default_host, _port(text, text)
    if _looks_like_path(text):
        raise InspectorError(f"no such file: {text}")
    raise InspectorError(f"invalid target {text!r}: expected {TARGET_FORMS}")


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InspectorError(f"invalid port in {whole!r}: expected a number from 1 to 65535")
    return int(text)


def _names_a_file(target: str) -> bool:
    # A bare number is a port even if a file of that name exists (write ./8000 for the file).
    if target.isdigit():
        return False
    path = Path(target).expanduser()
    if path.is_dir():
        raise InspectorError(f"{target} is a directory, not a snapshot file")
    return path.exists()


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((".json", ".snapshot"))


# --- --pid -----------------------------------------------------------------------------------


def agent_address_for_pid(pid: int) -> tuple[str, int]:
    """The agent address of process `pid`; InspectorError saying why there is none."""
    registrations = _registrations()
    for registration in registrations:
        if registration.pid == pid:
            return _reachable_host(registration.host), registration.port
    address = _discovered_address(pid)
    if address is not None:
        return _reachable_host(address[0]), address[1]
    raise ConnectError(_explain(pid, registrations))


def _registrations() -> list[Registration]:
    try:
        from inspector.registration import read_registrations
    except ImportError:
        return []
    try:
        return list(read_registrations())
    except OSError:
        return []


def _discovered_address(pid: int) -> tuple[str, int] | None:
    try:
        from inspector.client.discovery import agent_address_for_pid as discover
    except ImportError:
        return None
    try:
        return discover(pid)
    except Exception:  # discovery reads other processes; a failure there only means "unknown"
        return None


def _reachable_host(host: str) -> str:
    """An agent bound to every interface is reached on loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _explain(pid: int, registrations: list[Registration]) -> str:
    try:
        from inspector.client.discovery import explain_pid
    except ImportError:
        return _why_no_agent(pid, registrations)
    try:
        return explain_pid(pid)
    except Exception:  # reading other processes can fail in many ways; fall back to less
        return _why_no_agent(pid, registrations)


def _why_no_agent(pid: int, registrations: list[Registration]) -> str:
    import psutil

    try:
        process = psutil.Process(pid)
        command = " ".join(process.cmdline()) or process.name()
    except psutil.NoSuchProcess:
        return f"no process with pid {pid}"
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return f"process {pid} has no inspector agent (and its command line cannot be read)"
    workers = sorted((r for r in registrations if r.ppid == pid), key=lambda r: r.pid)
    if workers:
        listed = ", ".join(f"{r.pid} ({_reachable_host(r.host)}:{r.port})" for r in workers)
        return (
            f"pid {pid} is a server parent process; its workers have agents: {listed}; "
            f"use --pid {workers[0].pid}"
        )
    shown = command if len(command) <= 80 else command[:77] + "..."
    if any(word in command for word in _SERVER_WORDS):
        return (
            f"no agent in pid {pid} ({shown}); run `inspector inject {pid}` or pass --inject "
            "(or start it with `inspector run APP`)"
        )
    return f"pid {pid} ({shown}) has no inspector agent"
