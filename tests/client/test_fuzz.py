"""Fuzzing what a client reads from a peer or a file, and what it prints.

The contract: whatever bytes a peer sends, decoding raises nothing but `ProtocolError`
subclasses (which the client turns into one line for a person); and any valid `Snapshot`
renders as text without raising.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector import protocol
from inspector.model import Snapshot
from inspector.protocol import BEGIN, END, FrameReader, ProtocolError
from inspector.render import render_snapshot

from . import factories

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID_FRAMES = [
    protocol.encode_message("hello", factories.hello()),
    protocol.encode_message("snapshot", factories.rich_snapshot()),
    protocol.encode_message("snapshot", factories.rich_snapshot(), "zjson"),
    protocol.encode_message("result", factories.result()),
    protocol.encode_message("error", factories.error()),
]
VALID_FILE = protocol.encode_snapshot_file(factories.rich_snapshot())

# Text that is likely to matter to a frame parser, mixed with anything at all.
pieces = st.sampled_from(
    [
        BEGIN,
        END,
        BEGIN[:7],
        END[-5:],
        "json:",
        "zjson:",
        ":",
        "12",
        "²",
        "\x1e",
        "{}",
        "\r\n",
        "\x1b[?2004h",
        "NaN",
        '"type":"snapshot"',
        '"protocol":1',
    ]
)
noise = st.lists(st.one_of(pieces, st.text(max_size=30)), max_size=20).map("".join)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """`text` with a few random edits: deletions, insertions, replacements, duplications."""
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        start = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(start, min(len(text), start + 40)))
        edit = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "truncate"]))
        if edit == "delete":
            text = text[:start] + text[end:]
        elif edit == "insert":
            text = text[:start] + draw(noise) + text[start:]
        elif edit == "replace":
            text = text[:start] + draw(noise) + text[end:]
        elif edit == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        else:
            text = text[:start]
    return text


@st.composite
def structurally_mutated_file(draw: st.DrawFn) -> str:
    """A saved snapshot with one value somewhere replaced by another JSON value."""
    document: Any = json.loads(VALID_FILE)
    parent, key = None, None
    node = document
    for _ in range(draw(st.integers(1, 8))):
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            key = draw(st.integers(0, len(node) - 1))
        else:
            break
        parent, node = node, node[key]
    if parent is not None:
        parent[key] = draw(json_values)
    return json.dumps(document)


def expect_only_protocol_errors(action: Any, *args: Any) -> Any:
    try:
        return action(*args)
    except ProtocolError as error:
        assert str(error) and "\n" not in str(error)
        return None


@FUZZ
@given(chunks=st.lists(st.one_of(noise, st.sampled_from(VALID_FRAMES)), max_size=12))
def test_frame_reader_never_fails_on_any_stream(chunks: list[str]) -> None:
    reader = FrameReader(max_chars=50_000)
    for chunk in chunks:
        bodies = expect_only_protocol_errors(reader.feed, chunk) or []
        for body in bodies:
            expect_only_protocol_errors(protocol.decode_frame, body)


@FUZZ
@given(data=st.data())
def test_mutated_frames_decode_or_raise_a_protocol_error(data: st.DataObject) -> None:
    frame = data.draw(st.sampled_from(VALID_FRAMES))
    text = data.draw(mutated(frame))
    reader = FrameReader()
    for body in expect_only_protocol_errors(reader.feed, text) or []:
        expect_only_protocol_errors(protocol.decode_frame, body)
    # The body alone, as if the markers had been found around it.
    body = text.removeprefix(BEGIN).removesuffix(END)
    expect_only_protocol_errors(protocol.decode_frame, body)


@FUZZ
@given(body=noise)
def test_garbage_bodies_raise_only_protocol_errors(body: str) -> None:
    expect_only_protocol_errors(protocol.decode_frame, body)
    expect_only_protocol_errors(lambda: protocol.decode_frame(f"json:{len(body)}:{body}"))


@FUZZ
@given(
    enc=st.one_of(st.sampled_from(["json", "zjson"]), st.text(max_size=6)),
    # ASCII only here: non-ASCII digits are covered by an explicit test in test_protocol.py.
    length=st.one_of(st.integers(-5, 10**13).map(str), st.text("0123456789 +-_x", max_size=14)),
    body=st.one_of(noise, st.sampled_from([f[: -len(END)].split(":", 2)[2] for f in VALID_FRAMES])),
)
def test_any_frame_header_raises_only_protocol_errors(enc: str, length: str, body: str) -> None:
    expect_only_protocol_errors(protocol.decode_frame, f"{enc}:{length}:{body}")


@FUZZ
@given(text=st.one_of(noise, mutated(VALID_FILE), structurally_mutated_file()))
def test_snapshot_files_decode_or_raise_a_protocol_error(text: str) -> None:
    snapshot = expect_only_protocol_errors(protocol.decode_snapshot_file, text)
    if snapshot is not None:
        render_snapshot(snapshot)  # whatever decodes must print


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(snapshot=st.from_type(Snapshot), color=st.booleans())
def test_any_snapshot_renders(snapshot: Snapshot, color: bool) -> None:
    text = render_snapshot(snapshot, color=color)
    assert text.startswith(("Process", "\x1b[1mProcess"))
    if not color:
        assert "\x1b" not in text  # escape codes from the target are shown, not obeyed
