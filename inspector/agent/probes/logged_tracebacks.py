"""The server's logged tracebacks without the inspector's frames.

An exception that escapes the app passes through the inspector's request middleware on its way
to uvicorn, which logs it ("Exception in ASGI application") with a traceback that names the
middleware in every entry. A filter on uvicorn's error logger gives the record a copy of the
traceback without those entries; the exception itself is left as it is.
"""

from __future__ import annotations

import logging
import types
from typing import Final

from inspector.agent.frames import is_own_code

SERVER_LOGGERS: Final = ("uvicorn.error",)
"""Where uvicorn logs the exceptions that escape the app (gunicorn's uvicorn workers too)."""


def without_own_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """A copy of traceback `tb` without the inspector's entries; `tb` itself when it has none."""
    entries: list[types.TracebackType] = []
    own = False
    current = tb
    while current is not None:
        if is_own_code(current.tb_frame.f_code):
            own = True
        else:
            entries.append(current)
        current = current.tb_next
    if not own:
        return tb
    rebuilt: types.TracebackType | None = None
    for entry in reversed(entries):
        rebuilt = types.TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rebuilt


class OwnFramesFilter(logging.Filter):
    """Leaves every record in; gives one that carries an exception a traceback without ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        if info and info[2] is not None:
            try:
                record.exc_info = (info[0], info[1], without_own_frames(info[2]))
            except Exception:  # the record is logged as it came
                pass
        return True


class LoggedTracebacks:
    """The filter on the server's loggers, added at install and taken off at close."""

    def __init__(self) -> None:
        self._filter = OwnFramesFilter()

    def install(self) -> None:
        for name in SERVER_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)

    def close(self) -> None:
        for name in SERVER_LOGGERS:
            logging.getLogger(name).removeFilter(self._filter)
