"""Whose code a frame is: the application's, an installed library's, the standard library's or
the inspector's own.

Every report points at "the line to fix", and every stack folds what is not the user's code, so
the agent, `doctor`, `dump` and the UI must agree on which frames are the user's. They do by
asking this one function. Stacks often come from another process, another interpreter or another
machine (a saved snapshot from a Fedora server read on a Mac), so the answer comes from the shape
of the path alone, never from this interpreter's `sysconfig`: the same path is classified the
same way everywhere. Top level and stdlib-only, because both sides use it.

The shapes, checked in this order:

- the inspector: its own package directory here, or an installed copy's (`…/site-packages/
  inspector/…`), or a path ending in one of its subpackages (`inspector/agent/…`). Its demo app
  (`inspector/demo/`) is application code: it stands in for the user's.
- library: `site-packages`, `dist-packages`, eggs, wheels unpacked by pex, `__pypackages__`,
  console-script launchers (`.venv/bin/uvicorn`, `Scripts\\uvicorn.exe\\__main__.py`) and
  generated code (`<string>`, `<attrs generated init …>`: nothing a person can open).
- stdlib: `<frozen …>`, `…/lib/python3.11/`, `…/lib64/python3.11/` (Debian, Fedora/RHEL, pyenv,
  conda, Homebrew, macOS framework builds, Docker images, Nix), PyPy's `lib-python` and
  `lib/pypy3.10`, the zipped stdlib (`python311.zip`), Windows' `C:\\Python311\\Lib\\` and
  `DLLs\\`.
- everything else is the application: a project checkout, an editable install, a zipapp.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Final, Literal, get_args

__all__ = [
    "FRAME_KINDS",
    "FrameKind",
    "classify",
    "is_application",
    "is_inspector",
    "library_path",
    "module_name",
]

FrameKind = Literal["app", "library", "stdlib", "inspector"]
"""app: the user's code, the place to fix; library: an installed package or generated code;
stdlib: Python's own library; inspector: this tool, which never shows itself."""
FRAME_KINDS: Final[tuple[FrameKind, ...]] = get_args(FrameKind)

_SEP: Final = r"[/\\]"
_PACKAGES: Final = re.compile(
    rf"{_SEP}(?:site-packages|dist-packages|__pypackages__){_SEP}"
    rf"|[^/\\]\.(?:egg|whl){_SEP}",
    re.IGNORECASE,
)
_LAUNCHER: Final = re.compile(
    rf"{_SEP}(?:bin|Scripts){_SEP}[^/\\.]+$|\.exe{_SEP}__main__\.py$", re.IGNORECASE
)
"""Console-script launchers: the outermost frame of a server started as `uvicorn app:app`."""
_STDLIB: Final = re.compile(
    rf"{_SEP}lib(?:64)?{_SEP}(?:python|pypy)\d+(?:\.\d+)?t?{_SEP}"
    rf"|{_SEP}lib-python{_SEP}"
    rf"|{_SEP}python\d+t?\.zip{_SEP}",
    re.IGNORECASE,
)
_WINDOWS_STDLIB: Final = re.compile(r"^(?:[A-Za-z]:|\\\\)[^:]*[/\\](?:Lib|DLLs)[/\\]")
"""`C:\\Python311\\Lib\\asyncio\\tasks.py`; case-sensitive, so a project's `lib\\` stays the
project's (Python's own directories are spelled `Lib` and `DLLs`)."""
_INSPECTOR_SHAPE: Final = re.compile(
    rf"{_SEP}inspector{_SEP}(?:agent|client|diagnose|render|tui|commands){_SEP}"
    rf"|{_SEP}inspector{_SEP}(?:__init__|__main__|cli|model|codec|protocol|escape|addresses|"
    rf"registration|collector|errors|frame_kinds|durations|plurals)\.py$"
)
_INSPECTOR_DIR: Final = os.path.dirname(os.path.abspath(__file__))
_OWN_PREFIXES: Final = tuple(
    {os.path.join(_INSPECTOR_DIR, ""), os.path.join(os.path.realpath(_INSPECTOR_DIR), "")}
)
_DEMO_PREFIXES: Final = tuple(os.path.join(prefix, "demo", "") for prefix in _OWN_PREFIXES)


def _is_demo(path: str) -> bool:
    return path.startswith(_DEMO_PREFIXES) or bool(
        re.search(rf"{_SEP}inspector{_SEP}demo{_SEP}", path)
    )


@lru_cache(maxsize=16_384)
def classify(filename: str) -> FrameKind:
    """Whose code `filename` (a frame's `co_filename`, from any OS) is. Pure and cached."""
    if not filename:
        return "library"
    if filename.startswith("<"):
        return "stdlib" if filename.startswith("<frozen ") else "library"
    if (filename.startswith(_OWN_PREFIXES) or _INSPECTOR_SHAPE.search(filename)) and not _is_demo(
        filename
    ):
        return "inspector"
    if _PACKAGES.search(filename) or _LAUNCHER.search(filename):
        return "library"
    if _STDLIB.search(filename) or _WINDOWS_STDLIB.search(filename):
        return "stdlib"
    return "app"


def is_application(filename: str) -> bool:
    """True when `filename` is the user's own code: the place a person would fix."""
    return classify(filename) == "app"


def is_inspector(filename: str) -> bool:
    """True for the inspector's own code, which stacks and tracebacks leave out."""
    return classify(filename) == "inspector"


_MODULE_ROOT: Final = re.compile(
    rf"{_SEP}(?:site-packages|dist-packages|lib(?:64)?{_SEP}(?:python|pypy)\d+(?:\.\d+)?t?"
    rf"|lib-python{_SEP}\d+|python\d+t?\.zip|__pypackages__{_SEP}[\d.]+{_SEP}lib"
    rf"|(?-i:Lib|DLLs))(?={_SEP})",
    re.IGNORECASE,
)
"""Where dotted module names start; the last match wins (`lib/python3/dist-packages/`)."""


@lru_cache(maxsize=16_384)
def library_path(filename: str) -> str | None:
    """A library or stdlib file's path below its root, with forward slashes
    ("starlette/routing.py", "asyncio/tasks.py"), else None: what short locations show."""
    if classify(filename) not in ("library", "stdlib"):
        return None
    roots = list(_MODULE_ROOT.finditer(filename))
    if not roots:
        return None
    relative = filename[roots[-1].end() :].replace("\\", "/").lstrip("/")
    return relative or None


@lru_cache(maxsize=16_384)
def module_name(filename: str) -> str | None:
    """The dotted module of a library or stdlib file ("urllib3.connectionpool"), else None.

    `<frozen importlib._bootstrap>` gives "importlib._bootstrap".
    """
    if filename.startswith("<frozen ") and filename.endswith(">"):
        return filename[len("<frozen ") : -1] or None
    relative = library_path(filename)
    if relative is None:
        return None
    relative = re.sub(r"\.(?:py[cw]?|so|pyd)$", "", relative)
    parts = [part for part in relative.split("/") if part]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or None
