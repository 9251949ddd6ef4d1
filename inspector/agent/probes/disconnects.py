"""When a client left: the moment uvicorn lost its connection, not when the agent noticed.

uvicorn marks a request whose client went away with `cycle.disconnected = True` and no time. An
app that never calls `receive` again never hears of it, so the agent used to read the flag at the
next snapshot and call that the moment: attached ten seconds later, it said "the client left
0.1 s ago". This wraps the HTTP protocols' `connection_lost` to note the wall-clock time on the
request cycle it ends; `RequestRecord.client_gone` reads it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Final

LEFT_AT: Final = "_inspector_client_left_at"
"""The attribute set on uvicorn's request cycle: when its connection was lost (wall clock)."""
_PROTOCOLS: Final = (
    ("uvicorn.protocols.http.h11_impl", "H11Protocol"),
    ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol"),
    ("uvicorn.protocols.http.zttp_impl", "ZttpProtocol"),
    ("uvicorn.protocols.http.zttp_h2_impl", "ZttpH2Protocol"),
)
"""uvicorn's HTTP protocols: one request cycle at a time (`cycle`), or HTTP/2's (`cycles`)."""


class DisconnectTimes:
    """The `connection_lost` wrappers, installed once per class and taken out on close."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self._report = report  # kept for failures a later uvicorn might bring
        self._patches: list[tuple[type, Callable[..., Any], Callable[..., Any]]] = []

    def install(self) -> None:
        """Wrap the protocols uvicorn has loaded (it loads the one it serves with before the
        app); another server has none, and then client_gone notes the time it notices."""
        for module_name, class_name in _PROTOCOLS:
            cls = getattr(sys.modules.get(module_name), class_name, None)
            if not isinstance(cls, type):
                continue
            original = cls.__dict__.get("connection_lost")
            if original is None or getattr(original, "__wrapped__", None) is not None:
                continue
            wrapper = _wrap(original)
            setattr(cls, "connection_lost", wrapper)  # noqa: B010 - a class known at runtime
            self._patches.append((cls, original, wrapper))

    def close(self) -> None:
        for cls, original, wrapper in reversed(self._patches):
            if cls.__dict__.get("connection_lost") is wrapper:
                setattr(cls, "connection_lost", original)  # noqa: B010
        self._patches.clear()


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    def connection_lost(self: Any, exc: Exception | None) -> None:
        cycles = [getattr(self, "cycle", None)]
        streams = getattr(self, "cycles", None)
        if isinstance(streams, dict):
            cycles.extend(streams.values())
        original(self, exc)
        now = time.time()
        for cycle in cycles:
            if cycle is not None and getattr(cycle, "disconnected", False) is True:
                try:
                    setattr(cycle, LEFT_AT, now)
                except Exception:  # a cycle that takes no attributes: noticed later instead
                    pass

    connection_lost.__wrapped__ = original  # type: ignore[attr-defined]
    connection_lost.__qualname__ = getattr(original, "__qualname__", "connection_lost")
    return connection_lost
