"""Errors that the CLI turns into one line on stderr and an exit status."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit statuses shared by every command (`doctor` documents 0/1/2 as a contract)."""

    OK = 0
    FINDINGS = 1
    """`doctor`: something at warning or above was found."""
    ERROR = 2
    """Could not connect, bad input, bad usage."""
    COMMAND_NOT_RUNNABLE = 126
    """`run -- COMMAND`: the command exists but cannot be executed (as a shell says)."""
    COMMAND_NOT_FOUND = 127
    INTERRUPTED = 130


class InspectorError(Exception):
    """An expected failure with a message for a person; printed without a traceback."""

    def __init__(self, message: str, exit_status: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(message)
        self.exit_status = exit_status
