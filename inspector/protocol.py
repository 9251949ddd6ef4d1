"""The wire protocol between the agent and its clients. Both sides import this module.

Transport: aiomonitor's termui, a telnet server on loopback (default 127.0.0.1:20101). The agent
registers commands on it; a client negotiates telnet (terminal type ``dumb``), types a command
line and reads the answer out of the terminal stream. The terminal adds prompts, echo, ANSI
redraws and turns ``\\n`` into ``\\r\\n``, so every answer travels as one *frame* that survives
all of that::

    \\x1e@@INSPECTOR-BEGIN@@ <enc> : <length> : <body> @@INSPECTOR-END@@\\x1e      (no spaces)

``enc`` is ``json`` (the body is ASCII-only JSON: no raw newline can appear in it) or ``zjson``
(base64 of zlib-compressed JSON, for slow links). ``length`` is the body's length in characters
and is checked. The JSON is an *envelope*::

    {"type": <str>, "protocol": <int>, "payload": <object>}

Types and payloads:

``hello``     answer to ``inspector-hello``: a `Hello` (versions, process, capabilities).
``snapshot``  answer to ``inspector-snapshot``: a `inspector.model.Snapshot`.
``result``    answer to an action (``inspector-cancel TASK_ID``): a `Result`.
``error``     any command that failed: a `Result` with ``ok`` false and the reason.

Commands (typed as one line, answered with one frame)::

    inspector-hello
    inspector-snapshot [--no-stacks] [--max-tasks N] [--enc json|zjson]
    inspector-cancel TASK_ID

Decoding never trusts the peer: frames over `MAX_FRAME_CHARS` are refused before they are
buffered whole, the length must match, the JSON must be an envelope of a known type and a
compatible protocol version, and the payload must match the model (`inspector.model`). Each
refusal is a typed `ProtocolError` whose `retryable` says whether asking again can help: a frame
damaged on the way may come whole next time; another protocol version, a peer that is not an
agent or a payload that fails validation will not change.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn

from inspector import codec, model
from inspector.model import ModelError, ProcessInfo, Snapshot

PROTOCOL_VERSION: Final = 1
"""Major version: a peer with another major version is refused with a clear message."""
INSPECTOR_TERMINAL: Final = "inspector"
"""The telnet terminal type the inspector's client reports; the agent then serves it a line
session instead of aiomonitor's full-screen prompt (see `inspector.agent.line_session`)."""

BEGIN: Final = "\x1e@@INSPECTOR-BEGIN@@"
END: Final = "@@INSPECTOR-END@@\x1e"
MAX_FRAME_CHARS: Final = 256 * 1024 * 1024
"""A 50,000-task snapshot with stacks is about 8 MB of JSON; this leaves a wide margin."""
MAX_DECOMPRESSED_BYTES: Final = 512 * 1024 * 1024

Encoding = Literal["json", "zjson"]
MessageType = Literal["hello", "snapshot", "result", "error"]

CMD_HELLO: Final = "inspector-hello"
CMD_SNAPSHOT: Final = "inspector-snapshot"
CMD_CANCEL: Final = "inspector-cancel"


class ProtocolError(Exception):
    """The peer sent something this side cannot accept. The message is one line for a person.

    `retryable` says whether asking again can help. Each class has a default (a client that
    polls must not retry a peer of another version forever); an instance may say otherwise
    when the same symptom has a passing cause (a peer that closed before its first prompt may
    be an agent that is restarting).
    """

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class NotAnAgentError(ProtocolError):
    """The peer is not an inspector agent (another server, or aiomonitor without the agent)."""


class PlainAiomonitorError(NotAnAgentError):
    """The peer is aiomonitor without the agent: a client may read it, with fewer facts."""


class VersionMismatchError(ProtocolError):
    """The peer speaks another major version of the protocol."""


class FrameTooLargeError(ProtocolError):
    """A frame exceeds `MAX_FRAME_CHARS` (the next snapshot will be as large)."""


class CorruptFrameError(ProtocolError):
    """A frame was truncated, its length did not match, or its body did not decode.

    Retryable: the damage may have happened on the way, and a fresh connection may do better.
    """

    retryable = True


class SchemaError(CorruptFrameError):
    """A frame arrived whole, but its message does not match this side's model (an unknown
    type, a missing envelope, a payload that fails validation): asking again gets the same."""

    retryable = False


@dataclass(frozen=True)
class Hello:
    """The agent's introduction: who it is and what it can report."""

    protocol: int
    agent_version: str
    process: ProcessInfo
    capabilities: tuple[model.Capability, ...] = model.ALL_CAPABILITIES
    read_only: bool = False
    stall_threshold: float = 0.1


@dataclass(frozen=True)
class Result:
    """The outcome of an action, or the reason a command failed."""

    ok: bool
    message: str


Payload = Hello | Snapshot | Result
_PAYLOAD_TYPES: Final[dict[str, type]] = {
    "hello": Hello,
    "snapshot": Snapshot,
    "result": Result,
    "error": Result,
}


@dataclass(frozen=True)
class Message:
    type: MessageType
    payload: Any


# --- encoding (agent side) -------------------------------------------------------------------


def encode_message(kind: MessageType, payload: Payload, enc: Encoding = "json") -> str:
    """One framed message, ready to write to the terminal stream."""
    envelope = {
        "type": kind,
        "protocol": PROTOCOL_VERSION,
        "payload": codec.to_json_dict(payload, compact=True),
    }
    # ensure_ascii: the body never holds a raw newline or a non-ASCII byte the terminal could
    # rewrite; separators: about 15% smaller than the default.
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    body = text if enc == "json" else base64.b64encode(zlib.compress(text.encode(), 1)).decode()
    return f"{BEGIN}{enc}:{len(body)}:{body}{END}"


# --- decoding (client side) ------------------------------------------------------------------


class FrameReader:
    """Finds frames in a stream of terminal text fed in arbitrary chunks.

    Text outside frames (prompts, echo, ANSI codes) is discarded. A frame that grows past the
    limit raises before it is buffered whole.
    """

    def __init__(self, max_chars: int = MAX_FRAME_CHARS) -> None:
        self._buffer = ""
        self._chunks: list[str] = []
        """The parts of a frame begun and not yet ended; joined once, when it ends (a 10 MB
        frame arrives in hundreds of chunks: re-scanning a growing buffer would be quadratic)."""
        self._chunked = 0
        self._tail = ""
        """The last characters of the frame so far: an END marker may be split across chunks."""
        self._max_chars = max_chars
        self.discarded = ""
        """Recent text seen outside frames (bounded), for error messages and prompt detection."""

    def feed(self, text: str) -> list[str]:
        """Add text; return the bodies (``enc:length:body``) of the frames it completed."""
        frames: list[str] = []
        if self._chunks:
            tail = self._tail
            found = (tail + text).find(END)
            if found < 0:
                self._chunks.append(text)
                self._chunked += len(text)
                self._tail = (tail + text)[-(len(END) - 1) :]
                self._check_size(self._chunked)
                return frames
            cut = found - len(tail) + len(END)  # just after END, in `text`
            self._chunks.append(text[:cut])
            whole = "".join(self._chunks)
            self._chunks, self._chunked = [], 0
            frames.append(whole[len(BEGIN) : -len(END)])
            text = text[cut:]
        self._buffer += text
        while True:
            start = self._buffer.find(BEGIN)
            if start < 0:
                keep = len(BEGIN) - 1  # a BEGIN marker may be split across chunks
                self._remember(self._buffer[:-keep] if len(self._buffer) > keep else "")
                self._buffer = self._buffer[-keep:] if len(self._buffer) > keep else self._buffer
                return frames
            if start:
                self._remember(self._buffer[:start])
                self._buffer = self._buffer[start:]
            end = self._buffer.find(END, len(BEGIN))
            if end < 0:
                self._check_size(len(self._buffer))
                self._chunks, self._chunked = [self._buffer], len(self._buffer)
                self._tail = self._buffer[-(len(END) - 1) :]
                self._buffer = ""
                return frames
            frames.append(self._buffer[len(BEGIN) : end])
            self._buffer = self._buffer[end + len(END) :]

    def _check_size(self, size: int) -> None:
        if size - len(BEGIN) > self._max_chars:
            self._buffer, self._chunks, self._chunked = "", [], 0
            raise FrameTooLargeError(
                f"the agent sent a frame larger than {self._max_chars:,} characters"
            )

    @property
    def in_frame(self) -> bool:
        """True while a frame has begun and not ended (the caller must keep reading)."""
        return bool(self._chunks) or self._buffer.startswith(BEGIN)

    def _remember(self, text: str) -> None:
        if text:
            self.discarded = (self.discarded + text)[-4096:]


def decode_frame(frame: str, max_decompressed: int = MAX_DECOMPRESSED_BYTES) -> Message:
    """Decode one frame body (``enc:length:body``) into a checked `Message`."""
    enc, sep1, rest = frame.partition(":")
    length_text, sep2, body = rest.partition(":")
    if not (sep1 and sep2) or enc not in ("json", "zjson"):
        raise CorruptFrameError("the agent sent a malformed frame header")
    if not (length_text.isascii() and length_text.isdigit()) or len(length_text) > 12:
        raise CorruptFrameError("the agent sent a frame with a malformed length")
    if int(length_text) != len(body):
        raise CorruptFrameError(
            f"the agent's frame was truncated ({len(body):,} of {int(length_text):,} characters)"
        )
    if enc == "zjson":
        body = _inflate(body, max_decompressed)
    try:
        envelope = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise CorruptFrameError(f"the agent sent invalid JSON ({error})") from None
    return decode_envelope(envelope)


def decode_envelope(envelope: object) -> Message:
    """Check an envelope's type, version and payload against the model."""
    if not isinstance(envelope, dict) or not {"type", "protocol", "payload"} <= envelope.keys():
        raise SchemaError("the agent's message is not an inspector envelope")
    version = envelope["protocol"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise SchemaError("the agent's message has no valid protocol version")
    if version != PROTOCOL_VERSION:
        raise VersionMismatchError(
            f"the agent speaks protocol {str(version)[:20]}, "
            f"this client speaks {PROTOCOL_VERSION}: "
            "install the same uvicorn-inspector version on both sides"
        )
    kind = envelope["type"]
    payload_type = _PAYLOAD_TYPES.get(kind) if isinstance(kind, str) else None
    if payload_type is None:
        raise SchemaError(f"the agent sent an unknown message type {str(kind)[:40]!r}")
    try:
        payload: Any = codec.from_json_dict(payload_type, envelope["payload"])
    except ModelError as error:
        raise SchemaError(f"the agent sent a malformed {kind}: {error}") from None
    except RecursionError:
        raise SchemaError(f"the agent sent a malformed {kind}: nested too deeply") from None
    return Message(type=kind, payload=payload)


def _refuse_constant(name: str) -> NoReturn:
    # json.loads accepts NaN and Infinity, which JSON does not have: a snapshot holding one
    # could not be saved again (allow_nan=False) and breaks arithmetic on durations.
    raise ValueError(f"{name} is not a JSON number")


def _inflate(body: str, max_decompressed: int) -> str:
    try:
        compressed = base64.b64decode(body.encode("ascii"), validate=True)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, max_decompressed)
    except (binascii.Error, zlib.error, UnicodeEncodeError, ValueError):
        raise CorruptFrameError("the agent sent a corrupt compressed frame") from None
    if inflater.unconsumed_tail:
        raise FrameTooLargeError(f"the agent's frame inflates past {max_decompressed:,} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptFrameError("the agent sent a compressed frame that is not UTF-8") from None


# --- snapshot files --------------------------------------------------------------------------

SNAPSHOT_FILE_KIND: Final = "uvicorn-inspector-snapshot"


def encode_snapshot_file(snapshot: Snapshot) -> str:
    """A saved snapshot: versioned, self-describing, pretty enough to diff.

    Always encodable as UTF-8: text is written as it is, except lone surrogates (a task named
    ``"x\\ud800y"`` arrives so from the agent), which UTF-8 cannot carry; they are written as
    JSON escapes, which read back as the same string.
    """
    document = {
        "kind": SNAPSHOT_FILE_KIND,
        "protocol": PROTOCOL_VERSION,
        "snapshot": codec.to_json_dict(snapshot),
    }
    text = json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    return escape_surrogates(text)


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def escape_surrogates(json_text: str) -> str:
    """JSON text with each lone surrogate written as a ``\\uXXXX`` escape: the same JSON value,
    now encodable as UTF-8. Outside its strings JSON text is ASCII, so every surrogate found is
    inside a string, where the escape means the same character."""
    if json_text.isascii() or _SURROGATE.search(json_text) is None:
        return json_text  # isascii is a flag check: an ASCII document costs nothing
    return _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", json_text)


def decode_snapshot_file(text: str) -> Snapshot:
    """Read a saved snapshot (or a bare snapshot envelope); raises CorruptFrameError."""
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise CorruptFrameError(f"not a snapshot file: invalid JSON ({error})") from None
    if isinstance(document, dict) and document.get("kind") == SNAPSHOT_FILE_KIND:
        if document.get("protocol") != PROTOCOL_VERSION:
            raise VersionMismatchError(
                f"snapshot file has protocol {str(document.get('protocol'))[:20]}, "
                f"this version reads {PROTOCOL_VERSION}"
            )
        try:
            return codec.from_json_dict(Snapshot, document.get("snapshot"))
        except (ModelError, RecursionError) as error:
            raise SchemaError(f"corrupt snapshot file: {error}") from None
    if isinstance(document, dict) and document.get("type") == "snapshot":
        message = decode_envelope(document)
        return typing_cast_snapshot(message.payload)
    raise CorruptFrameError("not a snapshot file (no 'kind: uvicorn-inspector-snapshot')")


def typing_cast_snapshot(payload: object) -> Snapshot:
    if not isinstance(payload, Snapshot):
        raise SchemaError("the message is not a snapshot")
    return payload
