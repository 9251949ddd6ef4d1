"""Provides the cell types LiveTable renders (no Textual here: rows are built off the UI thread)."""

from __future__ import annotations

from typing import Literal, Union

Tone = Literal["error", "warning", "success", "muted", "accent", "bold"]
Cell = Union[str, tuple[str, Tone]]  # noqa: UP007 - a runtime alias on 3.10
"""A cell's text, optionally with a tone that maps to a theme colour."""
Row = tuple[Cell, ...]
TONES: tuple[Tone, ...] = ("error", "warning", "success", "muted", "accent", "bold")
