"""The one wording of a duration, for `doctor`, `dump`, `ps`, the UI and the agent's log lines.

A stall reads the same in the doctor's finding, the dump and the stall banner: "4 ms", "250 ms",
"2.3 s", "12 s", "2 min 5 s", "2 h 1 min", "3 d 4 h". Two units at most, each rounded from the
whole value (so 59.7 s is "1 min", never "60 s"), and a zero second unit is left out ("2 min").
Top level and stdlib-only, because both sides use it.
"""

from __future__ import annotations

import math

__all__ = ["age", "duration"]

_MINUTE = 60
_HOUR = 3600
_DAY = 86_400


def duration(seconds: float | None, *, unknown: str = "?") -> str:
    """`seconds` as a person reads them; `unknown` for None, NaN or infinity.

    A negative value (clocks of two threads a hair apart) reads as "0 ms".
    """
    if seconds is None or not math.isfinite(seconds):
        return unknown
    seconds = max(seconds, 0.0)
    if seconds < 0.000_95:
        return f"{seconds * 1000:.1f} ms" if seconds >= 0.000_05 else "0 ms"
    if seconds < 1:
        millis = round(seconds * 1000)
        if millis < 1000:
            return f"{millis} ms"
    tenths = round(seconds, 1)
    if tenths < 10:
        return f"{tenths:.1f} s"
    whole = round(seconds)
    if whole < _MINUTE:
        return f"{whole} s"
    if whole < _HOUR:
        return _two(whole, _MINUTE, "min", "s")
    minutes = round(seconds / _MINUTE)
    if minutes < 24 * 60:
        return _two(minutes, 60, "h", "min")
    hours = round(seconds / _HOUR)
    return _two(hours, 24, "d", "h")


def age(seconds: float | None, *, unknown: str = "?") -> str:
    """How old something is, in its largest unit only, counted down: "<1 s", "41 s", "5 min",
    "2 h", "3 d". For table cells: at most six characters, and it changes rarely, so live rows
    repaint less; the same units as `duration`."""
    if seconds is None or not math.isfinite(seconds):
        return unknown
    if seconds < 1:
        return "<1 s"
    for size, unit in ((_DAY, "d"), (_HOUR, "h"), (_MINUTE, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def _two(count: int, per: int, big: str, small: str) -> str:
    high, low = divmod(count, per)
    return f"{high} {big} {low} {small}" if low else f"{high} {big}"
