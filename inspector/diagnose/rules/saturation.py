"""`loop-saturated`: the loop is busy all the time in short bursts, none long enough to stall.

Every request waits behind the work queued before it, so latency grows with load while no
single call is slow enough to be a `loop-blocked` finding. The agent samples the loop thread in
short bursts while it is busy; the line of the application that most of those samples are in
is the code to make cheaper or move off the loop.
"""

from __future__ import annotations

from collections.abc import Iterable

from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import (
    classify_samples,
    innermost_application_frame,
    is_application_frame,
    most_common_frame,
)
from inspector.diagnose.rules.base import Settings, quoted_code, seconds, where
from inspector.frame_kinds import classify, module_name
from inspector.model import Frame, LoopStats, Snapshot

MIN_SAMPLES = 10
BUSY_SHARE = 0.7
"""Share of a burst's samples that must find the loop working (not waiting for I/O)."""
APP_SHARE = 0.25
"""Share of the busy samples in application code for the finding to be a warning."""
FRESH = 60.0
"""Seconds a burst stays evidence: an older one says how the loop was, not how it is."""
RECENT_LAG = 10.0
LOOP_MACHINERY = ("asyncio", "concurrent", "threading", "selectors")
"""Standard-library modules that are the loop and its threads, not work an app line asked for."""
HINT = (
    "No single call holds the loop long, but together they keep it from answering: every "
    "request waits behind the work queued before it. Make the hot code cheaper (cache, batch, "
    "smaller payloads), move CPU work off the loop (`await asyncio.to_thread(...)`, or a "
    "process pool for pure-Python work), or run more workers (`--workers N`)."
)
CAPACITY_HINT = (
    "The time goes to serving requests themselves (the server, the framework, serialization), "
    "not to one line of yours: this worker is at capacity. Run more workers (`--workers N`) or "
    "more instances, and keep responses small."
)


def loop_saturated(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    loop = snapshot.loop
    if loop is None or not loop.busy_profile or loop.busy_sampled_at is None:
        return
    if snapshot.taken_at - loop.busy_sampled_at > FRESH:
        return
    profile = loop.busy_profile
    busy = sum(sample.count for sample in profile)
    total = busy + loop.busy_idle_samples
    if total < MIN_SAMPLES or busy / total < BUSY_SHARE:
        return
    weights = [sample.count for sample in profile]
    lines = [innermost_application_frame(sample.frames) for sample in profile]
    own = [_own_work(sample.frames) for sample in profile]
    location = most_common_frame(own, weights)
    at_location = _samples_at(own, weights, location)
    warning = location is not None and at_location / busy >= APP_SHARE
    if not warning:
        location = most_common_frame(lines, weights)
        at_location = _samples_at(lines, weights, location)
    if location is not None and _already_a_stall(snapshot, location.location):
        return
    hot = [sample.frames for sample, line in zip(profile, own, strict=True) if line == location]
    blocking = classify_samples(hot) if warning and hot else None
    doing = f" ({blocking.what})" if blocking is not None else ""
    share = f"{round(100 * busy / total)}%"
    cpu = (
        f" The loop thread used {round(100 * loop.busy)}% of a CPU over the last 5 s."
        if (loop.busy is not None)
        else ""
    )
    lag = _recent_lag(loop, snapshot.taken_at)
    lag_text = f"; its lag reached {seconds(lag)}" if lag else ""
    if warning and location is not None:
        spent = (
            f" Most of the busy samples ({at_location} of {busy}) were at "
            f"{where(location, snapshot)}{quoted_code(location)}{doing}."
        )
    elif location is not None:
        spent = (
            f" The app line most of them ({at_location} of {busy}) passed through is "
            f"{where(location, snapshot)}{quoted_code(location)}, but the time itself went to "
            "the libraries and the server it calls, not to code that line runs."
        )
    else:
        spent = " Most of that time was in the server and framework, not in one line of the app."
    yield Finding(
        kind="loop-saturated",
        severity="warning" if warning else "info",
        title=(
            f"Event loop saturated: busy {share} of the time in short bursts"
            + (f", most at {location.function}" if warning and location is not None else "")
        ),
        detail=(
            f"The loop was found working in {busy} of {total} samples ({share}), in bursts too "
            f"short to pass the {seconds(loop.stall_threshold)} stall threshold{lag_text}.{cpu}"
            f"{spent}"
        ),
        hint=HINT if warning else CAPACITY_HINT,
        location=location,
        related=tuple(
            dict.fromkeys(line for line in lines if line is not None and line != location)
        )[:3],
        count=busy,
    )


def _samples_at(lines: list[Frame | None], weights: list[int], location: Frame | None) -> int:
    if location is None:
        return 0
    return sum(
        n
        for line, n in zip(lines, weights, strict=True)
        if line is not None and line.location == location.location
    )


def _own_work(frames: tuple[Frame, ...]) -> Frame | None:
    """The app line whose own work a sample is in: the innermost application frame when the
    sample is in it, or in the standard library it called directly (json, re, zlib); None
    when the time is in a library's or the server's code (an HTTP client, the framework)."""
    for index in range(len(frames) - 1, -1, -1):
        frame = frames[index]
        if is_application_frame(frame):
            callee = frames[index + 1] if index + 1 < len(frames) else None
            if callee is None or _is_plain_stdlib(callee):
                return frame
            return None
    return None


def _is_plain_stdlib(frame: Frame) -> bool:
    """Standard-library work (not the loop's own machinery, not an installed package)."""
    if classify(frame.file) != "stdlib":
        return False
    module = module_name(frame.file) or ""
    return module.split(".")[0] not in LOOP_MACHINERY


def _already_a_stall(snapshot: Snapshot, location: str) -> bool:
    """The same line also made the loop stall: the `loop-blocked` finding says it better."""
    for stall in snapshot.stalls:
        lines = [innermost_application_frame(sample.frames) for sample in stall.samples]
        found = most_common_frame(lines, [sample.count for sample in stall.samples])
        if found is not None and found.location == location and stall.duration > 0:
            return True
    return False


def _recent_lag(loop: LoopStats, now: float) -> float:
    recent = [lag for at, lag in loop.lag_series if now - at <= RECENT_LAG]
    return max(recent, default=loop.lag)
