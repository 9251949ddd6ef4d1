"""What a person may type as a target, and the source (or the one-line error) it becomes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inspector import protocol
from inspector.client.agent_source import AgentSource
from inspector.client.file_source import FileSource
from inspector.client.source import Source
from inspector.client.target import DEFAULT_PORT, open_source, parse_address
from inspector.errors import InspectorError
from inspector.model import ProcessInfo, Snapshot


def agent_of(source: Source) -> AgentSource:
    """The AgentSource behind `source` (open_source may wrap it in a plain-aiomonitor fallback)."""
    inner = getattr(source, "active", source)
    assert isinstance(inner, AgentSource)
    return inner


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("8000", ("127.0.0.1", 8000)),
        (":8000", ("127.0.0.1", 8000)),
        ("localhost:20101", ("localhost", 20101)),
        ("10.0.0.5:20101", ("10.0.0.5", 20101)),
        ("[::1]:20101", ("::1", 20101)),
        ("[fe80::1%eth0]:9", ("fe80::1%eth0", 9)),
        (" 127.0.0.1:1 ", ("127.0.0.1", 1)),
        ("65535", ("127.0.0.1", 65535)),
    ],
)
def test_addresses(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "invalid port in '0': expected a number from 1 to 65535"),
        ("65536", "invalid port in '65536'"),
        ("host:", "invalid port in 'host:'"),
        ("host:http", "invalid port in 'host:http'"),
        ("::1", "write an IPv6 address in brackets, as [ADDRESS]:PORT"),
        ("fe80::1:8000", "write an IPv6 address in brackets"),
        ("[::1]", "invalid port in '[::1]'"),
        ("[::1", "write IPv6 as [ADDRESS]:PORT"),
        ("[::1]8000", "write IPv6 as [ADDRESS]:PORT"),
        ("myhost", "invalid target 'myhost': expected HOST:PORT, PORT, [IPv6]:PORT or a saved"),
        ("snap.json", "no such file: snap.json"),
        ("out/snap", "no such file: out/snap"),
    ],
)
def test_bad_addresses_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(InspectorError) as caught:
        parse_address(text)
    assert message in str(caught.value)
    assert caught.value.exit_status == 2


def test_default_target_is_aiomonitors_port() -> None:
    source = agent_of(open_source(None))
    assert source.address == f"127.0.0.1:{DEFAULT_PORT}" == "127.0.0.1:20101"


def test_ipv6_address_is_printed_back_in_brackets() -> None:
    assert open_source("[::1]:9").address == "[::1]:9"


def test_an_existing_file_is_a_saved_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_text(protocol.encode_snapshot_file(Snapshot(ProcessInfo(pid=1), taken_at=1.0)))
    source = open_source(str(path))
    assert isinstance(source, FileSource) and source.address == str(path)


def test_a_number_is_a_port_even_if_such_a_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "8000").write_text("{}")
    assert agent_of(open_source("8000")).port == 8000
    assert isinstance(open_source("./8000"), FileSource)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InspectorError, match="is a directory, not a snapshot file"):
        open_source(str(tmp_path))


def test_timeouts_reach_the_agent_source() -> None:
    source = agent_of(open_source("9", connect_timeout=1.5, command_timeout=4.0))
    assert (source.connect_timeout, source.command_timeout) == (1.5, 4.0)


def test_target_and_pid_together_are_refused() -> None:
    with pytest.raises(InspectorError, match="give a TARGET or --pid, not both"):
        open_source("8000", pid=1)


# --- --pid -------------------------------------------------------------------------------------


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "runtime"
    monkeypatch.setenv("INSPECTOR_RUNTIME_DIR", str(directory))
    return directory


def test_pid_resolves_through_its_registration(runtime_dir: Path) -> None:
    from inspector.registration import Registration, write_registration

    write_registration(Registration(pid=os.getpid(), ppid=os.getppid(), host="0.0.0.0", port=20199))
    source = agent_of(open_source(None, pid=os.getpid()))
    assert source.address == "127.0.0.1:20199"  # bound everywhere, reached on loopback


def test_pid_of_no_process(runtime_dir: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", "pass"]) as child:
        child.wait(timeout=10)
    with pytest.raises(InspectorError) as caught:
        open_source(None, pid=child.pid)
    assert str(caught.value) == f"no process with pid {child.pid}"


def test_pid_without_an_agent_says_so(runtime_dir: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            with pytest.raises(InspectorError) as caught:
                open_source(None, pid=child.pid)
        finally:
            child.kill()
            child.wait(timeout=10)
    message = str(caught.value)
    assert f"pid {child.pid}" in message and "agent" in message
    assert "\n" not in message
