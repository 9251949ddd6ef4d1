"""A command run in a pseudo-terminal of its own, as a person at a terminal would run it: what
it writes is read until a text shows up, what a person types is written to it; `stop()` ends
its whole process group."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Sequence
from pathlib import Path

from tests.helpers.processes import stop_process_group

_ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[A-Za-z~]|\x1b[()][A-Z0-9]|\x1b[=>]|\x1b\][^\x07]*\x07")


class Terminal:
    """`argv` on a 100x30 pseudo-terminal (stdin, stdout and stderr)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        try:
            self.process = subprocess.Popen(
                list(argv),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env={**env, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"},
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        self.raw = ""

    @property
    def text(self) -> str:
        """What was written so far, escape sequences taken out."""
        return _ANSI.sub("", self.raw)

    def wait_for(self, pattern: str, timeout: float = 15.0) -> None:
        """Read until `pattern` (a regular expression) is in the text; AssertionError after
        `timeout` seconds or when the command exits without writing it."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)) and self.process.poll() is not None:
                raise AssertionError(
                    f"{pattern!r} not written within {timeout} s: {self.text[-2000:]!r}"
                )

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the other side is closed: the command exited
            return False
        self.raw += data.decode("utf-8", "replace")
        return bool(data)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def exit_status(self, timeout: float = 15.0) -> int:
        """The command's exit status, reading what it writes meanwhile (a full terminal
        buffer would block it)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        self._read(0)
        status = self.process.poll()
        if status is None:
            raise AssertionError(f"still running after {timeout} s: {self.text[-2000:]!r}")
        return status

    def stop(self) -> None:
        stop_process_group(self.process)
        try:
            os.close(self.master)
        except OSError:
            pass
