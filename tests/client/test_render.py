"""The text dump: what a person reading `inspector dump` must be able to find in it."""

from __future__ import annotations

import dataclasses
import re

from inspector.model import (
    AgentHealth,
    ExceptionInfo,
    Frame,
    LoopStats,
    ProcessInfo,
    RequestInfo,
    Snapshot,
    StackSample,
    Stall,
    TaskInfo,
    WaitInfo,
)
from inspector.render import render_snapshot
from tests.factories import NOW

from . import factories
from .factories import LOCK_ID

TEXT = render_snapshot(factories.rich_snapshot())


def section(title: str, text: str = TEXT) -> str:
    """The lines of one section: from its title to the next blank line."""
    match = re.search(rf"^{re.escape(title)}.*?(?=\n\n|\Z)", text, re.M | re.S)
    assert match, f"no section {title!r} in:\n{text}"
    return match.group()


def test_header_names_the_process() -> None:
    head = section("Process 4242")
    assert "Process 4242: uvicorn shop.app:app --port 8000" in head
    assert "Python 3.11.7 · uvicorn 0.54.0 · loop asyncio · app shop.app:app · worker 0" in head
    assert "up 1 h 2 min" in head
    assert "from inspector agent 0.1.0" in head
    assert "agent health: ok · probes tasks, watchdog, requests · collected in 4 ms" in head


def test_lock_waiter_names_the_holder_and_its_request() -> None:
    tasks = section("Tasks (8)")
    assert (
        f"waiting on Lock 0x{LOCK_ID:x} held by Task-12 (transfer, POST /transfer); 1 waiting"
        in tasks
    )


def test_wait_without_a_description_is_built_from_its_fields() -> None:
    snapshot = factories.rich_snapshot()
    waiter = dataclasses.replace(
        snapshot.tasks[1],
        waiting_on=WaitInfo(
            kind="lock", object_id=LOCK_ID, holder_task_ids=(12,), waiters=2, description=""
        ),
    )
    text = render_snapshot(dataclasses.replace(snapshot, tasks=(snapshot.tasks[0], waiter)))
    assert f"waiting on lock 0x{LOCK_ID:x} held by Task-12 (POST /transfer) (2 waiters)" in text


def test_await_chain_runs_down_to_the_parked_line() -> None:
    tasks = section("Tasks (8)")
    balance = tasks[tasks.index("Task-15") :]
    chain = [
        "run_asgi (uvicorn/protocols/http/h11_impl.py:411)",
        "app (fastapi/routing.py:161)",
        "balance (app.py:52)",
        "    async with ACCOUNTS_LOCK:",
        "acquire (asyncio/locks.py:114)",
    ]
    positions = [balance.index(step) for step in chain]
    assert positions == sorted(positions)


def test_stall_shows_when_how_long_where_and_for_which_request() -> None:
    stalls = section("Stalls (1, newest last)")
    assert "#3" in stalls and "2.0 s" in stalls and "in GET /block, task Task-9" in stalls
    assert "29 s before the snapshot" in stalls
    assert "first seen at +250 ms, 100 % of 2 samples" in stalls  # one stack, sampled twice
    lines = stalls.splitlines()
    innermost = lines.index(next(line for line in lines if "block (app.py:63)" in line))
    assert lines[innermost + 1].strip() == "time.sleep(2)  # blocks the loop"
    assert innermost == len(lines) - 2  # innermost frame last, then its source line


def test_loop_summary_and_lag_history() -> None:
    loop = section("Event loop")
    assert "lag 0.4 ms (stall threshold 100 ms); 3 stalls, 2.5 s stalled in total" in loop
    assert "max 2.0 s" in loop


def test_requests_show_phase_task_threads_and_a_gone_client() -> None:
    live = section("Requests in flight (3)")
    assert "#101  POST /transfer  handler  12 s  task Task-12" in live
    assert re.search(r"#102  GET /balance .*\[client gone 1.5 s ago\]", live)
    assert "in worker thread: 7001 'AnyIO worker thread'" in live
    assert "background jobs: #501, #502" in live
    recent = section("Recent requests (2, newest last)")
    assert "GET /users/7  500" in recent and "route /users/{id}" in recent
    assert "raised KeyError(7)" in recent


def test_a_finished_request_whose_task_is_gone_names_it_once() -> None:
    snapshot = factories.rich_snapshot()
    gone = dataclasses.replace(snapshot.recent_requests[0], task_id=0xDEAD)
    text = render_snapshot(dataclasses.replace(snapshot, recent_requests=(gone,)))
    line = next(line for line in text.splitlines() if line.startswith(f"  #{gone.id} "))
    assert "  task 0xdead  " in line and "task task" not in line


def test_route_latency_table() -> None:
    table = section("Latency per route")
    assert re.search(r"GET\s+/users/\{id\}\s+120\s+3\s+1 ms\s+4 ms\s+20 ms", table)


def test_background_jobs_with_error_and_reason() -> None:
    jobs = section("Background jobs (2)")
    assert "#501  send_receipt  FAILED  for GET /report (#103)  (runs in the event loop)" in jobs
    assert "queued" in jobs and "at app.py:71 in report" in jobs
    assert "SMTPError: relay refused" in jobs
    assert "send_receipt (app.py:120)" in jobs and "smtp.send(msg)" in jobs
    assert "#502  audit  DROPPED" in jobs
    assert "why: the response carried its own background task" in jobs


def test_threadpool_borrowers_and_worker_thread_stacks() -> None:
    pool = section("Threadpool (anyio)")
    assert "1 of 40 tokens borrowed, 0 waiting" in pool
    assert "loop's default executor: 1 thread (max 12), 0 queued" in pool
    assert "token held by Task-16 (GET /report) since 3.8 s before the snapshot" in pool
    threads = section("Threads (2)")
    assert "Thread 7001 'AnyIO worker thread' (anyio, busy) for GET /report (#103)" in threads
    assert "time.sleep(5)  # slow report" in threads


def test_exceptions_nobody_saw() -> None:
    events = section("Exceptions nobody saw (1)")
    assert "task-exception-unretrieved ×2  ConnectionError: upstream went away" in events
    assert "at app.py:91 in poll_forever" in events and "task poller" in events
    assert "Traceback (innermost last):" in events


def test_identical_tasks_are_folded_into_one_entry() -> None:
    tasks = section("Tasks (8)")
    assert tasks.count("job = await JOBS.get()") == 1
    assert "+ 2 more tasks with the same stack: worker-1, worker-2" in tasks


def test_running_task_comes_first_and_points_at_the_loop_thread() -> None:
    tasks = section("Tasks (8)")
    assert tasks.splitlines()[1].lstrip().startswith("Task-1  RUNNING  Server.serve")
    assert "running now: its stack is the loop thread's stack above" in tasks
    assert "Loop thread: running Task-1" in TEXT


def test_failed_task_shows_its_exception_and_creation_site() -> None:
    tasks = section("Tasks (8)")
    assert "poller  FAILED  poll_forever" in tasks
    assert "created at app.py:88 in lifespan" in tasks
    assert "exception: ConnectionError('upstream went away')" in tasks


def test_plain_aiomonitor_says_what_needs_the_agent() -> None:
    snapshot = Snapshot(
        process=ProcessInfo(pid=1),
        taken_at=NOW,
        tasks=(TaskInfo(id=1, name="Task-1", state="pending", coro="main"),),
        capabilities=("tasks", "stacks", "cancel"),
        source="aiomonitor",
    )
    text = render_snapshot(snapshot)
    for title in ("Requests", "Background jobs", "Exceptions nobody saw", "Threadpool"):
        assert f"{title}: not available without the inspector agent" in text
    assert "Event loop lag and stalls: not available without the inspector agent" in text
    assert "from plain aiomonitor" in text
    assert "no inspector agent: tasks and stacks only" in text and "agent health" not in text


def test_an_injected_agent_waiting_for_a_blocked_loop_says_so_not_no_lifecycle() -> None:
    snapshot = Snapshot(
        process=ProcessInfo(pid=1),
        taken_at=NOW,
        capabilities=("tasks", "stacks", "stalls"),
        health=AgentHealth(waiting_for_loop=("requests", "background")),
    )
    text = render_snapshot(snapshot)
    waiting = "not tracked yet: the injected agent's probe waits for the blocked loop"
    assert f"Requests: {waiting}" in text and f"Background jobs: {waiting}" in text
    assert "Threadpool: not tracked by this agent (started with --no-lifecycle" in text


def test_empty_sections_say_none_briefly() -> None:
    text = render_snapshot(Snapshot(process=ProcessInfo(pid=1), taken_at=NOW))
    assert "Requests in flight (0): none" in text
    assert "Background jobs (0): none" in text
    assert "Exceptions nobody saw (0): none" in text
    assert "Tasks (0): none" in text
    assert "Stalls" not in text and "Loop thread" not in text


def test_ongoing_stall_is_loud() -> None:
    snapshot = Snapshot(
        process=ProcessInfo(pid=1),
        taken_at=NOW,
        loop=LoopStats(implementation="uvloop", lag=3.2, stalled_for=3.2),
        stalls=(Stall(id=1, started_at=NOW - 3.2, duration=3.2, ongoing=True),),
    )
    text = render_snapshot(snapshot)
    assert "STALLED RIGHT NOW for 3.2 s" in text
    assert "ONGOING" in text and "no stack was sampled" in text
    assert "loop uvloop" in text


def test_escape_codes_from_the_target_are_shown_not_obeyed() -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J"
    snapshot = Snapshot(
        process=ProcessInfo(pid=1, argv=(evil,)),
        taken_at=NOW,
        tasks=(
            TaskInfo(
                id=1,
                name=evil,
                state="pending",
                coro=evil,
                stack=(Frame(file=evil, line=1, function=evil, code=evil),),
                waiting_on=WaitInfo(kind="event", description=evil),
            ),
        ),
    )
    text = render_snapshot(snapshot)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in text
    colored = render_snapshot(snapshot, color=True)
    assert "\x1b]0;" not in colored and "\x1b[2J" not in colored


def test_bidi_controls_c1_and_lone_surrogates_are_shown_escaped() -> None:
    """A name with U+202E would reverse the rest of the line; one with a lone surrogate made
    the print fail; a C1 CSI (U+009B) is an escape sequence on its own on some terminals."""
    evil = "txt\u202egpj.exe \x9b2J x\ud800y \u2066\u2028"
    snapshot = Snapshot(
        process=ProcessInfo(pid=1, argv=(evil,)),
        taken_at=NOW,
        tasks=(
            TaskInfo(
                id=1,
                name=evil,
                state="failed",
                coro=evil,
                exception=evil,
                stack=(Frame(file=evil, line=1, function=evil, code=evil),),
            ),
        ),
    )
    for text in (render_snapshot(snapshot), render_snapshot(snapshot, color=True)):
        text.encode("utf-8")  # what print() does: a lone surrogate raises here
        assert not any(char in text for char in "\u202e\x9b\u2066\u2028")
        assert "txt\\u202egpj.exe \\x9b2J x\\ud800y \\u2066\\u2028" in text


def test_colour_only_when_asked() -> None:
    assert "\x1b[" not in TEXT
    assert "\x1b[1mProcess 4242" in render_snapshot(factories.rich_snapshot(), color=True)


def test_odd_numbers_print_as_unknown_instead_of_failing() -> None:
    snapshot = Snapshot(
        process=ProcessInfo(pid=1, started_at=float("inf")),
        taken_at=float("nan"),
        stalls=(
            Stall(
                id=1,
                started_at=1e300,
                duration=-5.0,
                ongoing=False,
                samples=(StackSample(offset=float("-inf"), frames=()),),
            ),
        ),
        requests=(
            RequestInfo(
                id=1,
                method="GET",
                path="/",
                started_at=-1e18,
                phase="handler",
                duration=float("nan"),
            ),
        ),
    )
    text = render_snapshot(snapshot)
    assert "snapshot taken ?" in text and "up ?" in text


def test_multiline_exception_messages_keep_their_lines() -> None:
    snapshot = factories.rich_snapshot()
    event = dataclasses.replace(
        snapshot.exceptions[0],
        error=ExceptionInfo(type="ValidationError", message="2 errors\nname: missing\nage: bad"),
    )
    text = render_snapshot(dataclasses.replace(snapshot, exceptions=(event,)))
    events = section("Exceptions nobody saw (1)", text)
    assert "ValidationError: 2 errors ⏎ name: missing ⏎ age: bad" in events
    assert "\n        name: missing" in events


def test_a_stall_shows_its_profile_heaviest_stack_first() -> None:
    from inspector.model import Frame, StackSample

    brief = (Frame(file="/srv/app.py", line=10, function="prepare", code="rows = load()"),)
    long = (Frame(file="/srv/app.py", line=20, function="report", code="time.sleep(2)"),)
    snapshot = factories.rich_snapshot()
    stall = dataclasses.replace(
        snapshot.stalls[-1],
        samples=(StackSample(0.1, brief, count=2), StackSample(0.12, long, count=30)),
    )
    text = render_snapshot(dataclasses.replace(snapshot, stalls=(stall,)))
    assert text.index("report (/srv/app.py:20)") < text.index("prepare (/srv/app.py:10)")
    assert "first seen at +120 ms, 94 % of 32 samples" in text
    assert "first seen at +100 ms, 6 % of 32 samples" in text
