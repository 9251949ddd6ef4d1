"""Text from the inspected process, made safe to show on the operator's terminal.

Task names, request paths, exception messages, file names and process command lines all come
from the target, and a hostile client chooses some of them (a request path is enough). Written
to a terminal as they are, an ESC starts a sequence that can set the clipboard (OSC 52), retitle
the window or clear the screen; a bidi override reverses the text after it; a lone surrogate
cannot be encoded and crashes the print. `printable` is the one function every client passes
that text through before showing it: the dump, doctor and ps texts, the picker, every part of
the UI, and the agent's own telnet sessions for people. Top level and stdlib-only, because both
sides need it and neither may load the other.

What it escapes: every character whose Unicode category is Cc (C0 controls, DEL, C1 controls),
Cf (format characters: the bidi embeddings, overrides, isolates and marks, zero-width and
invisible characters, the BOM, tag characters), Zl and Zp (the line and paragraph separators)
or Cs (lone surrogates). Each shows as a Python-style escape, `\\x1b`, `\\u202e`, `\\ud800`,
`\\U000e0041`, so the reader sees that something is there and what it is. Backslashes are left
alone: a Windows path reads as itself, and the escaped form is for reading, not for parsing back.

Line breaks and tabs: a single-line field (a name, a table cell, a headline) shows a line break
as " ⏎ " and a tab as a space, so it never spans lines; `multiline=True`, for values the
renderer lays out on several lines (an exception's message in a detail pane), keeps "\\n" and
tabs, turns "\\r\\n" into "\\n", and escapes a lone "\\r" (it would overwrite the line).

Fast: clean text (the common case, and every ASCII name) is returned as it is after one
`str.isprintable` call in C; only text with something to escape takes the regular expression.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories shown escaped: controls, format characters, surrogates, separators."""
LINE_BREAK: Final = " ⏎ "
"""How a single-line field shows a line break of the target's text."""

_CANDIDATE: Final = re.compile(r"[^ -~]")
"""Everything but printable ASCII: the characters that may need escaping."""
_LINE_BREAKS: Final = re.compile(r"\r\n|\n")


def printable(text: str, *, multiline: bool = False) -> str:
    """`text` from the target with its controls, format characters and lone surrogates shown
    as escapes; on one line unless `multiline`. Idempotent: printable(printable(t)) == printable(t).
    """
    if text.isprintable():
        return text
    if multiline:
        return _CANDIDATE.sub(_escape_keeping_lines, text.replace("\r\n", "\n"))
    if "\n" in text:
        text = _LINE_BREAKS.sub(LINE_BREAK, text)
    return _CANDIDATE.sub(_escape_on_one_line, text)


def _escape_on_one_line(match: re.Match[str]) -> str:
    char = match.group()
    return " " if char == "\t" else _escaped(char)


def _escape_keeping_lines(match: re.Match[str]) -> str:
    char = match.group()
    return char if char in "\n\t" else _escaped(char)


def _escaped(char: str) -> str:
    if char.isprintable() or unicodedata.category(char) not in ESCAPED_CATEGORIES:
        return char  # "é", "→", a no-break space, a private-use icon: shown as they are
    if char == "\r":
        return "\\r"
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
