"""Background tasks that failed, never ran, or were skipped, tied to request and call site."""

from __future__ import annotations

import dataclasses

from tests.diagnose.factories import findings
from tests.factories import app, error, exception_event, job, lib, request, snapshot

ADD_AUDIT = app(30, "signup", "background_tasks.add_task(write_audit, user.id)")
ADD_EMAIL = app(31, "signup", "background_tasks.add_task(send_welcome, user.email)")
RAISE = app(88, "write_audit", "raise ValueError('audit store down')")
STARLETTE = lib(
    "starlette/background.py", 36, "__call__", "await self.func(*self.args, **self.kwargs)"
)
SIGNUP = request(5, "POST", "/signup", route="/signup", phase="done", status=200, age=0.2)


def failed_audit(job_id: int = 1, request_id: int = 5):
    return job(
        job_id,
        "write_audit",
        "failed",
        request_id=request_id,
        call_site=ADD_AUDIT,
        error_info=error("ValueError", "audit store down", STARLETTE, RAISE),
    )


def test_a_failed_background_task_points_at_the_raise_and_its_add_task() -> None:
    snap = snapshot(background=(failed_audit(),), recent_requests=(SIGNUP,))
    [finding] = findings(snap, "background-failed")
    assert finding.location == RAISE
    assert finding.related == (ADD_AUDIT,)
    assert finding.request == "POST /signup"
    assert "ValueError: audit store down" in finding.title
    assert finding.severity == "warning"


def test_failures_at_the_same_place_are_grouped() -> None:
    jobs = tuple(failed_audit(i) for i in range(1, 8))
    [finding] = findings(snapshot(background=jobs, recent_requests=(SIGNUP,)), "background-failed")
    assert finding.count == 7
    assert "7 times" in finding.title


def test_a_failure_event_already_told_by_a_job_is_not_repeated() -> None:
    event = exception_event(
        1,
        "background-failed",
        error("ValueError", "audit store down", STARLETTE, RAISE),
        location=RAISE,
    )
    snap = snapshot(background=(failed_audit(),), exceptions=(event,), recent_requests=(SIGNUP,))
    assert len(findings(snap, "background-failed")) == 1


def test_a_failure_event_without_a_job_record_is_reported() -> None:
    event = exception_event(
        1,
        "background-failed",
        error("KeyError", "'x'", RAISE),
        location=RAISE,
        request_label="POST /signup",
        task_name="write_audit",
    )
    [finding] = findings(snapshot(exceptions=(event,)), "background-failed")
    assert finding.location == RAISE
    assert finding.request == "POST /signup"


def test_a_job_dropped_because_the_response_had_its_own_background() -> None:
    dropped = job(
        2,
        "send_welcome",
        "dropped",
        request_id=5,
        call_site=ADD_EMAIL,
        reason="the returned Response had its own background, which replaced these tasks",
    )
    [finding] = findings(
        snapshot(background=(dropped,), recent_requests=(SIGNUP,)), "background-not-run"
    )
    assert finding.location == ADD_EMAIL
    assert "never ran" in finding.title
    assert "replaced these tasks" in finding.detail
    assert "`background=`" in finding.hint
    assert finding.request == "POST /signup"


def test_a_dropped_job_names_where_the_response_background_that_replaced_it_was_queued() -> None:
    own = app(80, "signup", "background=BackgroundTask(track_signup, shop, email),")
    dropped = job(
        2,
        "send_welcome",
        "dropped",
        request_id=5,
        call_site=ADD_EMAIL,
        reason="the endpoint returned a Response with its own background (track_signup)",
    )
    ran = job(3, "track_signup", "done", request_id=5, call_site=own)
    [finding] = findings(
        snapshot(background=(dropped, ran), recent_requests=(SIGNUP,)), "background-not-run"
    )
    assert finding.location == ADD_EMAIL and finding.related == (own,)
    assert "The response's own background was queued at app.py:80" in finding.detail


def test_a_job_dropped_because_the_endpoint_raised_names_the_raise() -> None:
    raised = app(64, "send_campaign", "raise HTTPException(409, 'already sent')")
    dropped = dataclasses.replace(
        job(2, "deliver", "dropped", call_site=ADD_AUDIT, reason="the endpoint raised X"),
        cause=raised,
    )
    [finding] = findings(snapshot(background=(dropped,)), "background-not-run")
    assert finding.location == ADD_AUDIT and finding.related == (raised,)
    assert "The exception was raised at app.py:64" in finding.detail


def test_a_job_dropped_because_the_endpoint_raised() -> None:
    dropped = job(
        2, "write_audit", "dropped", call_site=ADD_AUDIT, reason="the endpoint raised HTTPException"
    )
    [finding] = findings(snapshot(background=(dropped,)), "background-not-run")
    assert "try/finally" in finding.hint


def test_add_task_given_a_coroutine_is_flagged_at_the_call() -> None:
    call = app(40, "notify", "background_tasks.add_task(send_email(user))")
    flagged = job(
        3,
        "send_email",
        "failed",
        call_site=call,
        flagged="add_task() got a coroutine object, not a function",
    )
    result = findings(snapshot(background=(flagged,)), "background-not-run")
    assert [f.location for f in result] == [call]
    assert "add_task(send_email, user)" in result[0].hint


def test_a_job_skipped_after_an_earlier_one_raised_names_the_culprit() -> None:
    skipped = job(2, "send_welcome", "skipped", request_id=5, call_site=ADD_EMAIL)
    snap = snapshot(background=(failed_audit(), skipped), recent_requests=(SIGNUP,))
    [finding] = findings(snap, "background-skipped")
    assert finding.location == ADD_EMAIL
    assert "write_audit raised before it" in finding.title
    assert "ValueError: audit store down" in finding.detail
    assert finding.related == (RAISE,)


def test_jobs_that_ran_are_not_findings() -> None:
    ok = (
        job(1, "write_audit", "done", call_site=ADD_AUDIT),
        job(2, "send_welcome", "running", call_site=ADD_EMAIL),
        job(3, "x", "queued"),
    )
    assert findings(snapshot(background=ok)) == []


def test_add_task_of_a_coroutine_is_one_finding_not_four() -> None:
    """The agent sees it four ways: a flagged job that failed with TypeError, a failure event,
    and Python's never-awaited warning. A person needs one finding at the add_task line."""
    call = app(386, "subscribe", "background.add_task(sync_to_crm(shop, email))")
    in_starlette = error("TypeError", "the first argument must be callable", STARLETTE)
    flagged = job(
        5,
        "sync_to_crm",
        "failed",
        request_id=5,
        call_site=call,
        error_info=in_starlette,
        flagged="add_task() got a coroutine object, not a function",
    )
    failure = exception_event(
        1, "background-failed", in_starlette, location=call, task_name="sync_to_crm"
    )
    warning = exception_event(
        2,
        "coroutine-never-awaited",
        error("RuntimeWarning", "coroutine 'sync_to_crm' was never awaited"),
        location=call,
    )
    snap = snapshot(background=(flagged,), exceptions=(failure, warning), recent_requests=(SIGNUP,))
    [finding] = findings(snap)
    assert finding.kind == "background-not-run"
    assert finding.location == call
