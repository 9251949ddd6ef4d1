"""The wire protocol as a client reads it: round trips, golden bytes, and refusals.

Golden files under ``golden/`` hold encoded messages exactly as they travel. A change to the
wire shows up in review as a diff of those files. After an intended change, regenerate them with
``INSPECTOR_UPDATE_GOLDEN=1 pytest tests/client/test_protocol.py`` and review the diff.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import zlib
from pathlib import Path

import pytest

from inspector import protocol
from inspector.model import ProcessInfo, Snapshot
from inspector.protocol import (
    BEGIN,
    END,
    CorruptFrameError,
    FrameReader,
    FrameTooLargeError,
    ProtocolError,
    VersionMismatchError,
)
from tests.factories import NOW

from . import factories

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("INSPECTOR_UPDATE_GOLDEN") == "1"

MESSAGES = {
    "hello": ("hello", factories.hello()),
    "snapshot": ("snapshot", factories.rich_snapshot()),
    "result": ("result", factories.result()),
    "error": ("error", factories.error()),
}


def body_of(frame: str) -> str:
    assert frame.startswith(BEGIN) and frame.endswith(END)
    return frame[len(BEGIN) : -len(END)]


def frame_of(enc: str, body: str) -> str:
    return f"{enc}:{len(body)}:{body}"


def golden(name: str, text: str) -> str:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path.read_text(encoding="utf-8")


# --- round trips and golden bytes ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
@pytest.mark.parametrize("enc", ["json", "zjson"])
def test_every_message_type_round_trips(name: str, enc: str) -> None:
    kind, payload = MESSAGES[name]
    frame = protocol.encode_message(kind, payload, enc)  # type: ignore[arg-type]
    [body] = FrameReader().feed("monitor >>> " + frame + "\r\n\x1b[?2004h")
    message = protocol.decode_frame(body)
    assert message.type == kind
    assert message.payload == payload


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_encoded_messages_match_the_golden_files(name: str) -> None:
    kind, payload = MESSAGES[name]
    frame = protocol.encode_message(kind, payload)  # type: ignore[arg-type]
    assert frame == golden(f"{name}.frame", frame)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_golden_files_still_decode(name: str) -> None:
    """An agent of this protocol version in the field sends exactly these bytes."""
    kind, payload = MESSAGES[name]
    text = (GOLDEN / f"{name}.frame").read_text(encoding="utf-8")
    [body] = FrameReader().feed(text)
    message = protocol.decode_frame(body)
    assert (message.type, message.payload) == (kind, payload)


def test_snapshot_file_matches_golden_and_round_trips() -> None:
    snapshot = factories.rich_snapshot()
    text = protocol.encode_snapshot_file(snapshot)
    assert text == golden("snapshot-file.json", text)
    assert protocol.decode_snapshot_file(text) == snapshot
    document = json.loads(text)
    assert document["kind"] == "uvicorn-inspector-snapshot"
    assert document["protocol"] == protocol.PROTOCOL_VERSION


def test_snapshot_file_accepts_a_bare_snapshot_envelope() -> None:
    snapshot = factories.rich_snapshot()
    envelope = body_of(protocol.encode_message("snapshot", snapshot)).split(":", 2)[2]
    assert protocol.decode_snapshot_file(envelope) == snapshot


def test_frames_are_found_in_any_chunking() -> None:
    frame = protocol.encode_message("result", factories.result())
    stream = "\x1b[?2004l" + frame + "\r\n\x1b[?2004hmonitor >>> " + frame + "\r\n"
    for size in (1, 2, 3, 7, 19, 20, 21, 64):
        reader = FrameReader()
        bodies = []
        for start in range(0, len(stream), size):
            bodies += reader.feed(stream[start : start + size])
        assert [protocol.decode_frame(b).payload for b in bodies] == [factories.result()] * 2
        assert not reader.in_frame


def test_text_outside_frames_is_kept_short_for_messages() -> None:
    reader = FrameReader()
    reader.feed("x" * 100_000)
    reader.feed("No such command 'inspector-hello'.\r\n" + "y" * 30)
    assert len(reader.discarded) <= 4096
    assert "No such command" in reader.discarded


# --- refusals ------------------------------------------------------------------------------

VALID = body_of(protocol.encode_message("result", factories.result()))
VALID_JSON = VALID.split(":", 2)[2]


def envelope(**changes: object) -> str:
    document = json.loads(VALID_JSON)
    document.update(changes)
    return frame_of("json", json.dumps(document))


@pytest.mark.parametrize(
    ("frame", "error", "words"),
    [
        ("", CorruptFrameError, "malformed frame header"),
        ("json", CorruptFrameError, "malformed frame header"),
        ("yaml:2:{}", CorruptFrameError, "malformed frame header"),
        ("json:x:{}", CorruptFrameError, "malformed length"),
        ("json:-2:{}", CorruptFrameError, "malformed length"),
        ("json:1234567890123:{}", CorruptFrameError, "malformed length"),
        ("json:10:{}", CorruptFrameError, "truncated (2 of 10 characters)"),
        (VALID[:-5], CorruptFrameError, "truncated"),
        (frame_of("json", "{not json"), CorruptFrameError, "invalid JSON"),
        (frame_of("json", "[]"), CorruptFrameError, "not an inspector envelope"),
        (frame_of("json", '{"type":"result"}'), CorruptFrameError, "not an inspector envelope"),
        (envelope(protocol="1"), CorruptFrameError, "no valid protocol version"),
        (envelope(protocol=True), CorruptFrameError, "no valid protocol version"),
        (envelope(protocol=2), VersionMismatchError, "speaks protocol 2"),
        (envelope(protocol=0), VersionMismatchError, "install the same uvicorn-inspector"),
        (envelope(type="shutdown"), CorruptFrameError, "unknown message type 'shutdown'"),
        (envelope(type=["result"]), CorruptFrameError, "unknown message type"),
        (envelope(payload={"ok": "yes", "message": "x"}), CorruptFrameError, "malformed result"),
        (envelope(payload={"ok": True}), CorruptFrameError, "missing field 'message'"),
        (envelope(type="snapshot"), CorruptFrameError, "malformed snapshot"),
        (frame_of("json", "[" * 100_000 + "]" * 100_000), CorruptFrameError, ""),
        (frame_of("zjson", "not base64!"), CorruptFrameError, "corrupt compressed frame"),
        (
            frame_of("zjson", base64.b64encode(b"not zlib").decode()),
            CorruptFrameError,
            "corrupt compressed frame",
        ),
        (
            frame_of("zjson", base64.b64encode(zlib.compress(b"\xff\xfe")).decode()),
            CorruptFrameError,
            "not UTF-8",
        ),
    ],
)
def test_malformed_frames_are_refused_with_a_typed_error(
    frame: str, error: type[ProtocolError], words: str
) -> None:
    with pytest.raises(error) as caught:
        protocol.decode_frame(frame)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_compressed_bomb_is_refused() -> None:
    bomb = base64.b64encode(zlib.compress(b" " * 2_000_000, 9)).decode()
    with pytest.raises(FrameTooLargeError, match="inflates past 1,000,000 bytes"):
        protocol.decode_frame(frame_of("zjson", bomb), max_decompressed=1_000_000)


def test_oversized_frame_is_refused_before_it_is_complete() -> None:
    reader = FrameReader(max_chars=1000)
    reader.feed(BEGIN + "json:5000:" + "x" * 900)
    with pytest.raises(FrameTooLargeError, match="larger than 1,000 characters"):
        reader.feed("x" * 200)
    # The reader recovers: the next frame is read normally.
    frame = protocol.encode_message("result", factories.result())
    assert reader.feed("@@INSPECTOR-END@@\x1e" + frame) == [body_of(frame)]


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("", CorruptFrameError, "invalid JSON"),
        ("[1, 2]", CorruptFrameError, "not a snapshot file"),
        ('{"kind": "something-else"}', CorruptFrameError, "not a snapshot file"),
        (
            '{"kind": "uvicorn-inspector-snapshot", "protocol": 9, "snapshot": {}}',
            VersionMismatchError,
            "snapshot file has protocol 9",
        ),
        (
            '{"kind": "uvicorn-inspector-snapshot", "protocol": 1, "snapshot": {"taken_at": 1}}',
            CorruptFrameError,
            "missing field 'process'",
        ),
        ('{"type": "snapshot", "protocol": 1, "payload": 5}', CorruptFrameError, "malformed"),
        (
            '{"type": "result", "protocol": 1, "payload": {"ok": true, "message": ""}}',
            CorruptFrameError,
            "not a snapshot",
        ),
    ],
)
def test_bad_snapshot_files_are_refused(text: str, error: type[ProtocolError], words: str) -> None:
    with pytest.raises(error) as caught:
        protocol.decode_snapshot_file(text)
    assert words in str(caught.value)


def test_unknown_fields_from_a_newer_agent_are_ignored() -> None:
    snapshot = Snapshot(process=ProcessInfo(pid=1), taken_at=1.0)
    document = json.loads(protocol.encode_snapshot_file(snapshot))
    document["snapshot"]["future_field"] = {"anything": [1, 2]}
    document["snapshot"]["process"]["also_new"] = True
    assert protocol.decode_snapshot_file(json.dumps(document)) == snapshot


def test_length_made_of_non_ascii_digits_is_a_protocol_error() -> None:
    """'²' passes str.isdigit() but int() refuses it: the decoder must not leak ValueError."""
    with pytest.raises(CorruptFrameError):
        protocol.decode_frame("json:²:{}")


def test_non_finite_numbers_are_refused() -> None:
    """JSON has no NaN; a peer that sends one must not get past the decoder: encoding the
    snapshot again (``dump FILE --format json``) refuses it."""
    body = '{"type": "result", "protocol": 1, "payload": {"ok": true, "message": "x", "n": NaN}}'
    with pytest.raises(CorruptFrameError):
        protocol.decode_frame(frame_of("json", body))
    snapshot_text = protocol.encode_snapshot_file(factories.rich_snapshot()).replace(
        '"lag": 0.0004', '"lag": NaN'
    )
    with pytest.raises(CorruptFrameError):
        protocol.decode_snapshot_file(snapshot_text)


SNAPSHOT_BODY = body_of(protocol.encode_message("snapshot", factories.rich_snapshot()))
SAVED = protocol.encode_snapshot_file(factories.rich_snapshot())
TAKEN_AT = f'"taken_at": {NOW}'


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("1e400", "inf"),
        ("-1e400", "-inf"),
        ("-1e18", "-1e+18"),
        ("1" * 400, "an integer of 1326 bits"),
    ],
    ids=["1e400", "-1e400", "-1e18", "400 digits"],
)
def test_a_corrupt_time_is_refused_naming_the_field(number: str, shown: str) -> None:
    """JSON reads 1e400 as inf, which `parse_constant` never sees: the model refuses it."""
    message = f"$.taken_at: expected a time between 1970 and 3000, got {shown}"
    assert TAKEN_AT in SAVED
    with pytest.raises(CorruptFrameError) as caught:
        protocol.decode_snapshot_file(SAVED.replace(TAKEN_AT, f'"taken_at": {number}'))
    assert str(caught.value) == f"corrupt snapshot file: {message}"
    wire_text = f'"taken_at":{NOW}'
    assert wire_text in SNAPSHOT_BODY
    body = SNAPSHOT_BODY.split(":", 2)[2].replace(wire_text, f'"taken_at":{number}')
    with pytest.raises(CorruptFrameError) as caught:
        protocol.decode_frame(frame_of("json", body))
    assert str(caught.value) == f"the agent sent a malformed snapshot: {message}"


def test_an_integer_json_cannot_hold_is_a_protocol_error() -> None:
    """Python refuses to read an integer of more than 4300 digits: ValueError, not a crash."""
    with pytest.raises(CorruptFrameError, match="invalid JSON"):
        protocol.decode_snapshot_file(SAVED.replace(TAKEN_AT, f'"taken_at": {"9" * 5000}'))


@pytest.mark.parametrize("text", ["x\ud800y", "\udcff", "\ud83d", "é\udfff—"])
def test_lone_surrogates_are_saved_as_escapes_and_read_back_the_same(text: str) -> None:
    """A task may be named with a lone surrogate (the agent sends it as the escape \\ud800):
    saving writes the escape, so the file is UTF-8 and reads back with the same name."""
    snapshot = factories.rich_snapshot()
    named = dataclasses.replace(snapshot.tasks[0], name=text)
    snapshot = dataclasses.replace(snapshot, tasks=(named, *snapshot.tasks[1:]))
    frame = protocol.encode_message("snapshot", snapshot)
    received = protocol.decode_frame(body_of(frame)).payload
    assert received.tasks[0].name == text
    saved = protocol.encode_snapshot_file(received)
    escaped = "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in text)
    assert f'"name": "{escaped}"' in saved
    raw = saved.encode("utf-8")  # no surrogate is left raw
    assert protocol.decode_snapshot_file(raw.decode("utf-8")) == received


def test_text_other_than_surrogates_is_saved_as_it_is() -> None:
    assert protocol.escape_surrogates('{"a": "é — ✓"}') == '{"a": "é — ✓"}'
    assert protocol.escape_surrogates('{"a": "é\ud800"}') == '{"a": "é\\ud800"}'


def test_bytes_that_are_not_utf8_in_a_compressed_frame_are_a_protocol_error() -> None:
    text = b'{"type":"result","protocol":1,"payload":{"ok":true,"message":"x"}}'
    body = base64.b64encode(zlib.compress(text.replace(b"x", b"\xc3\x28"))).decode()
    with pytest.raises(CorruptFrameError, match="not UTF-8"):
        protocol.decode_frame(frame_of("zjson", body))


def test_replacement_characters_from_a_garbled_stream_decode_as_text() -> None:
    """The telnet layer reads invalid UTF-8 as U+FFFD: inside a string it is just text."""
    body = '{"type":"result","protocol":1,"payload":{"ok":true,"message":"x\ufffd(\ufffd"}}'
    assert protocol.decode_frame(frame_of("json", body)).payload.message == "x\ufffd(\ufffd"
    with pytest.raises(CorruptFrameError, match="invalid JSON"):
        protocol.decode_frame(frame_of("json", body.replace(":true", ":\ufffd")))
