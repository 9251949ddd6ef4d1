"""`AgentSource`: snapshots from an inspector agent over aiomonitor's termui.

One long-lived telnet connection per target. The client reports the terminal type
`protocol.INSPECTOR_TERMINAL`, and an agent then serves it a line session (about 1 ms to open,
0.2 ms of the server's CPU per command); anything else on the port, an older agent or a plain
aiomonitor, answers with aiomonitor's prompt (0.35 s to open: aiomonitor sleeps 0.3 s before
its first prompt). Commands are serialised: type one line, wait for its frame, then wait for the
next prompt before typing again.

Where a prompt starts is read from the terminal stream. prompt_toolkit's full-screen prompt
switches bracketed paste on as it draws a prompt (``ESC[?2004h``) and off when a line is
accepted (``ESC[?2004l``); the line session, and a server whose own ``TERM`` is ``dumb``, show
a plain prompt instead, recognised by its text (``monitor >>> ``). Frames never contain either,
so the two cannot be confused.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections import deque
from collections.abc import Callable
from typing import Final

from inspector import protocol
from inspector.addresses import is_loopback
from inspector.client.source import ConnectError, DisconnectedError, SourceError
from inspector.client.telnet import SMALL_WINDOW, TelnetProtocol, open_telnet
from inspector.collector import without_gc
from inspector.model import Snapshot
from inspector.protocol import (
    FrameReader,
    Hello,
    Message,
    NotAnAgentError,
    PlainAiomonitorError,
    ProtocolError,
    Result,
    VersionMismatchError,
)

DEFAULT_CONNECT_TIMEOUT: Final = 3.0
DEFAULT_COMMAND_TIMEOUT: Final = 10.0
"""A 10,000-task snapshot takes about 0.1 s; a server burning the GIL can make it 10× slower."""
PROBE_AFTER: Final = 1.0
"""Seconds of silence after which a peer is sent a line: a telnet server speaks first, an HTTP
server answers a malformed request line with a 400 that says what it is."""
PROMPT_GRACE: Final = 2.0
THREAD_DECODE_CHARS: Final = 512 * 1024
"""Frames larger than this are decoded in a worker thread, so a UI on this loop stays live."""

PROMPT_ON: Final = "\x1b[?2004h"
LINE_ACCEPTED: Final = "\x1b[?2004l"
PLAIN_PROMPT: Final = ">>> "
_MARKER = re.compile(r"\x1b\[\?2004([hl])")
_MARKER_PREFIX: Final = "\x1b[?2004"
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
_AIOMONITOR_SIGNS: Final = ("Asyncio Monitor", "No such command")


class _Session:
    """What one connection has shown so far: frames, prompts, the text around them."""

    def __init__(self, max_frame_chars: int) -> None:
        self.reader = FrameReader(max_frame_chars)
        self.frames: deque[str] = deque(maxlen=16)  # a peer spamming frames cannot grow it
        self.prompts = 0
        self.full_screen = False
        self.closed = False
        self.error: ProtocolError | None = None
        self.banner = ""
        """Text before the first prompt (bounded): aiomonitor introduces itself there."""
        self.output = ""
        """Text outside frames since the last command was typed (bounded), for messages."""
        self.changed = asyncio.Event()
        self._held = ""
        self._plain_tail = ""

    # --- TerminalListener ----------------------------------------------------------------

    def text_received(self, text: str) -> None:
        text = self._held + text
        self._held = ""
        cut = text.rfind("\x1b", max(0, len(text) - len(PROMPT_ON) + 1))
        if cut >= 0 and _MARKER_PREFIX.startswith(text[cut:]):
            self._held, text = text[cut:], text[:cut]  # a marker split across chunks
        position = 0
        for match in _MARKER.finditer(text):
            self._segment(text[position : match.start()])
            position = match.end()
            if match.group(1) == "h":
                self.full_screen = True
                self.prompts += 1
            else:
                self.output = ""  # what came before was the echo of the typed line
        self._segment(text[position:])
        self.changed.set()

    def connection_lost(self, error: Exception | None) -> None:
        self.closed = True
        self.changed.set()

    # --- commands ------------------------------------------------------------------------

    def begin_command(self) -> int:
        """Forget earlier answers; return the prompt count the answer must exceed."""
        self.frames.clear()
        self.output = ""
        return self.prompts

    # --- internals -----------------------------------------------------------------------

    def _segment(self, segment: str) -> None:
        if not segment or self.error is not None:
            return
        was_in_frame = self.reader.in_frame
        try:
            frames = self.reader.feed(segment)
        except ProtocolError as error:
            self.error = error
            return
        self.frames.extend(frames)
        if self.reader.in_frame:
            begin = segment.find("\x1e")
            outside = "" if was_in_frame or frames or begin < 0 else segment[:begin]
        elif was_in_frame or frames:
            outside = segment[segment.rfind("\x1e") + 1 :]
        else:
            outside = segment
        if not outside:
            return
        self.output = (self.output + outside)[-8192:]
        if self.prompts == 0:
            self.banner = (self.banner + outside)[:4096]
        if not self.full_screen:
            window = self._plain_tail + outside
            self.prompts += window.count(PLAIN_PROMPT)
            self._plain_tail = window[-(len(PLAIN_PROMPT) - 1) :]


class AgentSource:
    """A live inspector agent at `host:port` (aiomonitor's termui port)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        max_tasks: int | None = None,
        compress: bool | None = None,
        max_frame_chars: int = protocol.MAX_FRAME_CHARS,
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.max_tasks = max_tasks
        self.compress = compress if compress is not None else not is_loopback(host)
        """zjson is 10× smaller but no faster on loopback; it pays off on a real network."""
        self.max_frame_chars = max_frame_chars
        self.hello: Hello | None = None
        self._telnet: TelnetProtocol | None = None
        self._session: _Session | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    @property
    def live(self) -> bool:
        return True

    # --- Source ------------------------------------------------------------------------------

    async def connect(self) -> Hello:
        async with self._lock:
            self._closed = False
            return await self._connect()

    async def snapshot(self, *, with_stacks: bool = True) -> Snapshot:
        command = protocol.CMD_SNAPSHOT
        if not with_stacks:
            command += " --no-stacks"
        if self.max_tasks is not None:
            command += f" --max-tasks {int(self.max_tasks)}"
        if self.compress:
            command += " --enc zjson"
        message = await self._command(command, ("snapshot", "error"))
        if message.type == "error":
            raise SourceError(
                f"the agent at {self.address} could not take a snapshot: "
                f"{_one_line(message.payload.message)}"
            )
        return protocol.typing_cast_snapshot(message.payload)

    async def cancel(self, task_id: int) -> Result:
        message = await self._command(f"{protocol.CMD_CANCEL} {int(task_id)}", ("result", "error"))
        payload = message.payload
        assert isinstance(payload, Result)
        return payload if message.type == "result" else Result(ok=False, message=payload.message)

    async def close(self) -> None:
        self._closed = True
        self._drop()

    # --- connection --------------------------------------------------------------------------

    async def _connect(self) -> Hello:
        self._drop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        session = _Session(self.max_frame_chars)
        try:
            telnet = await asyncio.wait_for(
                open_telnet(
                    self.host, self.port, session, SMALL_WINDOW, protocol.INSPECTOR_TERMINAL
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectError(
                f"no answer from {self.address} within {self.connect_timeout:g} s "
                "(is the host up? a firewall?)"
            ) from None
        except socket.gaierror:
            raise ConnectError(f"cannot resolve host {self.host!r}") from None
        except ConnectionRefusedError:
            raise ConnectError(f"nothing is listening on {self.address}") from None
        except OSError as error:
            raise ConnectError(
                f"cannot connect to {self.address}: {error.strerror or error}"
            ) from None
        try:
            hello = await self._handshake(telnet, session, deadline)
        except ProtocolError as error:
            telnet.close()
            raise ConnectError(self._describe_refusal(error), protocol_error=error) from None
        except BaseException:
            telnet.close()
            raise
        self._telnet, self._session, self.hello = telnet, session, hello
        return hello

    async def _handshake(self, telnet: TelnetProtocol, session: _Session, deadline: float) -> Hello:
        loop = asyncio.get_running_loop()
        probe_at = loop.time() + min(PROBE_AFTER, self.connect_timeout / 3)

        def first_prompt_or_foreign_peer() -> bool:
            return session.prompts > 0 or telnet.foreign

        while not await self._wait(session, first_prompt_or_foreign_peer, min(probe_at, deadline)):
            if loop.time() >= deadline:
                break
            if telnet.bytes_received == 0:
                telnet.send_raw(f"{protocol.CMD_HELLO}\r\n".encode())
            probe_at = deadline
        if session.prompts == 0:
            if session.error is not None:
                raise session.error
            if telnet.foreign:
                # Let the rest of a short answer ("HTTP/1.1 400 …") arrive for the message.
                await self._wait(session, lambda: False, min(deadline, loop.time() + 0.2))
                raise NotAnAgentError(f"is not an inspector agent (it answered {_excerpt(telnet)})")
            # Silence and hang-ups may pass (a server stopping or frozen): worth another try.
            if session.closed:
                raise NotAnAgentError(
                    "closed the connection before any prompt: not an inspector agent, "
                    "or the server stopped",
                    retryable=True,
                )
            if telnet.bytes_received == 0:
                raise NotAnAgentError(
                    f"accepted the connection but sent nothing within {self.connect_timeout:g} s:"
                    " not an inspector agent, or its process is frozen",
                    retryable=True,
                )
            raise NotAnAgentError(
                f"speaks telnet but showed no prompt within {self.connect_timeout:g} s: "
                "not an inspector agent, or its monitor thread is stuck",
                retryable=True,
            )

        message = await self._exchange(
            telnet, session, protocol.CMD_HELLO, ("hello", "error"), deadline, handshake=True
        )
        if message.type == "error":
            raise NotAnAgentError(f"refused the handshake: {_one_line(message.payload.message)}")
        hello = message.payload
        assert isinstance(hello, Hello)
        if hello.protocol != protocol.PROTOCOL_VERSION:
            raise VersionMismatchError(
                f"the agent speaks protocol {hello.protocol}, this client speaks "
                f"{protocol.PROTOCOL_VERSION}: install the same uvicorn-inspector version on "
                "both sides"
            )
        return hello

    def _describe_refusal(self, error: ProtocolError) -> str:
        if isinstance(error, NotAnAgentError):
            return f"{self.address} {error}"
        if isinstance(error, VersionMismatchError):
            return f"{self.address}: {error}"
        return f"{self.address} is not a working inspector agent: {error}"

    async def _ensure_session(self) -> tuple[TelnetProtocol, _Session]:
        if self._closed:
            raise DisconnectedError(f"the connection to {self.address} was closed")
        if self._telnet is None or self._session is None or self._session.closed:
            if self.hello is None:
                await self._connect()
            else:
                try:
                    await self._connect()
                except ConnectError as error:
                    raise DisconnectedError(
                        f"lost the connection: {error}",
                        retryable=error.retryable,
                        protocol_error=error.protocol_error,
                    ) from None
        assert self._telnet is not None and self._session is not None
        return self._telnet, self._session

    def _drop(self) -> None:
        if self._telnet is not None:
            self._telnet.close()
        self._telnet = None
        self._session = None

    # --- commands ----------------------------------------------------------------------------

    async def _command(self, line: str, kinds: tuple[str, ...]) -> Message:
        async with self._lock:
            telnet, session = await self._ensure_session()
            deadline = asyncio.get_running_loop().time() + self.command_timeout
            try:
                return await self._exchange(telnet, session, line, kinds, deadline)
            except ProtocolError as error:
                self._drop()
                raise DisconnectedError(f"{self.address}: {error}", protocol_error=error) from None
            except (DisconnectedError, asyncio.CancelledError):
                # Cancelled mid-command, the answer may still arrive: a fresh connection makes
                # sure it is never taken for the answer to the next command.
                self._drop()
                raise

    async def _exchange(
        self,
        telnet: TelnetProtocol,
        session: _Session,
        line: str,
        kinds: tuple[str, ...],
        deadline: float,
        *,
        handshake: bool = False,
    ) -> Message:
        """Type `line`, return its answer, and wait for the next prompt."""
        before = session.begin_command()
        telnet.send_line(line)
        answered = await self._wait(
            session, lambda: bool(session.frames) or session.prompts > before, deadline
        )
        message = None
        while session.frames:
            message = await _decode(session.frames.popleft())
            if message.type in kinds:
                break
            message = None  # a late answer to an earlier command
        if message is None:
            self._raise_unanswered(session, line, answered, handshake)
        assert message is not None
        # The next prompt says the monitor is ready for another line. It follows the answer
        # at once; the grace covers an answer that used up most of the deadline.
        loop = asyncio.get_running_loop()
        prompt_deadline = max(deadline, loop.time() + PROMPT_GRACE)
        if not await self._wait(session, lambda: session.prompts > before, prompt_deadline):
            if handshake:
                raise NotAnAgentError(
                    "answered the handshake but showed no prompt after it", retryable=True
                )
            self._drop()  # unknown state: the next command opens a fresh connection
        return message

    def _raise_unanswered(
        self, session: _Session, line: str, answered: bool, handshake: bool
    ) -> None:
        if session.error is not None:
            raise session.error
        if session.closed and self._closed and not handshake:
            raise DisconnectedError(f"the connection to {self.address} was closed")
        if session.closed:
            middle = " in the middle of an answer" if session.reader.in_frame else ""
            if handshake:
                raise NotAnAgentError(
                    f"closed the connection{middle}: not an inspector agent", retryable=True
                )
            raise DisconnectedError(
                f"{self.address} closed the connection{middle} (did the server stop?)"
            )
        if not answered:
            what = "the handshake" if handshake else f"`{line.split()[0]}`"
            if handshake:
                raise NotAnAgentError(
                    f"did not answer {what} within {self.connect_timeout:g} s", retryable=True
                )
            raise DisconnectedError(
                f"{self.address} did not answer {what} within {self.command_timeout:g} s "
                "(is the process frozen or its monitor thread stuck?)"
            )
        said = _printed_text(session.output, line)
        if handshake:
            if any(sign in session.banner + session.output for sign in _AIOMONITOR_SIGNS):
                raise PlainAiomonitorError(
                    "is an aiomonitor without the inspector agent (try `inspector attach`, "
                    "which can read plain aiomonitor, or install the agent)"
                )
            raise NotAnAgentError(
                f"is a telnet service but not an inspector agent (it answered {said!r})"
            )
        # An agent that does not know a command is another version: asking again is no use.
        raise SourceError(f"the agent at {self.address} rejected `{line}`: {said}", retryable=False)

    async def _wait(self, session: _Session, done: Callable[[], bool], deadline: float) -> bool:
        """Wait until `done()`, the connection fails, or `deadline`; True unless timed out."""
        loop = asyncio.get_running_loop()
        while not (done() or session.closed or session.error is not None):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            session.changed.clear()
            try:
                await asyncio.wait_for(session.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return True


async def _decode(frame: str) -> Message:
    if len(frame) > THREAD_DECODE_CHARS:
        return await asyncio.to_thread(without_gc, protocol.decode_frame, frame)
    return protocol.decode_frame(frame)


def _printed_text(output: str, line: str) -> str:
    """The first meaningful line a command printed, without colours, echo or prompt."""
    for raw in _ANSI.sub("", output).replace("\r", "\n").split("\n"):
        text = raw.strip().lstrip("✗✓ ").strip()
        if text and text != line and not text.endswith(PLAIN_PROMPT.strip()):
            return text[:200]
    return "nothing"


def _excerpt(telnet: TelnetProtocol) -> str:
    text = telnet.first_bytes.decode("utf-8", errors="replace")
    first = next((part.strip() for part in text.splitlines() if part.strip()), "")
    printable = "".join(ch if ch.isprintable() else "?" for ch in first)[:60]
    return repr(printable) if printable else f"{len(telnet.first_bytes)} bytes of binary data"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets so it can be typed back."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
