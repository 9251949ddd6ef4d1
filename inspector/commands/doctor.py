"""`inspector doctor`: say what is wrong with a running server, with the file:line to fix.

Headless and scriptable: text for people, `--json` for programs, and an exit status CI can use
(0 nothing at warning or above, 1 something is, 2 could not connect or bad usage).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from inspector.commands.target_args import add_inject_argument, add_target_arguments
from inspector.errors import ExitStatus, InspectorError
from inspector.escape import printable

if TYPE_CHECKING:
    from inspector.client.source import Source
    from inspector.diagnose.findings import Finding
    from inspector.model import Snapshot

DESCRIPTION = """\
Take a snapshot of a running server (or read a saved one), run every check on it and print
what is wrong, worst first, each with the line of your code to fix and how to fix it.

exit status: 0 nothing at warning or above, 1 findings at warning or above,
             2 could not connect, bad input or bad usage
"""

EPILOG = """\
examples:
  inspector doctor                      the agent at 127.0.0.1:20101
  inspector doctor 127.0.0.1:20111      another agent
  inspector doctor --pid 4242           a server by pid (every worker of a --workers parent)
  inspector doctor --pid 4242 --inject  the same for a server started without the agent
  inspector doctor snapshot.json        a snapshot saved with `inspector dump`
  inspector doctor --json | jq .        {"findings": [...]} for scripts
  inspector doctor --watch 60           keep looking for a minute, print each new finding
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="say what is wrong, with the file:line to fix (exit 1 if anything is)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_arguments(
        parser, pid_help="the server's pid; a --workers parent means all its workers"
    )
    add_inject_argument(parser)
    parser.add_argument("--json", action="store_true", help='print {"findings": [...]} as JSON')
    parser.add_argument(
        "--stuck-after",
        metavar="SECONDS",
        default="5",
        help="a request or task waiting longer than this counts as stuck (default 5)",
    )
    parser.add_argument(
        "--watch",
        metavar="SECONDS",
        help="keep polling this long and print each new finding as it appears",
    )
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        default="1",
        help="seconds between polls with --watch (default 1)",
    )
    parser.set_defaults(handler=handle)


@dataclass(frozen=True)
class Options:
    target: str | None
    pid: int | None
    inject: bool
    as_json: bool
    stuck_after: float
    watch: float | None
    interval: float


@dataclass
class Outcome:
    """The worst exit status seen so far; survives Ctrl-C during --watch."""

    status: ExitStatus = ExitStatus.OK
    seen: dict[tuple[object, ...], Finding] = field(default_factory=dict)

    def record(self, findings: Iterable[Finding]) -> None:
        if any(f.severity in ("critical", "warning") for f in findings):
            self.status = ExitStatus.FINDINGS


def handle(args: argparse.Namespace) -> int:
    options = Options(
        target=args.target,
        pid=args.pid,
        inject=args.inject,
        as_json=args.json,
        stuck_after=_seconds(args.stuck_after, "--stuck-after"),
        watch=_seconds(args.watch, "--watch") if args.watch is not None else None,
        interval=_seconds(args.interval, "--interval"),
    )
    outcome = Outcome()
    try:
        asyncio.run(_doctor(options, outcome, sys.stdout))
    except KeyboardInterrupt:
        if options.watch is None:
            raise
    return int(outcome.status)


def _seconds(text: str, flag: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InspectorError(f"{flag} takes a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InspectorError(f"{flag} must be a positive number of seconds, not {text!r}")
    return value


# --- sources ---------------------------------------------------------------------------------


@dataclass
class Attached:
    """One source, and the worker pid its findings are labelled with (None: a single server)."""

    source: Source
    worker: int | None = None


def _open_sources(target: str | None, pid: int | None, inject: bool) -> list[Attached]:
    from inspector.client.target import open_source
    from inspector.commands.attach_inject import open_or_inject

    if pid is not None and target is None:
        workers = _agent_workers(pid)
        if len(workers) > 1:
            return [Attached(open_source(address, None), worker) for worker, address in workers]
    return [Attached(open_or_inject(target, pid, inject=inject))]


def _agent_workers(pid: int) -> list[tuple[int, str]]:
    """(pid, agent address) of each worker of a `--workers N` parent that runs an agent."""
    try:
        from inspector.client import discovery
    except ImportError:
        return []
    try:
        workers = discovery.workers_of(pid)
    except Exception:  # noqa: BLE001 - discovery is a convenience; open_source reports errors
        return []
    return [
        (worker.pid, worker.agent_address)
        for worker in workers
        if worker.pid != pid and worker.agent_address is not None
    ]


async def _connect_all(attached: list[Attached], notes: list[str]) -> list[Attached]:
    """Connect every source; a worker that fails is a note, all failing is the error."""
    connected: list[Attached] = []
    first_error: InspectorError | None = None
    for item in attached:
        try:
            await item.source.connect()
        except InspectorError as error:
            if len(attached) == 1:
                raise
            first_error = first_error or error
            notes.append(f"worker {item.worker}: {error}")
            await item.source.close()
            continue
        connected.append(item)
    if not connected and first_error is not None:
        raise first_error
    return connected


# --- the run ---------------------------------------------------------------------------------


async def _doctor(options: Options, outcome: Outcome, out: TextIO) -> None:
    notes: list[str] = []
    attached = await _connect_all(_open_sources(options.target, options.pid, options.inject), notes)
    try:
        live = all(item.source.live for item in attached)
        if options.watch is not None and not live:
            print(
                f"inspector: {printable(attached[0].source.address)} is a saved snapshot: "
                "nothing to watch, diagnosing it once",
                file=sys.stderr,
            )
        if options.watch is None or not live:
            snapshots = [(item, await item.source.snapshot()) for item in attached]
            if live:
                snapshots = await _confirm_suspects(attached, snapshots, options.stuck_after)
            findings = _diagnose_all(snapshots, options.stuck_after)
            outcome.record(findings)
            notes.extend(_capability_notes(s for _, s in snapshots))
            _print_once(out, options, attached, snapshots, findings, notes)
        else:
            await _watch(out, options, attached, outcome, notes)
    finally:
        for item in attached:
            await item.source.close()


async def _confirm_suspects(
    attached: Sequence[Attached],
    snapshots: list[tuple[Attached, Snapshot]],
    stuck_after: float,
) -> list[tuple[Attached, Snapshot]]:
    """Look again, once, when tasks seem stuck but the agent has not known them long enough."""
    from inspector.diagnose import confirmation_delay

    delay = max(confirmation_delay(s, stuck_after=stuck_after) for _, s in snapshots)
    if delay <= 0:
        return snapshots
    print(
        f"inspector: some tasks look stuck; watching them {delay:.1f} s to be sure "
        "(--stuck-after sets how long)",
        file=sys.stderr,
        flush=True,
    )
    await asyncio.sleep(delay)
    return [(item, await item.source.snapshot()) for item in attached]


def _diagnose_all(
    snapshots: Sequence[tuple[Attached, Snapshot]], stuck_after: float
) -> list[Finding]:
    from inspector.diagnose import diagnose, sort_findings

    findings: list[Finding] = []
    for item, snapshot in snapshots:
        for finding in diagnose(snapshot, stuck_after=stuck_after):
            if item.worker is not None:
                finding = dataclasses.replace(finding, worker=item.worker)
            findings.append(finding)
    return sort_findings(findings)


def identity(finding: Finding) -> tuple[object, ...]:
    """What makes a finding "the same one" across polls: kind, place, request, worker.

    Not the title: it carries counts and durations that grow from one poll to the next.
    """
    location = finding.location
    where = (location.file, location.line) if location is not None else None
    return (finding.kind, where, finding.request, finding.worker)


async def _watch(
    out: TextIO, options: Options, attached: list[Attached], outcome: Outcome, notes: list[str]
) -> None:
    from inspector.render.findings import render_finding, summary, use_color

    assert options.watch is not None
    color = use_color(out) and not options.as_json
    deadline = time.monotonic() + options.watch
    if not options.as_json:
        targets = printable(", ".join(item.source.address for item in attached))
        _emit(out, f"Watching {targets} for {options.watch:g} s; new findings appear below.\n")
        for note in notes:
            _emit(out, f"note: {printable(note)}\n")
    while True:
        snapshots = [(item, await item.source.snapshot()) for item in attached]
        new = []
        for finding in _diagnose_all(snapshots, options.stuck_after):
            key = identity(finding)
            if key not in outcome.seen:
                outcome.seen[key] = finding
                new.append(finding)
        outcome.record(new)
        if new and options.as_json:
            document = _document(attached, snapshots, new)
            _emit(out, json.dumps(document, ensure_ascii=True) + "\n")
        elif new:
            stamp = time.strftime("%H:%M:%S", time.localtime(snapshots[0][1].taken_at))
            for finding in new:
                _emit(out, f"[{stamp}] {render_finding(finding, color=color)}\n\n")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        await asyncio.sleep(min(options.interval, remaining))
    if not options.as_json:
        _emit(
            out,
            f"Watched {options.watch:g} s. {summary(list(outcome.seen.values()), color=color)}\n",
        )


def _emit(out: TextIO, text: str) -> None:
    if isinstance(out, io.TextIOWrapper) and out.errors == "strict":
        # A terminal that cannot show "·" or "—" (LANG=C, a latin-1 console) gets "\xb7",
        # not a traceback halfway through the report.
        out.reconfigure(errors="backslashreplace")
    out.write(text)
    out.flush()


def _document(
    attached: Sequence[Attached],
    snapshots: Sequence[tuple[Attached, Snapshot]],
    findings: Sequence[Finding],
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "target": ", ".join(item.source.address for item in attached),
        "taken_at": max((s.taken_at for _, s in snapshots), default=None),
        "findings": [finding.to_json_dict() for finding in findings],
    }
    if any(item.worker is not None for item in attached):
        document["workers"] = [item.worker for item in attached]
    return document


def _print_once(
    out: TextIO,
    options: Options,
    attached: Sequence[Attached],
    snapshots: Sequence[tuple[Attached, Snapshot]],
    findings: Sequence[Finding],
    notes: Sequence[str],
) -> None:
    if options.as_json:
        _emit(
            out,
            json.dumps(_document(attached, snapshots, findings), ensure_ascii=True, indent=1)
            + "\n",
        )
        return
    from inspector.render.findings import render_findings, use_color

    cwd = snapshots[0][1].process.cwd if len(snapshots) == 1 else None
    _emit(
        out,
        render_findings(
            findings,
            color=use_color(out),
            header=_header(snapshots),
            notes=notes,
            cwd=cwd,
        ),
    )


def _header(snapshots: Sequence[tuple[Attached, Snapshot]]) -> str:
    parts = []
    for item, snapshot in snapshots:
        process = snapshot.process
        app = f" {process.app}" if process.app else ""
        stamp = time.strftime("%H:%M:%S", time.localtime(snapshot.taken_at))
        worker = "worker " if item.worker is not None else ""
        parts.append(f"{item.source.address}: {worker}pid {process.pid}{app}, snapshot at {stamp}")
    return "inspector doctor — " + "; ".join(parts)


def _capability_notes(snapshots: Iterable[Snapshot]) -> list[str]:
    from inspector.diagnose import unchecked, unknown_starts

    notes = []
    for snapshot in snapshots:
        missing = unchecked(snapshot)
        if missing is not None:
            notes.append(
                f"pid {snapshot.process.pid}: {missing}; the checks that need them found "
                "nothing to look at"
            )
        older = unknown_starts(snapshot)
        if older is not None:
            notes.append(f"pid {snapshot.process.pid}: {older}")
        if snapshot.health.errors:
            notes.append(
                f"pid {snapshot.process.pid}: the agent reported {snapshot.health.errors} errors "
                "of its own; some facts may be missing"
            )
    return list(dict.fromkeys(notes))
