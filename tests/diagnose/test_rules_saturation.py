"""`loop-saturated`: a loop busy in short bursts is named at the app line most samples are in."""

from __future__ import annotations

import dataclasses

from inspector.diagnose.rules.base import Settings
from inspector.diagnose.rules.saturation import loop_saturated
from inspector.model import LoopStats, StackSample
from tests.factories import app, lib, snapshot, stall

HOT = app(26, "reprice", "total += base * surcharge")
SERVER = lib("uvicorn/protocols/http/httptools_impl.py", 400, "RequestResponseCycle.send")


def busy_loop(*samples: tuple[tuple, int], idle: int = 0, **fields: object) -> LoopStats:
    return LoopStats(
        implementation="asyncio",
        lag=0.03,
        busy=0.95,
        busy_profile=tuple(StackSample(0.0, frames, count) for frames, count in samples),
        busy_idle_samples=idle,
        busy_sampled_at=1000.0,
        **fields,  # type: ignore[arg-type]
    )


def saturated(loop: LoopStats, **fields: object) -> list:
    shot = snapshot(loop=loop, **fields)
    return list(loop_saturated(dataclasses.replace(shot, taken_at=1005.0), Settings()))


def test_the_line_most_busy_samples_are_in_is_the_location() -> None:
    [finding] = saturated(busy_loop(((HOT,), 30), ((SERVER,), 6), idle=4))
    assert finding.severity == "warning" and finding.location == HOT
    assert "36 of 40 samples (90%)" in finding.detail
    assert "30 of 36" in finding.detail
    assert "95% of a CPU" in finding.detail


def test_a_loop_busy_in_the_server_itself_is_capacity_said_as_info() -> None:
    [finding] = saturated(busy_loop(((SERVER,), 38), idle=2))
    assert finding.severity == "info" and finding.location is None
    assert "--workers" in finding.hint


def test_a_mostly_idle_loop_an_old_burst_or_too_few_samples_is_no_finding() -> None:
    assert saturated(busy_loop(((HOT,), 10), idle=30)) == []
    assert saturated(busy_loop(((HOT,), 5))) == []
    old = dataclasses.replace(busy_loop(((HOT,), 40)), busy_sampled_at=100.0)
    assert saturated(old) == []


def test_a_line_that_also_stalled_the_loop_is_left_to_loop_blocked() -> None:
    blocked = stall(1, 0.3, (HOT,))
    assert saturated(busy_loop(((HOT,), 40)), stalls=(blocked,)) == []


def test_time_in_a_library_an_app_line_calls_is_info_that_names_the_line() -> None:
    caller = app(43, "thumbnail", "response = await client.get(url)")
    httpx_work = lib("httpcore/_async/http11.py", 120, "AsyncHTTP11Connection._send_event")
    [finding] = saturated(busy_loop(((caller, httpx_work), 36), idle=4))
    assert finding.severity == "info" and finding.location == caller
    assert "the libraries and the server it calls" in finding.detail


def test_standard_library_work_called_by_the_app_line_counts_as_its_own() -> None:
    caller = app(30, "export", "payload = json.dumps(report)")
    encoder = dataclasses.replace(lib("x", 1, "x"), file="/usr/lib/python3.11/json/encoder.py")
    [finding] = saturated(busy_loop(((caller, encoder), 30), ((SERVER,), 8), idle=2))
    assert finding.severity == "warning" and finding.location == caller
