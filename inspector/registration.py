"""Registration files: how a running agent tells local clients where it listens.

Each agent process writes one small JSON file, named by its pid, in a per-user runtime
directory; clients (`inspector ps`, `attach --pid`) read them before falling back to guessing
from process lists. The directory is private to the user (0700) and every file is 0600, because a
registration names a port that can cancel tasks in the server.

Standard library only: the agent imports this module inside someone else's server.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Final

ENV_RUNTIME_DIR: Final = "INSPECTOR_RUNTIME_DIR"
"""Overrides the runtime directory (tests point it at a temporary directory)."""

DIR_NAME: Final = "uvicorn-inspector"
SUFFIX: Final = ".json"
MAX_FILE_BYTES: Final = 64 * 1024
"""A registration is a few hundred bytes; anything much larger is not ours."""


class RegistrationError(OSError):
    """The runtime directory is unusable (not ours, a symlink, not a directory)."""


@dataclass(frozen=True)
class Registration:
    """One agent process: where its termui listens and what it serves."""

    pid: int
    ppid: int
    host: str
    port: int
    webui_port: int | None = None
    app: str | None = None
    python: str = ""
    uvicorn: str | None = None
    agent_version: str = ""
    started_at: float = 0.0
    argv: tuple[str, ...] = field(default_factory=tuple)
    worker: int | None = None
    """Index of this worker among `--workers N`, when known."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def runtime_dir(create: bool = True) -> Path:
    """The per-user directory that holds registration and slot-lock files.

    `$INSPECTOR_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/uvicorn-inspector`, else
    `/tmp/uvicorn-inspector-$UID`. With `create`, the directory is made 0700 and checked to be
    ours; a directory planted by another user (possible under /tmp) raises RegistrationError.
    """
    override = os.environ.get(ENV_RUNTIME_DIR)
    if override:
        path = Path(override)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / DIR_NAME
    else:
        path = Path(tempfile.gettempdir()) / f"{DIR_NAME}-{os.getuid()}"
    if create:
        _ensure_private_dir(path)
    return path


def _ensure_private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise RegistrationError(f"{path} exists and is not a directory") from None
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise RegistrationError(f"{path} is not a directory")
    if info.st_uid != os.getuid():
        raise RegistrationError(f"{path} belongs to another user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


def registration_path(pid: int, directory: Path | None = None) -> Path:
    return (directory or runtime_dir(create=False)) / f"{pid}{SUFFIX}"


def write_registration(registration: Registration) -> Path:
    """Write (or replace) the file for `registration.pid`, atomically, mode 0600."""
    directory = runtime_dir()
    path = registration_path(registration.pid, directory)
    data = json.dumps(asdict(registration), separators=(",", ":"), ensure_ascii=True)
    # Write beside the target and rename, so a reader never sees half a file.
    fd, temp_name = tempfile.mkstemp(prefix=f".{registration.pid}-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(data)
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise
    return path


def remove_registration(pid: int) -> None:
    """Remove the file for `pid`; a missing file or directory is not an error."""
    try:
        registration_path(pid).unlink()
    except FileNotFoundError:
        pass


def read_registrations(directory: Path | None = None) -> list[Registration]:
    """Every live agent's registration, oldest first (from `runtime_dir()` by default).

    Corrupt or foreign files are skipped; files left by processes that no longer exist (killed
    with SIGKILL) are skipped and removed.
    """
    if directory is None:
        directory = runtime_dir(create=False)
    try:
        paths = sorted(directory.glob(f"*{SUFFIX}"))
    except OSError:
        return []
    found: list[Registration] = []
    for path in paths:
        registration = _read_one(path)
        if registration is None:
            continue
        if not _process_exists(registration.pid):
            try:
                path.unlink()
            except OSError:
                pass
            continue
        found.append(registration)
    found.sort(key=lambda r: (r.started_at, r.pid))
    return found


def _read_one(path: Path) -> Registration | None:
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return _from_dict(data)
    except (OSError, ValueError, TypeError):
        return None


def _from_dict(data: Any) -> Registration | None:
    if not isinstance(data, dict):
        return None
    known = {f.name for f in fields(Registration)}
    values = {key: value for key, value in data.items() if key in known}
    if not all(_is_int(values.get(key)) for key in ("pid", "ppid", "port")):
        return None
    if not isinstance(values.get("host"), str):
        return None
    for key in ("webui_port", "worker"):
        if values.get(key) is not None and not _is_int(values[key]):
            return None
    for key in ("app", "uvicorn"):
        if values.get(key) is not None and not isinstance(values[key], str):
            return None
    for key in ("python", "agent_version"):
        if key in values and not isinstance(values[key], str):
            return None
    started = values.get("started_at", 0.0)
    if isinstance(started, bool) or not isinstance(started, (int, float)):
        return None
    values["started_at"] = float(started)
    argv = values.get("argv", [])
    if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
        return None
    values["argv"] = tuple(argv)
    return Registration(**values)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _process_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OSError:
        return False
    return True
