"""Findings as text for people: colour on a terminal, plain when piped or when NO_COLOR is set.

Plain ANSI codes, no Rich: `inspector doctor` must start fast and import nothing heavy. Findings
quote the target (task names, paths, requests, messages): every such text goes through
`printable` here, so it cannot reach the terminal as escape sequences.
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TextIO

from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import short_path
from inspector.escape import printable
from inspector.model import Frame

RESET = "\x1b[0m"
STYLES: Mapping[str, str] = {
    "critical": "\x1b[1;31m",
    "warning": "\x1b[1;33m",
    "info": "\x1b[1;36m",
    "title": "\x1b[1m",
    "location": "\x1b[32m",
    "dim": "\x1b[2m",
    "hint": "\x1b[35m",
    "ok": "\x1b[1;32m",
}
LABELS: Mapping[str, str] = {"critical": "CRITICAL", "warning": "WARNING", "info": "INFO"}
MAX_WIDTH = 100


def use_color(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Colour only for a terminal; NO_COLOR (https://no-color.org) and TERM=dumb turn it off,
    FORCE_COLOR turns it on even when piped."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    if env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, style: str) -> str:
        if not self.color or not text:
            return text
        return f"{STYLES[style]}{text}{RESET}"


def render_finding(
    finding: Finding, *, color: bool = False, width: int | None = None, cwd: str | None = None
) -> str:
    """One finding: severity and title, the line to fix, what was seen, and how to fix it."""
    paint = _Painter(color)
    width = width or _width()
    label = LABELS.get(finding.severity, printable(finding.severity.upper()))
    head = f"{paint(label, finding.severity)} {paint(printable(finding.title), 'title')}"
    tags = [printable(finding.kind)]
    if finding.count > 1:
        tags.append(f"x{finding.count}")
    if finding.worker is not None:
        tags.append(f"worker={finding.worker}")
    lines = [f"{head}  {paint('[' + ' '.join(tags) + ']', 'dim')}"]
    indent = "    "
    if finding.location is not None:
        lines.append(f"  at {paint(_where(finding.location, cwd), 'location')}")
        if finding.location.code:
            lines.append(f"{indent}{paint(printable(finding.location.code), 'dim')}")
    lines.extend(_wrap(printable(finding.detail), width, "  "))
    for frame in finding.related:
        lines.append(f"  {paint('see also ' + _where(frame, cwd), 'dim')}")
    hint_lines = _wrap(printable(finding.hint), width, "  fix: ", "       ")
    lines.extend(paint(line, "hint") for line in hint_lines)
    return "\n".join(lines)


def render_findings(
    findings: Sequence[Finding],
    *,
    color: bool = False,
    header: str | None = None,
    notes: Sequence[str] = (),
    width: int | None = None,
    cwd: str | None = None,
) -> str:
    """The whole report: an optional header, every finding, notes, and a one-line summary."""
    paint = _Painter(color)
    blocks: list[str] = []
    if header:
        blocks.append(paint(printable(header), "dim"))
    blocks.extend(render_finding(f, color=color, width=width, cwd=cwd) for f in findings)
    blocks.extend(paint(f"note: {printable(note)}", "dim") for note in notes)
    blocks.append(summary(findings, color=color))
    return "\n\n".join(blocks) + "\n"


def summary(findings: Sequence[Finding], *, color: bool = False) -> str:
    """ "2 findings: 1 critical, 1 warning" or "No problems found."."""
    paint = _Painter(color)
    if not findings:
        return paint("No problems found.", "ok")
    counts = Counter(f.severity for f in findings)
    parts = [
        paint(f"{counts[s]} {s if s != 'warning' or counts[s] == 1 else 'warnings'}", s)
        for s in ("critical", "warning", "info")
        if counts[s]
    ]
    noun = "finding" if len(findings) == 1 else "findings"
    return f"{len(findings)} {noun}: " + ", ".join(parts)


def _where(frame: Frame, cwd: str | None) -> str:
    return printable(f"{short_path(frame.file, cwd, os.getcwd())}:{frame.line} in {frame.function}")


_CODE_SPAN = re.compile(r"`[^`]{1,60}`")
_GLUE = "\u00a0"


def _wrap(text: str, width: int, first: str, rest: str | None = None) -> list[str]:
    """Wrap prose without breaking a short `code span` across lines."""
    if not text:
        return []
    glued = _CODE_SPAN.sub(lambda m: m.group(0).replace(" ", _GLUE), text)
    lines = textwrap.wrap(
        glued,
        width=width,
        initial_indent=first,
        subsequent_indent=rest if rest is not None else first,
        break_on_hyphens=False,
        break_long_words=False,
    )
    return [line.replace(_GLUE, " ") for line in lines]


def _width() -> int:
    return max(40, min(MAX_WIDTH, shutil.get_terminal_size((MAX_WIDTH, 24)).columns))
