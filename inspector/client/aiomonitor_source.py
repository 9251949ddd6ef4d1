"""A Source for a stock aiomonitor that runs without the inspector agent.

Plenty of servers already start aiomonitor. Without the agent there is no JSON channel, so this
source types aiomonitor's own commands and reads the tables and tracebacks it prints for a
person: ``ps`` (live tasks), ``where ID`` (a task's await chain, and in hook mode the line that
created it), ``stacktrace`` (the loop thread's stack: what is running right now),
``ps-terminated`` / ``where-terminated`` (finished tasks with their exception; only recorded when
the monitor runs with ``hook_task_factory=True``) and ``cancel ID``.

What it cannot give: requests, stalls, background jobs, the threadpool and unseen exceptions
exist only in the agent. One ``where`` costs one round trip, so each snapshot asks for at most
`MAX_STACKS` stacks within `STACK_BUDGET` seconds, tasks not yet seen first, and reuses the
stacks of earlier snapshots for the rest: with many tasks, stacks fill in over a few snapshots.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from inspector.addresses import is_loopback
from inspector.client.source import ConnectError, DisconnectedError, Source
from inspector.model import Frame, ProcessInfo, Snapshot, TaskInfo, TaskState, WaitInfo
from inspector.protocol import PROTOCOL_VERSION, Hello, PlainAiomonitorError, Result

CONNECT_TIMEOUT: Final = 5.0
"""aiomonitor sleeps 0.3 s before its first prompt; a loaded machine needs more."""
COMMAND_TIMEOUT: Final = 10.0
CANCEL_TIMEOUT: Final = 5.0
"""`cancel` waits for the task to finish on the app loop, which a blocked loop never does."""
MAX_STACKS: Final = 100
STACK_BUDGET: Final = 1.0
MAX_TERMINATED_DETAILS: Final = 50
"""Finished tasks whose outcome (`where-terminated`) is read per snapshot; answers are cached."""
CAPABILITIES: Final = ("tasks", "stacks", "cancel")
AGENT_VERSION: Final = "aiomonitor (no inspector agent)"

DEFAULT_PROMPT: Final = "monitor >>> "
PROMPT_END: Final = ">>> "
PROMPT_ON: Final = "\x1b[?2004h"
"""prompt_toolkit turns bracketed paste on when it shows a prompt ..."""
PROMPT_OFF: Final = "\x1b[?2004l"
"""... and off when a line was accepted: a command's output sits between the two."""

_ANSI: Final = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_FRAME_LINE: Final = re.compile(
    r'^\s*File "(?P<file>.*)", line (?P<line>\d+), in (?P<function>.*)$'
)
_SINCE: Final = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<mo>\d+)m)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?P<mi>\d+):(?P<s>\d+)(?P<frac>\.\d+)?$"
)
_TERMINATED_HEADER: Final = re.compile(
    r"^Stack of <TerminatedTask name=(?P<name>.*?) coro=(?P<coro>\S*) ?(?P<status>.*)>"
    r" \(most recent call last\)$"
)
_PID_LINE: Final = re.compile(r"Sent signal to SIG_DFL PID (\d+)")
_CANCEL_OK: Final = re.compile(r"Cancelled task (\d+)")
_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)
_FAIL_MARK: Final = "\u2717 "
_WRAPPER_FRAMES: Final = frozenset({("monitor.py", "_coro_wrapper")})
"""aiomonitor's hook mode runs every task inside this wrapper; it is not the app's code."""


# --- reading what aiomonitor prints ----------------------------------------------------------


def clean_terminal_text(text: str) -> str:
    """Terminal output as plain lines: escape sequences and carriage returns removed."""
    text = _ANSI.sub("", text)
    return text.replace("\r\n", "\n").replace("\r", "")


@dataclass(frozen=True)
class TableRow:
    """One row of the `ps` table."""

    task_id: int
    state: str
    name: str
    coro: str
    created_location: str
    since: str


@dataclass(frozen=True)
class TerminatedRow:
    """One row of the `ps-terminated` table."""

    trace_id: str
    name: str
    coro: str
    started_since: str
    terminated_since: str


@dataclass(frozen=True)
class WhereAnswer:
    """What `where ID` printed: the await chain and, in hook mode, the creating frame."""

    stack: tuple[Frame, ...]
    created_at: Frame | None = None
    missing: bool = False
    """aiomonitor answered "No task ID": the task finished in the meantime."""


@dataclass(frozen=True)
class TerminatedAnswer:
    """What `where-terminated TRACE_ID` printed: how the task ended, where it raised."""

    state: TaskState
    exception: str | None
    stack: tuple[Frame, ...]


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of a terminaltables AsciiTable without inner column borders.

    Cells are left-aligned and padded to the column width, so each column starts where its
    header starts; a name with spaces stays whole.
    """
    lines = [line.rstrip() for line in clean_terminal_text(text).split("\n")]
    header_index = next(
        (
            i
            for i, line in enumerate(lines)
            if line.startswith("| ") and i > 0 and lines[i - 1].startswith("+-")
        ),
        None,
    )
    if header_index is None:
        return []
    header = lines[header_index]
    names = re.findall(r"\S+(?: \S+)*", header.strip("|"))
    starts: list[int] = []
    cursor = 1
    for name in names:
        position = header.index(name, cursor)
        starts.append(position)
        cursor = position + len(name)
    rows: list[dict[str, str]] = []
    for line in lines[header_index + 2 :]:
        if line.startswith("+-"):
            break
        if not line.startswith("|"):
            continue
        body_end = len(line) - 1 if line.endswith("|") else len(line)
        cells = {}
        for index, name in enumerate(names):
            end = starts[index + 1] if index + 1 < len(starts) else body_end
            cells[name] = line[starts[index] : end].strip()
        rows.append(cells)
    return rows


def parse_task_table(text: str) -> list[TableRow]:
    rows = []
    for cells in parse_table(text):
        task_id = cells.get("Task ID", "")
        if not task_id.isdigit():
            continue  # a continuation line of a name with a newline in it
        rows.append(
            TableRow(
                task_id=int(task_id),
                state=cells.get("State", ""),
                name=cells.get("Name", ""),
                coro=cells.get("Coroutine", ""),
                created_location=cells.get("Created Location", "-"),
                since=cells.get("Since", "-"),
            )
        )
    return rows


def parse_terminated_table(text: str) -> list[TerminatedRow]:
    rows = []
    for cells in parse_table(text):
        trace_id = cells.get("Trace ID", "")
        if not re.fullmatch(r"[A-Z2-7]+", trace_id):
            continue
        rows.append(
            TerminatedRow(
                trace_id=trace_id,
                name=cells.get("Name", ""),
                coro=cells.get("Coro", ""),
                started_since=cells.get("Since Started", "-"),
                terminated_since=cells.get("Since Terminated", "-"),
            )
        )
    return rows


def parse_frames(text: str) -> tuple[Frame, ...]:
    """Frames from `traceback` output (``File "x", line N, in f`` + the source line)."""
    frames: list[Frame] = []
    lines = clean_terminal_text(text).split("\n")
    for index, line in enumerate(lines):
        match = _FRAME_LINE.match(line)
        if match is None:
            continue
        code = None
        if index + 1 < len(lines) and not _FRAME_LINE.match(lines[index + 1]):
            code = lines[index + 1].strip() or None
        frames.append(
            Frame(
                file=match["file"],
                line=int(match["line"]),
                function=match["function"].strip(),
                code=code,
            )
        )
    return tuple(f for f in frames if not _is_wrapper(f))


def _is_wrapper(frame: Frame) -> bool:
    parts = frame.file.replace("\\", "/").split("/")
    return (
        len(parts) >= 2
        and parts[-2] == "aiomonitor"
        and ((parts[-1], frame.function) in _WRAPPER_FRAMES)
    )


def _sections(text: str) -> list[tuple[str, str]]:
    """`where` output as (header, body) pairs; headers start with "Stack of"."""
    sections: list[tuple[str, list[str]]] = []
    for line in clean_terminal_text(text).split("\n"):
        if line.startswith("Stack of "):
            sections.append((line.strip(), []))
        elif sections:
            sections[-1][1].append(line)
    return [(header, "\n".join(body)) for header, body in sections]


def parse_where(text: str) -> WhereAnswer:
    """The task's own stack (last section) and its creation site (the section before it)."""
    cleaned = clean_terminal_text(text)
    if re.search(r"No task \d+", cleaned):
        return WhereAnswer(stack=(), missing=True)
    sections = _sections(cleaned)
    if not sections:
        return WhereAnswer(stack=())
    stack = parse_frames(sections[-1][1])
    created_at = None
    if len(sections) >= 2 and "when creating the next task" in sections[-2][0]:
        creation = parse_frames(sections[-2][1])
        created_at = creation[-1] if creation else None
    return WhereAnswer(stack=stack, created_at=created_at)


def parse_where_terminated(text: str) -> TerminatedAnswer | None:
    sections = _sections(text)
    for header, body in reversed(sections):
        match = _TERMINATED_HEADER.match(header)
        if match is None:
            continue
        status = match["status"].strip()
        if status == "cancelled":
            return TerminatedAnswer("cancelled", None, parse_frames(body))
        if status.startswith("exc="):
            return TerminatedAnswer("failed", status[len("exc=") :], parse_frames(body))
        return TerminatedAnswer("done", None, ())
    return None


def parse_since(text: str) -> float | None:
    """aiomonitor's durations ("00:01.959", "2h05:03.120", "1d00:00:00.000") in seconds."""
    match = _SINCE.match(text.strip())
    if match is None:
        return None
    units = {"y": 365 * 86_400, "mo": 30 * 86_400, "d": 86_400, "h": 3_600, "mi": 60, "s": 1}
    seconds = sum(int(match[key] or 0) * factor for key, factor in units.items())
    return seconds + float(match["frac"] or 0.0)


def trace_id_to_int(trace_id: str) -> int:
    """aiomonitor's trace id is the base32 of an 8-byte hash: the integer behind it."""
    padded = trace_id + "=" * (-len(trace_id) % 8)
    raw = base64.b32decode(padded)
    return int(struct.unpack("<Q", raw[:8].ljust(8, b"\0"))[0])


def _created_location(text: str) -> Frame | None:
    """ps's "Created Location" ("<cwd>/app.py:12") as a frame without a function name."""
    if text in ("", "-") or ":" not in text:
        return None
    file, _, line = text.rpartition(":")
    return Frame(file=file, line=int(line), function="?") if line.isdigit() else None


def _state(ps_state: str) -> TaskState:
    if ps_state.upper() == "CANCELLED":
        return "cancelled"
    return "done" if ps_state.upper() == "FINISHED" else "pending"


_WAITS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("tasks.py", "sleep"): ("sleep", "asyncio.sleep()"),
    ("queues.py", "get"): ("queue-get", "Queue.get()"),
    ("queues.py", "put"): ("queue-put", "Queue.put()"),
    ("queues.py", "join"): ("queue-join", "Queue.join()"),
    ("tasks.py", "wait_for"): ("future", "asyncio.wait_for()"),
    ("tasks.py", "_wait"): ("future", "asyncio.wait()"),
    ("threads.py", "to_thread"): ("thread", "asyncio.to_thread()"),
}


def _wait_from_stack(stack: Sequence[Frame]) -> WaitInfo | None:
    """What the innermost stdlib frame says the task waits for, where it is unambiguous.

    Without the agent the awaited object cannot be read, so locks, events and conditions
    (all `await fut` in asyncio/locks.py) stay unnamed.
    """
    if not stack:
        return None
    leaf = stack[-1]
    parts = leaf.file.replace("\\", "/").split("/")
    if len(parts) < 2 or parts[-2] != "asyncio":
        return None
    found = _WAITS.get((parts[-1], leaf.function))
    if found is None:
        return None
    kind, description = found
    return WaitInfo(kind=kind, description=description)  # type: ignore[arg-type]


def _running_task(
    loop_stack: Sequence[Frame], stacks: dict[int, tuple[Frame, ...]]
) -> tuple[int, tuple[Frame, ...]] | None:
    """The task whose outermost coroutine is on the loop thread's stack, with that stack.

    A running task's `where` shows only its outermost frame; the loop thread shows the truth.
    """
    run_index = next(
        (
            i
            for i in range(len(loop_stack) - 1, -1, -1)
            if loop_stack[i].function in ("_run", "run")
            and loop_stack[i].file.replace("\\", "/").endswith(("asyncio/events.py",))
        ),
        None,
    )
    if run_index is None or run_index + 1 >= len(loop_stack):
        return None
    entry = loop_stack[run_index + 1]
    candidates = [
        task_id
        for task_id, stack in stacks.items()
        if stack and (stack[0].file, stack[0].function) == (entry.file, entry.function)
    ]
    if len(candidates) != 1:
        return None
    return candidates[0], tuple(loop_stack[run_index + 1 :])


# --- talking to the terminal -----------------------------------------------------------------


class _Terminal:
    """One telnet session on aiomonitor's termui: type a line, read what it printed.

    Two prompt styles exist. Usually prompt_toolkit draws a full-screen prompt and switches
    bracketed paste on with each prompt and off when a line is accepted, so a command's output
    sits between the two markers. When the *server's* own TERM is `dumb` it prints a plain
    prompt instead: the typed line is echoed, then the output, then the prompt text again. The
    inspector agent's line sessions print the plain prompt without the echo.
    """

    def __init__(self) -> None:
        self._text = ""
        self._changed = asyncio.Event()
        self._closed: Exception | None = None
        self._protocol: object | None = None
        self._socket: socket.socket | None = None
        self.full_screen = True
        self.prompt = DEFAULT_PROMPT

    # TerminalListener
    def text_received(self, text: str) -> None:
        self._text += text
        self._changed.set()
        self._quick_ack()

    def connection_lost(self, error: Exception | None) -> None:
        self._closed = error or ConnectionResetError("the monitor closed the connection")
        self._changed.set()

    async def open(self, host: str, port: int, timeout: float) -> str:
        """Connect and wait for the first prompt; returns the banner text."""
        from inspector.client.telnet import open_telnet

        self._protocol = await asyncio.wait_for(open_telnet(host, port, self), timeout)
        transport = getattr(self._protocol, "_transport", None)
        self._socket = transport.get_extra_info("socket") if transport is not None else None

        def prompted(text: str) -> bool:
            return PROMPT_ON in text or clean_terminal_text(text).endswith(PROMPT_END)

        raw = await self._wait_for(prompted, timeout)
        self.full_screen = PROMPT_ON in raw
        banner = clean_terminal_text(raw)
        if not self.full_screen:
            self.prompt = banner.rsplit("\n", 1)[-1] or DEFAULT_PROMPT
        self._text = ""
        return banner

    async def command(self, line: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """The output of one command that answers before its next prompt."""
        self._text = ""
        self._send(line)
        if self.full_screen:

            def done(text: str) -> bool:
                start = text.find(PROMPT_OFF)
                return start >= 0 and text.find(PROMPT_ON, start) >= 0

            text = await self._wait_for(done, timeout)
            start = text.find(PROMPT_OFF) + len(PROMPT_OFF)
            end = text.find(PROMPT_ON, start)
            self._text = ""
            return text[start:end]
        echo = line + "\n"

        def answer_start(cleaned: str) -> int:
            # A dumb-terminal prompt_toolkit echoes the line first; a line-mode server (the
            # inspector agent's) leaves echoing to the client, so the answer starts at once.
            at = cleaned.find(echo)
            return at + len(echo) if at >= 0 else 0

        def answered(text: str) -> bool:
            cleaned = clean_terminal_text(text)
            return cleaned.endswith(self.prompt) and (
                len(cleaned) >= answer_start(cleaned) + len(self.prompt)
            )

        cleaned = clean_terminal_text(await self._wait_for(answered, timeout))
        self._text = ""
        return cleaned[answer_start(cleaned) : len(cleaned) - len(self.prompt)]

    async def command_until(self, line: str, pattern: re.Pattern[str], timeout: float) -> str:
        """The output of a command that answers after its prompt (`cancel` runs as a task)."""
        self._text = ""
        self._send(line)

        def answer(text: str) -> str | None:
            if not self.full_screen:
                cleaned = clean_terminal_text(text)
                match = pattern.search(cleaned, cleaned.find(line + "\n") + 1)
                # Plain prompts are not redrawn after a late answer: wait for its line end.
                if match is not None and "\n" in cleaned[match.end() - 1 :]:
                    return cleaned[match.start() :]
                return None
            for segment in _closed_segments(text):
                cleaned = clean_terminal_text(segment)
                if pattern.search(cleaned):
                    return cleaned
            return None

        text = await self._wait_for(lambda text: answer(text) is not None, timeout)
        self._text = ""
        return answer(text) or ""

    def _quick_ack(self) -> None:
        """Acknowledge at once. A stock monitor leaves Nagle on and writes each answer in
        pieces, so every piece after the first waits for our ACK: 44 ms per command with
        delayed ACKs, 4-5 ms without (Linux re-enables delayed ACKs, hence every time)."""
        if self._socket is not None and _QUICKACK is not None:
            try:
                self._socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                self._socket = None

    def _send(self, line: str) -> None:
        if self._closed is not None or self._protocol is None:
            raise ConnectionResetError("the monitor closed the connection")
        self._quick_ack()
        self._protocol.send_line(line)  # type: ignore[attr-defined]

    async def _wait_for(self, condition: Callable[[str], bool], timeout: float) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if condition(self._text):
                return self._text
            if self._closed is not None:
                raise self._closed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("the monitor did not answer in time")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                continue

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.close()  # type: ignore[attr-defined]
            self._protocol = None


def _closed_segments(text: str) -> list[str]:
    """Every output between a line being accepted and the next prompt, in order."""
    segments = []
    start = text.find(PROMPT_OFF)
    while start >= 0:
        end = text.find(PROMPT_ON, start)
        if end < 0:
            break
        segments.append(text[start + len(PROMPT_OFF) : end])
        start = text.find(PROMPT_OFF, end)
    return segments


# --- the source ------------------------------------------------------------------------------


class AiomonitorSource:
    """Snapshots of a plain aiomonitor: tasks, their stacks, the loop's stack, cancel."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._terminal: _Terminal | None = None
        self._lock = asyncio.Lock()
        self._process: ProcessInfo | None = None
        self._terminated: OrderedDict[str, TerminatedAnswer | None] = OrderedDict()
        self._stacks: dict[int, tuple[float, WhereAnswer]] = {}
        self.hook_mode = False
        """True once the monitor showed creation sites or finished tasks (hook_task_factory)."""

    @property
    def address(self) -> str:
        return f"{self._host}:{self._port}"

    @property
    def live(self) -> bool:
        return True

    async def connect(self) -> Hello:
        if self._terminal is not None:
            self._terminal.close()
        terminal = _Terminal()
        try:
            banner = await terminal.open(self._host, self._port, CONNECT_TIMEOUT)
        except (OSError, TimeoutError, asyncio.TimeoutError) as error:
            terminal.close()
            raise ConnectError(
                f"cannot reach an aiomonitor at {self.address}: {_reason(error)}"
            ) from None
        if "Asyncio Monitor" not in banner:
            terminal.close()
            raise ConnectError(f"{self.address} is not an aiomonitor terminal", retryable=False)
        self._terminal = terminal
        pid = await self._read_pid()
        self._process = _describe_process(pid, self._host, self._port)
        return Hello(
            protocol=PROTOCOL_VERSION,
            agent_version=AGENT_VERSION,
            process=self._process,
            capabilities=CAPABILITIES,
            read_only=False,
        )

    async def _read_pid(self) -> int:
        # `signal SIG_DFL` sends signal 0, which only checks that the process exists, and the
        # monitor answers with its pid: the only way a plain monitor says who it is.
        answer = await self._command("signal SIG_DFL")
        match = _PID_LINE.search(clean_terminal_text(answer))
        return int(match.group(1)) if match else 0

    async def snapshot(self, *, with_stacks: bool = True) -> Snapshot:
        if self._terminal is None or self._process is None:
            await self.connect()
        assert self._process is not None
        loop_stack: tuple[Frame, ...] = ()
        if with_stacks:
            # The loop thread first: a task that is running (and blocking) now is then sure to
            # be in the task list read next, so it can be named.
            loop_stack = parse_frames(await self._command("stacktrace"))
        rows = parse_task_table(await self._command("ps"))
        self.hook_mode = self.hook_mode or any(r.created_location != "-" for r in rows)
        stacks: dict[int, tuple[Frame, ...]] = {}
        created: dict[int, Frame | None] = {}
        if with_stacks:
            await self._refresh_stacks(rows)
            for row in rows:
                known = self._stacks.get(row.task_id)
                if known is not None:
                    stacks[row.task_id] = known[1].stack
                    created[row.task_id] = known[1].created_at
        running = _running_task(loop_stack, stacks) if loop_stack else None
        tasks = []
        for row in rows:
            stack = stacks.get(row.task_id, ())
            state = _state(row.state)
            if running is not None and running[0] == row.task_id:
                stack, state = running[1], "running"
            tasks.append(
                TaskInfo(
                    id=row.task_id,
                    name=row.name,
                    state=state,
                    coro=_coro_name(row.coro),
                    stack=stack,
                    waiting_on=_wait_from_stack(stack) if state == "pending" else None,
                    age=parse_since(row.since),
                    created_at=created.get(row.task_id) or _created_location(row.created_location),
                )
            )
        tasks.extend(await self._finished_tasks())
        return Snapshot(
            process=self._process,
            taken_at=time.time(),
            tasks=tuple(tasks),
            current_task_id=running[0] if running else None,
            loop_thread_stack=loop_stack,
            capabilities=CAPABILITIES,
            source="aiomonitor",
        )

    async def _refresh_stacks(self, rows: Sequence[TableRow]) -> None:
        """Ask `where` for the tasks never asked about first, then the longest ago.

        One `where` is one round trip (5-25 ms), so each snapshot refreshes what fits in
        `STACK_BUDGET`; the others keep the stack of an earlier snapshot, which for a task
        that is stuck (the interesting ones) is still its stack.
        """
        alive = {row.task_id for row in rows}
        for task_id in [t for t in self._stacks if t not in alive]:
            del self._stacks[task_id]
        order = sorted(
            rows,
            key=lambda row: (row.task_id in self._stacks, self._stacks.get(row.task_id, (0.0,))[0]),
        )
        deadline = time.monotonic() + STACK_BUDGET
        for row in order[:MAX_STACKS]:
            if time.monotonic() > deadline:
                break
            answer = parse_where(await self._command(f"where {row.task_id}"))
            if answer.missing:
                self._stacks.pop(row.task_id, None)
            else:
                self._stacks[row.task_id] = (time.monotonic(), answer)

    async def _finished_tasks(self) -> list[TaskInfo]:
        """Finished tasks, which aiomonitor records only in hook mode; outcomes are cached."""
        rows = parse_terminated_table(await self._command("ps-terminated"))
        if not rows:
            return []
        self.hook_mode = True
        finished: list[TaskInfo] = []
        fetched = 0
        for row in rows:  # newest first
            if row.trace_id not in self._terminated and fetched < MAX_TERMINATED_DETAILS:
                fetched += 1
                text = await self._command(f"where-terminated {row.trace_id}")
                self._terminated[row.trace_id] = parse_where_terminated(text)
                while len(self._terminated) > 4 * MAX_TERMINATED_DETAILS + 1000:
                    self._terminated.popitem(last=False)
            answer = self._terminated.get(row.trace_id)
            started = parse_since(row.started_since)
            finished.append(
                TaskInfo(
                    id=trace_id_to_int(row.trace_id),
                    name=row.name,
                    state=answer.state if answer else "done",
                    coro=_coro_name(row.coro),
                    stack=answer.stack if answer else (),
                    age=started,
                    exception=answer.exception if answer else None,
                )
            )
        return finished

    async def cancel(self, task_id: int) -> Result:
        if self._terminal is None:
            await self.connect()
        pattern = re.compile(rf"(Cancelled task {task_id}\b|{_FAIL_MARK}.*)")
        async with self._lock:
            terminal = self._require_terminal()
            try:
                text = await terminal.command_until(f"cancel {task_id}", pattern, CANCEL_TIMEOUT)
            except (TimeoutError, asyncio.TimeoutError):
                # The answer may still come; a fresh session keeps later commands in step.
                await self._reset()
                return Result(
                    ok=False,
                    message=(
                        f"no answer within {CANCEL_TIMEOUT:.0f} s: the app loop is blocked or "
                        "the task ignores cancellation"
                    ),
                )
            except OSError as error:
                self._drop()
                raise DisconnectedError(
                    f"lost the aiomonitor at {self.address}: {_reason(error)}"
                ) from None
        if _CANCEL_OK.search(text):
            return Result(ok=True, message=f"cancelled task {task_id}")
        failure = text[text.find(_FAIL_MARK) + len(_FAIL_MARK) :].split("\n", 1)[0].strip()
        if "Invalid or non-existent task ID" in failure:
            failure = f"no task {task_id} (it may have finished)"
        return Result(ok=False, message=failure or "aiomonitor refused")

    async def close(self) -> None:
        self._drop()

    # --- plumbing ----------------------------------------------------------------------------

    async def _command(self, line: str) -> str:
        async with self._lock:
            terminal = self._require_terminal()
            try:
                return await terminal.command(line)
            except (TimeoutError, asyncio.TimeoutError):
                self._drop()
                raise DisconnectedError(
                    f"the aiomonitor at {self.address} stopped answering ({line.split()[0]})"
                ) from None
            except OSError as error:
                self._drop()
                raise DisconnectedError(
                    f"lost the aiomonitor at {self.address}: {_reason(error)}"
                ) from None

    def _require_terminal(self) -> _Terminal:
        if self._terminal is None:
            raise DisconnectedError(f"not connected to the aiomonitor at {self.address}")
        return self._terminal

    async def _reset(self) -> None:
        self._drop()
        terminal = _Terminal()
        try:
            await terminal.open(self._host, self._port, CONNECT_TIMEOUT)
        except (OSError, TimeoutError, asyncio.TimeoutError):
            terminal.close()
            return
        self._terminal = terminal

    def _drop(self) -> None:
        if self._terminal is not None:
            self._terminal.close()
            self._terminal = None


async def probe_aiomonitor(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> bool:
    """True when an aiomonitor terminal answers at host:port (with or without the agent)."""
    terminal = _Terminal()
    try:
        banner = await terminal.open(host, port, timeout)
    except (OSError, TimeoutError, asyncio.TimeoutError):
        return False
    finally:
        terminal.close()
    return "Asyncio Monitor" in banner


def _coro_name(text: str) -> str:
    """ps shows "handler()"; the model wants the qualified name alone."""
    return text[:-2] if text.endswith("()") else text


def _describe_process(pid: int, host: str, port: int) -> ProcessInfo:
    """What psutil knows about `pid` when it is the local process that listens on `port`.

    Behind a tunnel the pid belongs to another machine, so it is used only when the local
    process with that pid really listens on the port.
    """
    info = ProcessInfo(pid=pid)
    if pid <= 0 or not is_loopback(host):
        return info
    try:
        import psutil

        process = psutil.Process(pid)
        with process.oneshot():
            listening = {
                c.laddr.port
                for c in process.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr
            }
            if port not in listening:
                return info
            return replace(
                info,
                argv=tuple(process.cmdline()),
                started_at=process.create_time(),
                ppid=process.ppid(),
                cwd=process.cwd(),
            )
    except Exception:  # psutil missing, process gone, access denied: the pid is enough
        return info


def _reason(error: BaseException) -> str:
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        return "no answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return str(error) or type(error).__name__


# --- falling back from the agent -------------------------------------------------------------


class FallbackSource:
    """The agent if there is one, else the plain aiomonitor answering at the same address.

    `open_source` wraps its `AgentSource` in this, so `attach`, `dump` and `doctor` work on any
    aiomonitor, with fewer facts (see `AiomonitorSource`).
    """

    def __init__(self, primary: Source, host: str, port: int) -> None:
        self._primary = primary
        self._host = host
        self._port = port
        self._active: Source = primary

    @property
    def address(self) -> str:
        return self._primary.address

    @property
    def live(self) -> bool:
        return True

    @property
    def active(self) -> Source:
        """The source in use: the agent's, or the plain aiomonitor's after a fallback."""
        return self._active

    async def connect(self) -> Hello:
        if self._active is not self._primary:
            return await self._active.connect()
        try:
            return await self._primary.connect()
        except ConnectError as error:
            if not isinstance(error.protocol_error, PlainAiomonitorError):
                raise
        await self._primary.close()
        fallback = AiomonitorSource(self._host, self._port)
        hello = await fallback.connect()
        self._active = fallback
        return hello

    async def snapshot(self, *, with_stacks: bool = True) -> Snapshot:
        return await self._active.snapshot(with_stacks=with_stacks)

    async def cancel(self, task_id: int) -> Result:
        return await self._active.cancel(task_id)

    async def close(self) -> None:
        await self._active.close()


def with_aiomonitor_fallback(primary: Source, host: str, port: int) -> Source:
    """`primary` (an AgentSource for host:port), falling back to a plain aiomonitor there."""
    return FallbackSource(primary, host, port)
