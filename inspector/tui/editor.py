"""Provides the command line that opens a file at a line in the user's editor (`e`).

Textual-free: which editor ($VISUAL, then $EDITOR, as git and less choose) and how it is told a
line differ by editor, and that is a table, tested on its own. The app suspends itself around
the command (`InspectorApp.action_open_in_editor`).
"""

from __future__ import annotations

import ntpath
import os
import shlex
from collections.abc import Mapping
from typing import Final

PLUS_LINE: Final = frozenset(
    {
        "vi", "vim", "nvim", "gvim", "mvim", "view", "nano", "pico", "rnano", "emacs",
        "emacsclient", "micro", "kak", "joe", "jed", "ne", "mg", "ed", "vis", "gedit", "mousepad",
        "pluma", "xed", "kwrite", "geany", "bbedit",
    }
)  # fmt: skip
"""Editors that take `+LINE FILE` (vi's form, which most terminal editors copied)."""
GOTO_FLAG: Final = frozenset(
    {"code", "code-insiders", "codium", "vscodium", "cursor", "windsurf", "positron"}
)
"""VS Code and its forks: `-g FILE:LINE`."""
FILE_COLON_LINE: Final = frozenset({"subl", "sublime_text", "zed", "hx", "helix", "lapce"})
"""Editors that read `FILE:LINE` as one argument."""
LINE_FLAG: Final = {
    "mate": "--line",
    "kate": "--line",
    "idea": "--line",
    "pycharm": "--line",
    "charm": "--line",
    "webstorm": "--line",
}
"""Editors that take the line as an option before the file (`--line N FILE`)."""


class EditorError(ValueError):
    """The editor setting cannot be run as it is written (say, an unclosed quote)."""


def configured_editor(environ: Mapping[str, str]) -> str | None:
    """The editor the user chose: $VISUAL, else $EDITOR; None when neither is set."""
    for name in ("VISUAL", "EDITOR"):
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def editor_name(program: str) -> str:
    """ "/usr/bin/nvim" → "nvim", "C:\\Tools\\Code.exe" → "code": what the tables are keyed by."""
    name = ntpath.basename(program.replace("/", "\\")).lower()
    for suffix in (".exe", ".cmd", ".bat"):
        name = name.removesuffix(suffix)
    return name


def split_setting(editor: str, *, posix: bool = os.name != "nt") -> list[str]:
    """The setting as words, as a shell would split it; on Windows backslashes are path
    separators, not escapes, and double quotes group."""
    if posix:
        return shlex.split(editor)
    return [word.strip('"') for word in shlex.split(editor, posix=False)]


def editor_command(
    editor: str, file: str, line: int, *, posix: bool = os.name != "nt"
) -> list[str]:
    """The argv that opens `file` at `line` in `editor` (a setting like "code --wait").

    An editor not in the tables gets the file alone: opened at its top rather than given an
    option it might read as a file name.
    """
    try:
        argv = split_setting(editor, posix=posix)
    except ValueError as error:
        raise EditorError(f"cannot read the editor setting {editor!r}: {error}") from None
    if not argv:
        raise EditorError("the editor setting is empty")
    name = editor_name(argv[0])
    line = max(1, line)
    if name in PLUS_LINE:
        return [*argv, f"+{line}", file]
    if name in GOTO_FLAG:
        return [*argv, "-g", f"{file}:{line}"]
    if name in FILE_COLON_LINE:
        return [*argv, f"{file}:{line}"]
    flag = LINE_FLAG.get(name)
    if flag is not None:
        return [*argv, flag, str(line), file]
    return [*argv, file]


def open_command(
    file: str, line: int, environ: Mapping[str, str], *, cwd: str | None = None
) -> list[str]:
    """The argv for `e` on `file:line`, or EditorError with the one line to tell the user.

    A relative `file` is the target's: it is read from the target's working directory `cwd`.
    """
    editor = configured_editor(environ)
    if editor is None:
        raise EditorError("Set $VISUAL or $EDITOR to open source lines in your editor.")
    if cwd and not os.path.isabs(file):
        file = os.path.join(cwd, file)
    if not os.path.isfile(file):
        raise EditorError(f"{file} is not on this machine (the target runs elsewhere?).")
    return editor_command(editor, file, line)
