"""Counted nouns, for every text a person reads: "1 stall", "2 stalls", "1,204 tasks".

`doctor`, `dump`, the UI and the agent's wait descriptions all count things, and a count with
the wrong noun ("1 stalls") reads as a bug. Top level and stdlib-only, because both sides use it.
"""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, word: str, many: str | None = None) -> str:
    """`count` and `word`, or `many` (default: `word` + "s") for any count but one."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"
