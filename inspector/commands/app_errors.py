"""The traceback of an exception the app's own code raised while `inspector run` loaded it.

The fault is in the user's code, so they see where, as `uvicorn main:app` would show them; but
only their frames and what those called: the inspector's command line and importlib's machinery
above the app's first line are left out.
"""

from __future__ import annotations

import traceback


def app_traceback(error: BaseException) -> str:
    """`error` formatted as Python does, without the inspector's and importlib's frames."""
    from inspector.escape import printable
    from inspector.frame_kinds import classify, module_name

    def shown(filename: str) -> bool:
        kind = classify(filename)
        if kind == "inspector":
            return False
        return not (kind == "stdlib" and (module_name(filename) or "").startswith("importlib"))

    summary = traceback.TracebackException.from_exception(error)
    seen: set[int] = set()
    pending = [summary]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = traceback.StackSummary.from_list(
            [frame for frame in current.stack if shown(frame.filename)]
        )
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return printable("".join(summary.format()), multiline=True)
