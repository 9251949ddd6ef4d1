"""Provides the client-side history of events, so a stall or an exception is never lost.

Snapshots are state and a newer one may replace one the screen never showed; stalls,
exceptions and background jobs are events. They are accumulated here, by (pid, id), from every
snapshot the source delivers, before any snapshot can be dropped. Bounded: the oldest go first.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from inspector.model import BackgroundJob, ExceptionEvent, Snapshot, Stall

DEFAULT_LIMIT: Final = 500

T = TypeVar("T", Stall, ExceptionEvent, BackgroundJob)


@dataclass(frozen=True)
class Events:
    """Everything seen so far, oldest first."""

    stalls: tuple[Stall, ...] = ()
    exceptions: tuple[ExceptionEvent, ...] = ()
    background: tuple[BackgroundJob, ...] = ()


class _Ring(Generic[T]):
    """Keeps the latest version of each item, in first-seen order, at most `limit` of them."""

    def __init__(self, limit: int) -> None:
        self._items: dict[tuple[int, int], T] = {}
        self._limit = limit
        self.changed = False

    def merge(self, pid: int, items: tuple[T, ...]) -> None:
        for item in items:
            key = (pid, item.id)
            if self._items.get(key) != item:
                self._items[key] = item
                self.changed = True
        while len(self._items) > self._limit:
            del self._items[next(iter(self._items))]

    def values(self) -> tuple[T, ...]:
        return tuple(self._items.values())

    def replace(self, key: tuple[int, int], item: T) -> None:
        self._items[key] = item
        self.changed = True

    def items(self) -> list[tuple[tuple[int, int], T]]:
        return list(self._items.items())


class History:
    """Accumulates events across snapshots (and across reconnects to a restarted target)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._stalls: _Ring[Stall] = _Ring(limit)
        self._exceptions: _Ring[ExceptionEvent] = _Ring(limit)
        self._background: _Ring[BackgroundJob] = _Ring(limit)
        self._events = Events()

    def add(self, snapshot: Snapshot) -> Events:
        """Merge one snapshot's events and return the whole history."""
        pid = snapshot.process.pid
        self._end_vanished_stalls(pid, snapshot)
        self._stalls.merge(pid, snapshot.stalls)
        self._exceptions.merge(pid, snapshot.exceptions)
        self._background.merge(pid, snapshot.background)
        rings = (self._stalls, self._exceptions, self._background)
        if any(ring.changed for ring in rings):
            self._events = Events(
                stalls=self._stalls.values(),
                exceptions=self._exceptions.values(),
                background=self._background.values(),
            )
            for ring in rings:
                ring.changed = False
        return self._events

    def _end_vanished_stalls(self, pid: int, snapshot: Snapshot) -> None:
        """A stall we saw ongoing that the target no longer reports has ended."""
        current = {stall.id for stall in snapshot.stalls}
        for key, stall in self._stalls.items():
            if key[0] == pid and stall.ongoing and stall.id not in current:
                self._stalls.replace(key, dataclasses.replace(stall, ongoing=False))
