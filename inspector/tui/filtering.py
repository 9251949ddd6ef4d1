"""Provides what `/` matches: a row's text as the table shows it, and the words typed.

Textual-free, so the Tasks rows (built on the poller's thread) and every other table search the
same way: case-insensitive, every word must appear. A word like `#12` is a short task id and
must match that id whole, not `#120`.
"""

from __future__ import annotations

from collections.abc import Iterable

from inspector.escape import printable
from inspector.tui.widgets.cells import Cell


def filter_words(text: str) -> list[str]:
    """The words of a filter, lower-case; none for blank text (everything matches)."""
    return text.lower().split()


def searchable(cells: Iterable[Cell], *extra: str) -> str:
    """The lower-case text a row is found by: its cells as shown (escaped) and `extra` words,
    each followed by a space, so a whole-word match can look for "word "."""
    parts = [printable(cell if isinstance(cell, str) else cell[0]) for cell in cells]
    parts.extend(printable(word) for word in extra)
    return " ".join(parts).lower() + " "


def matches(haystack: str, words: list[str]) -> bool:
    """Every word appears in `haystack` (from `searchable`); `#n` only as a whole id."""
    for word in words:
        if word.startswith("#") and word[1:].isdigit():
            if f"{word} " not in haystack:
                return False
        elif word not in haystack:
            return False
    return True
