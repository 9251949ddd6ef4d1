"""`loop-blocked`: what held the event loop, where, for which request, and how to fix it."""

from __future__ import annotations

import pytest

from inspector.model import LoopStats
from tests.diagnose.factories import LOOP_RUNNER, findings, loop_stack
from tests.factories import app, lib, snapshot, stall, std

SLEEP = app(14, "block", "time.sleep(2)")
REQUESTS = (
    app(22, "call_api", "return requests.get(URL, timeout=30)"),
    lib("requests/api.py", 73, "get"),
    std("socket.py", 706, "readinto", "return self._sock.recv_into(b)"),
)
DB = (app(33, "list_items", "return conn.execute('SELECT * FROM items').fetchall()"),)
CPU = (
    app(41, "fib", "return fib(n - 1) + fib(n - 2)"),
    app(41, "fib", "return fib(n - 1) + fib(n - 2)"),
)

CASES = [
    # (id, frames, duration, location line, words in title, words in hint)
    ("sleep", (SLEEP,), 2.0, 14, "time.sleep", "await asyncio.sleep"),
    ("blocking http", REQUESTS, 0.5, 22, "requests", "asyncio.to_thread"),
    ("sync db", DB, 0.3, 33, "database", "async driver"),
    ("cpu", CPU, 1.5, 41, "CPU-bound code in fib", "process pool"),
]


@pytest.mark.parametrize(
    ("frames", "duration", "line", "title_words", "hint_words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_kind_of_blocking_is_located_and_explained(
    frames: tuple, duration: float, line: int, title_words: str, hint_words: str
) -> None:
    snap = snapshot(
        stalls=(stall(1, duration, loop_stack(*frames), request_label="GET /block", task_id=9),)
    )
    [finding] = findings(snap, "loop-blocked")
    assert finding.location is not None
    assert (finding.location.file, finding.location.line) == ("/srv/shop/app.py", line)
    assert title_words in finding.title
    assert "GET /block" in finding.title
    assert finding.request == "GET /block"
    assert hint_words in finding.hint
    assert finding.task_ids == (9,)
    assert finding.severity == ("critical" if duration >= 1 else "warning")


def test_stalls_at_one_place_are_grouped_with_count_and_total() -> None:
    stalls = tuple(
        stall(i, 0.4, loop_stack(SLEEP), request_label="GET /block") for i in range(1, 6)
    ) + (stall(9, 0.2, loop_stack(*DB), request_label="GET /items"),)
    result = findings(snapshot(stalls=stalls), "loop-blocked")
    assert [f.count for f in result] == [5, 1]
    grouped = result[0]
    assert grouped.location == SLEEP
    assert "5 times" in grouped.title and "2.0 s in all" in grouped.title
    assert grouped.severity == "warning"  # none reached a second


def test_an_ongoing_stall_says_blocked_right_now_and_is_critical() -> None:
    snap = snapshot(
        stalls=(stall(1, 0.3, loop_stack(SLEEP), ongoing=True, request_label="GET /block"),)
    )
    [finding] = findings(snap, "loop-blocked")
    assert "is blocked right now" in finding.title
    assert finding.severity == "critical"


def test_a_stall_in_a_background_task_names_the_job() -> None:
    snap = snapshot(
        stalls=(
            stall(
                1,
                3.0,
                loop_stack(app(70, "send_report", "time.sleep(3)")),
                background_label="send_report",
            ),
        )
    )
    [finding] = findings(snap, "loop-blocked")
    assert "background task send_report" in finding.title
    assert finding.request is None
    assert "plain `def` runs in the threadpool" in finding.hint


def test_blocked_right_now_without_a_stall_record_uses_the_loop_thread_stack() -> None:
    snap = snapshot(
        loop=LoopStats(implementation="uvloop", lag=2.5, stalled_for=2.5),
        loop_thread_stack=loop_stack(SLEEP),
        current_task_id=3,
    )
    [finding] = findings(snap, "loop-blocked")
    assert finding.location == SLEEP
    assert "right now" in finding.title


def test_serialization_in_the_framework_has_no_app_line_but_says_what_it_was() -> None:
    frames = (
        lib("fastapi/routing.py", 155, "serialize_response"),
        lib("fastapi/encoders.py", 300, "jsonable_encoder"),
    )
    snap = snapshot(stalls=(stall(1, 0.8, loop_stack(*frames), request_label="GET /huge"),))
    [finding] = findings(snap, "loop-blocked")
    assert finding.location is None
    assert "serialization" in finding.title
    assert "fastapi/encoders.py" in finding.related[0].file
    assert "return a smaller payload" in finding.hint


def test_a_stall_with_no_sample_still_reports_the_request() -> None:
    snap = snapshot(stalls=(stall(1, 0.15, request_label="GET /x"),))
    [finding] = findings(snap, "loop-blocked")
    assert finding.location is None
    assert "No stack was sampled" in finding.detail


def test_callers_are_related_frames() -> None:
    stack = loop_stack(app(5, "endpoint", "return helper()"), app(9, "helper", "time.sleep(1)"))
    [finding] = findings(snapshot(stalls=(stall(1, 1.0, stack),)), "loop-blocked")
    assert finding.location == app(9, "helper", "time.sleep(1)")
    assert app(5, "endpoint", "return helper()") in finding.related


def test_no_stalls_no_finding() -> None:
    assert findings(snapshot(), "loop-blocked") == []


def test_a_lag_while_the_loop_was_idle_is_information_about_the_machine() -> None:
    idle_asyncio = loop_stack()[: len(loop_stack()) - 3] + (
        std("selectors.py", 468, "select", "fd_event_list = self._selector.poll(timeout, max_ev)"),
    )
    idle_uvloop = loop_stack()[:5]  # uvloop's loop is C: only the runner shows
    snap = snapshot(stalls=(stall(1, 0.3, idle_asyncio), stall(2, 0.2, idle_uvloop, ongoing=True)))
    [finding] = findings(snap, "loop-blocked")
    assert finding.severity == "info"
    assert finding.count == 2
    assert "while idle" in finding.title
    assert finding.location is None


def test_short_stalls_without_application_code_are_information() -> None:
    frames = (lib("uvicorn/protocols/http/httptools_impl.py", 150, "data_received"),)
    [finding] = findings(snapshot(stalls=(stall(1, 0.15, loop_stack(*frames)),)), "loop-blocked")
    assert finding.severity == "info"
    [long] = findings(snapshot(stalls=(stall(1, 1.5, loop_stack(*frames)),)), "loop-blocked")
    assert long.severity == "critical"


def test_blocking_during_startup_is_information() -> None:
    startup = (
        lib(
            "uvicorn/lifespan/on.py",
            86,
            "LifespanOn.main",
            "await app(scope, self.receive, self.send)",
        ),
        lib(
            "starlette/routing.py",
            693,
            "Router.lifespan",
            "async with self.lifespan_context(app) as state:",
        ),
        app(137, "lifespan", "shop = Shop(reports_db=build_reports_db())"),
        app(108, "build_reports_db", "connection.executemany("),
    )
    snap = snapshot(stalls=(stall(1, 0.4, LOOP_RUNNER + startup, task_name="Task-2"),))
    [finding] = findings(snap, "loop-blocked")
    assert finding.severity == "info"
    assert finding.location == startup[-1]
    assert "lifespan" in finding.title
    assert "only delays startup" in finding.hint


def test_a_stall_is_located_where_it_spent_most_of_its_time() -> None:
    """The agent's profile: a stack seen in 30 samples outweighs one seen first but once."""
    import dataclasses

    brief = loop_stack(app(10, "prepare", "rows = load()"), std("json/encoder.py", 1, "encode"))
    long = loop_stack(app(20, "report", "time.sleep(2)"), std("time.py", 1, "sleep"))
    profiled = stall(1, 0.4, brief, long)
    first, second = profiled.samples
    profiled = dataclasses.replace(profiled, samples=(first, dataclasses.replace(second, count=30)))
    [finding] = findings(snapshot(stalls=(profiled,)), "loop-blocked")
    assert finding.location is not None and finding.location.line == 20


ACCESS_LOG = (
    lib(
        "uvicorn/protocols/http/httptools_impl.py",
        493,
        "RequestResponseCycle.send",
        "self.access_logger.info(...)",
    ),
    std("logging/__init__.py", 1489, "Logger.info", "self._log(INFO, msg, args, **kwargs)"),
    std("logging/__init__.py", 1634, "Logger._log", "self.handle(record)"),
    std("logging/__init__.py", 1028, "Handler.handle", "self.emit(record)"),
    std(
        "logging/__init__.py",
        1113,
        "StreamHandler.emit",
        "stream.write(msg + self.terminator)",
    ),
)


def test_a_stall_in_a_library_says_which_call_blocked_and_what_called_it() -> None:
    stack = LOOP_RUNNER + ACCESS_LOG
    snap = snapshot(stalls=(stall(1, 1.2, stack, request_label="GET /recommendations"),))
    [finding] = findings(snap, "loop-blocked")
    assert finding.location is None
    assert finding.title == (
        "Event loop blocked 1.2 s by logging (a handler writing a record) in GET /recommendations"
    )
    assert (
        "No application code was on the sampled stack: the loop thread was blocked in logging "
        "(a handler writing a record) at logging/__init__.py:1113 in StreamHandler.emit, "
        "entered through Logger.info, called from uvicorn/protocols/http/httptools_impl.py:493 "
        "in RequestResponseCycle.send."
    ) in finding.detail
    assert ACCESS_LOG[0] in finding.related


def test_a_library_stall_whose_samples_reach_no_caller_says_so() -> None:
    stack = LOOP_RUNNER + ACCESS_LOG[1:]
    snap = snapshot(stalls=(stall(1, 1.2, stack, request_label="GET /recommendations"),))
    [finding] = findings(snap, "loop-blocked")
    assert "entered through Logger.info; the samples show nothing further out." in finding.detail
