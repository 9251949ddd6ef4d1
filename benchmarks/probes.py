"""Helpers the snapshot, stall and memory benchmarks share: HTTP calls and the agent client."""

from __future__ import annotations

import http.client
import json
from typing import TYPE_CHECKING, Any

from benchmarks.servers import HOST

if TYPE_CHECKING:
    from inspector.client.agent_source import AgentSource


def http_call(method: str, port: int, path: str, timeout: float = 30.0) -> tuple[int, Any]:
    """One request; the status and the decoded JSON body (or the raw text)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Content-Length": "0"})
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
    finally:
        conn.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, body


def agent_client_unavailable() -> str | None:
    try:
        from inspector.client.agent_source import AgentSource  # noqa: F401
    except ImportError as error:
        return f"the agent client is not available ({error})"
    return None


async def connect_agent(port: int, command_timeout: float = 120.0) -> AgentSource:
    from inspector.client.agent_source import AgentSource

    source = AgentSource(HOST, port, command_timeout=command_timeout)
    await source.connect()
    return source
