"""Building the agent's snapshot from its probes, and sharing the encoded frame between clients.

Building and encoding a snapshot is the agent's most expensive work, and it holds the GIL the
server needs; twenty clients polling at 10 Hz would otherwise cost twenty snapshots per tenth of
a second. So each agent's `SnapshotBuilder` keeps the newest frame of each variant (stacks or
not, a task cap, an encoding) for `SNAPSHOT_TTL` seconds. Commands run one at a time on
aiomonitor's thread, and metrics build without caching, so a plain dict suffices.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import Any, Final, Protocol

from inspector import codec, protocol
from inspector.agent.probe import AgentContext, CollectOptions, Probe
from inspector.collector import collector_paused
from inspector.model import Capability, ProcessInfo, Snapshot
from inspector.protocol import Encoding

SNAPSHOT_TTL: Final = 0.15
"""Seconds a built snapshot is served again to other clients asking for the same variant."""
SNAPSHOT_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(Snapshot))
RESERVED_FIELDS: Final = frozenset({"process", "taken_at", "health", "capabilities", "source"})
"""Snapshot fields the agent fills itself; a probe offering one is reported and ignored."""

_Variant = tuple[bool, "int | None", str]


class SnapshotParts(Protocol):
    """What a snapshot is made of: the agent's probes, context and self-description."""

    @property
    def probes(self) -> tuple[Probe, ...]: ...

    @property
    def context(self) -> AgentContext: ...

    def process_info(self) -> ProcessInfo: ...

    def capabilities(self) -> tuple[Capability, ...]: ...

    def paced_seconds(self) -> float: ...


class SnapshotBuilder:
    """One agent's snapshots: built from its probes, encoded, shared for a moment."""

    def __init__(self, parts: SnapshotParts, ttl: float = SNAPSHOT_TTL) -> None:
        self._parts = parts
        self.ttl = ttl
        self._frames: dict[_Variant, tuple[float, str]] = {}

    def shared(self, options: CollectOptions, enc: Encoding = "json") -> str:
        """The framed snapshot, shared by every client asking within `ttl` seconds."""
        key = (options.with_stacks, options.max_tasks, enc)
        now = time.monotonic()
        entry = self._frames.get(key)
        if entry is not None and 0.0 <= now - entry[0] < self.ttl:
            return entry[1]
        with collector_paused():
            text = self.encoded(options, enc)
        self._frames[key] = (time.monotonic(), text)
        return text

    def forget(self) -> None:
        """Drop the shared frames: the next client sees what an action just changed."""
        self._frames.clear()

    def encoded(self, options: CollectOptions, enc: Encoding = "json") -> str:
        """The framed snapshot; a part that cannot be encoded is dropped, not the whole one."""
        snapshot = self.build(options)
        try:
            return protocol.encode_message("snapshot", snapshot, enc)
        except (TypeError, ValueError, RecursionError) as error:
            self._parts.context.record_error(
                f"snapshot did not encode ({error!r}); dropping bad parts"
            )
        return protocol.encode_message("snapshot", self.build(options, check=True), enc)

    def build(self, options: CollectOptions, *, check: bool = False) -> Snapshot:
        """Ask every probe for its part and merge the parts into one Snapshot.

        A probe that raises, or returns something that is not a Snapshot field, is reported in
        the snapshot's health and left out; the other parts still arrive. With `check`, each
        part is test-encoded first and left out when it does not encode.
        """
        parts = self._parts
        context = parts.context
        started = time.perf_counter()
        fields: dict[str, Any] = {}
        working: list[str] = []
        for probe in parts.probes:
            name = getattr(probe, "name", type(probe).__name__)
            try:
                part = probe.collect(context, options)
            except Exception as error:
                context.record_error(f"{name}: collect failed: {error!r}")
                continue
            if not isinstance(part, Mapping):
                context.record_error(
                    f"{name}: collect returned {type(part).__name__}, not a mapping"
                )
                continue
            for key, value in part.items():
                if key not in SNAPSHOT_FIELDS or key in RESERVED_FIELDS:
                    context.record_error(f"{name}: unknown snapshot field {str(key)[:40]!r}")
                elif check and not _encodes(value):
                    context.record_error(f"{name}: its {key!r} cannot be encoded")
                else:
                    fields[key] = value
            working.append(name)
        process = parts.process_info()
        collect_seconds = time.perf_counter() - started
        return Snapshot(
            process=process,
            taken_at=context.clock(),
            health=context.health(tuple(working), collect_seconds, parts.paced_seconds()),
            capabilities=parts.capabilities(),
            **fields,
        )


def _encodes(value: Any) -> bool:
    try:
        json.dumps(codec.to_json_dict(value), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def snapshot_fields() -> frozenset[str]:
    """The Snapshot fields a probe may fill."""
    return SNAPSHOT_FIELDS - RESERVED_FIELDS
