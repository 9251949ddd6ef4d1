"""Waits inside well-known client libraries, said in the library's terms.

A request waiting for an upstream's answer through httpx ends in anyio's socket read; through
aiohttp in a bare Future. "Event not set" or "Future pending" sends the user looking for an
Event; "the response of an HTTP request to api.example.com:443 (httpx)" says what
they are waiting on. The innermost frames of the wait are matched, by code object, against the
libraries' functions that read a response; only modules the app has imported are looked at.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from inspector.agent.known_code import KnownCode
from inspector.model import WaitInfo

DEPTH: Final = 8
"""Innermost frames of a wait searched for a library's reading function."""


def _httpx_response(frame: types.FrameType) -> str:
    origin = getattr(frame.f_locals.get("self"), "_origin", None)
    target = f" to {_origin_text(origin)}" if origin is not None else ""
    return f"the response of an HTTP request{target} (httpx)"


def _origin_text(origin: Any) -> str:
    try:
        host = origin.host.decode("ascii", "replace")
        return f"{host}:{origin.port}"
    except Exception:
        return "the upstream"


def _aiohttp_response(frame: types.FrameType) -> str:
    url = getattr(frame.f_locals.get("self"), "url", None)
    host = getattr(url, "host", None)
    port = getattr(url, "port", None)
    target = f" to {host}:{port}" if isinstance(host, str) else ""
    return f"the response of an HTTP request{target} (aiohttp)"


def _aiohttp_body(frame: types.FrameType) -> str:
    return "the body of an HTTP response (aiohttp)"


_SPECS: Final[tuple[tuple[str, str, Callable[[types.FrameType], str]], ...]] = (
    ("httpcore._async.http11", "AsyncHTTP11Connection._receive_event", _httpx_response),
    ("aiohttp.client_reqrep", "ClientResponse.start", _aiohttp_response),
    ("aiohttp.streams", "StreamReader._wait", _aiohttp_body),
)


_table: Final = KnownCode(_SPECS)


def refresh_known() -> None:
    """Look up the reading functions of client libraries imported since the last collect."""
    _table.fresh()


def in_library_terms(frames: list[types.FrameType], info: WaitInfo | None) -> WaitInfo | None:
    """`info` with the library's words when the wait is inside a known reading function."""
    if info is None or info.kind not in ("event", "stream", "future", "unknown"):
        return None
    known = _table.by_id
    if not known:
        return None
    for index in range(len(frames) - 1, max(-1, len(frames) - 1 - DEPTH), -1):
        words = known.get(id(frames[index].f_code))
        if words is not None:
            try:
                return replace(info, kind="stream", description=words(frames[index]))
            except Exception:
                return None
    return None
