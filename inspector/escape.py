"""Target text made safe for a terminal: control characters shown, never obeyed."""

from __future__ import annotations

import re
from typing import Final

_UNSAFE_LINES: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2066-\u2069\ud800-\udfff]"
)


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable_lines(text: str) -> str:
    """`text` with every control character escaped except new lines and tabs."""
    return _UNSAFE_LINES.sub(_shown, text)
