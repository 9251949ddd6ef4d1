"""`background-failed`, `background-not-run`, `background-skipped`: BackgroundTasks gone wrong.

Starlette runs a response's background tasks after the response is sent, one after another,
and reports a failure only as a bare "Exception in ASGI application". These rules tie each
failure, drop and skip back to the request and to the `add_task` line that queued it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from inspector.diagnose.findings import Finding
from inspector.diagnose.locate import innermost_application_frame
from inspector.diagnose.rules.base import (
    Settings,
    distinct_frames,
    examples,
    plural,
    request_label_for,
    where,
)
from inspector.model import BackgroundJob, Frame, Snapshot

FAILED_HINT = (
    "Catch and log exceptions inside the background function (or retry there): after the "
    "response is sent nobody else will see them, and the tasks queued after this one on the "
    "same response are skipped."
)
DROPPED_RESPONSE_HINT = (
    "The endpoint returned a Response with its own `background=`, which replaces the "
    "BackgroundTasks injected into the endpoint. Put every task into one BackgroundTasks and "
    "pass that as the Response's `background`, or don't set `background` on the Response."
)
DROPPED_RAISED_HINT = (
    "Background tasks run only after a successful response; when the endpoint raises (even "
    "HTTPException) they are discarded. Run cleanup that must happen in `try/finally` or in a "
    "dependency with `yield`."
)
DROPPED_HINT = "The queued task never ran; see the reason above."
FLAGGED_HINT = (
    "Pass the function and its arguments: `background_tasks.add_task(send_email, user)`, not "
    "`add_task(send_email(user))` (which passes a coroutine or a result, not a callable)."
)
SKIPPED_HINT = (
    "Starlette runs a response's background tasks one after another and stops at the first "
    "exception. Catch exceptions inside each task, so one failure does not cancel the rest."
)


def _group(
    jobs: Iterable[BackgroundJob], key_of: Callable[[BackgroundJob], Hashable]
) -> list[list[BackgroundJob]]:
    groups: dict[Hashable, list[BackgroundJob]] = {}
    for job in jobs:
        groups.setdefault(key_of(job), []).append(job)
    return list(groups.values())


def _frame_key(frame: Frame | None) -> tuple[str, int] | None:
    return (frame.file, frame.line) if frame is not None else None


def _requests(jobs: list[BackgroundJob], snapshot: Snapshot) -> list[str]:
    return [label for j in jobs if (label := request_label_for(snapshot, j.request_id))]


def background_failed(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """Background jobs that raised, and failure events no job record accounts for."""
    failed = [job for job in snapshot.background if job.state == "failed" and not job.flagged]
    # A failure event repeats a job record when it has the job's error type and one of its lines
    # (or the job's function): those are told once, by the job.
    seen: set[tuple[object, ...]] = set()
    for job in snapshot.background:
        if job.error is not None:
            seen.add((job.error.type, job.function))
            for frame in (innermost_application_frame(job.error.traceback), job.call_site):
                if frame is not None:
                    seen.add((job.error.type, _frame_key(frame)))

    def raise_site(job: BackgroundJob) -> Frame | None:
        return innermost_application_frame(job.error.traceback) if job.error else None

    for jobs in _group(
        failed, lambda j: (j.function, _frame_key(raise_site(j)), _frame_key(j.call_site))
    ):
        first = jobs[0]
        location = raise_site(first)
        error = first.error
        err = f"{error.type}: {error.message}" if error else "an exception"
        requests = _requests(jobs, snapshot)
        after = f" after {examples(requests)}" if requests else ""
        count = len(jobs)
        title = f"Background task {first.function} failed{after}: {err}"
        if count > 1:
            title = f"Background task {first.function} failed {count} times: {err}"
        sentences = [
            f"{plural(count, 'run')} of {first.function}{after} raised {err}"
            + (f" at {where(location, snapshot)}." if location else ".")
        ]
        if first.call_site is not None:
            sentences.append(f"It was queued at {where(first.call_site, snapshot)}.")
        sentences.append(
            "The response had already been sent, so the client never knew; Starlette logs it "
            'only as "Exception in ASGI application", without the request.'
        )
        yield Finding(
            kind="background-failed",
            severity="warning",
            title=title,
            detail=" ".join(sentences),
            hint=FAILED_HINT,
            location=location or first.call_site,
            related=(first.call_site,) if first.call_site is not None and location else (),
            task_ids=tuple(sorted({j.task_id for j in jobs if j.task_id is not None})),
            request=requests[0] if requests else None,
            count=count,
        )

    events = [e for e in snapshot.exceptions if e.kind == "background-failed"]
    for event in events:
        location = event.location or innermost_application_frame(event.error.traceback)
        keys = {(event.error.type, _frame_key(location)), (event.error.type, event.task_name)}
        if keys & seen:
            continue  # a job record already tells this story
        seen |= keys
        err = f"{event.error.type}: {event.error.message}"
        context = f" after {event.request_label}" if event.request_label else ""
        yield Finding(
            kind="background-failed",
            severity="warning",
            title=f"Background task {event.task_name or ''} failed{context}: {err}".replace(
                "  ", " "
            ),
            detail=(
                f"A background task raised {err}"
                + (f" at {where(location, snapshot)}" if location else "")
                + f"{context}, after the response was sent; nobody saw it."
            ),
            hint=FAILED_HINT,
            location=location,
            request=event.request_label,
            count=event.count,
        )


def background_not_run(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """Jobs dropped before they ran, and `add_task` calls given something that is not callable."""
    dropped = [job for job in snapshot.background if job.state == "dropped" and not job.flagged]
    for jobs in _group(dropped, lambda j: (_frame_key(j.call_site), j.function, j.reason)):
        first = jobs[0]
        reason = first.reason or "it was discarded before it could run"
        lowered = reason.lower()
        if "background" in lowered or "response" in lowered or "overrid" in lowered:
            hint = DROPPED_RESPONSE_HINT
        elif "rais" in lowered or "exception" in lowered or "error" in lowered:
            hint = DROPPED_RAISED_HINT
        else:
            hint = DROPPED_HINT
        requests = _requests(jobs, snapshot)
        by = f" queued by {examples(requests)}" if requests else ""
        count = len(jobs)
        title = f"Background task {first.function} never ran: {reason}"
        if count > 1:
            title = f"Background task {first.function} never ran ({count} times): {reason}"
        queued = f" at {where(first.call_site, snapshot)}" if first.call_site else ""
        instead = _ran_instead(snapshot, jobs) if hint is DROPPED_RESPONSE_HINT else ()
        replaced = (
            f" The response's own background was queued at {where(instead[0], snapshot)}."
            if instead
            else ""
        )
        if first.cause is not None:
            instead = (first.cause,)
            replaced = f" The exception was raised at {where(first.cause, snapshot)}."
        yield Finding(
            kind="background-not-run",
            severity="warning",
            title=title,
            detail=(
                f"{plural(count, 'job')} {first.function}{by} (added{queued}) never ran: "
                f"{reason}. No error was logged.{replaced}"
            ),
            hint=hint,
            location=first.call_site,
            related=distinct_frames(instead, first.call_site),
            request=requests[0] if requests else None,
            count=count,
        )

    flagged = [job for job in snapshot.background if job.flagged]
    for jobs in _group(flagged, lambda j: (_frame_key(j.call_site), j.flagged)):
        first = jobs[0]
        assert first.flagged is not None
        requests = _requests(jobs, snapshot)
        by = f" in {examples(requests)}" if requests else ""
        problem = first.flagged.split(":", 1)[0]  # "add_task() got a coroutine object, not ..."
        yield Finding(
            kind="background-not-run",
            severity="warning",
            title=f"{problem} ({first.function}): it never runs",
            detail=(
                f"{plural(len(jobs), 'call')} to add_task{by}: {first.flagged}. The job ended "
                f"{first.state}"
                + (f" ({first.reason})" if first.reason else "")
                + ", and the response still said 200."
            ),
            hint=FLAGGED_HINT,
            location=first.call_site,
            request=requests[0] if requests else None,
            count=len(jobs),
        )


def _ran_instead(snapshot: Snapshot, dropped: list[BackgroundJob]) -> tuple[Frame, ...]:
    """Where the jobs that ran in place of the dropped ones were queued (the Response's own
    `background=`): jobs of the same requests that were not dropped."""
    requests = {job.request_id for job in dropped if job.request_id is not None}
    return tuple(
        job.call_site
        for job in snapshot.background
        if job.request_id in requests and job.state != "dropped" and job.call_site is not None
    )


def background_skipped(snapshot: Snapshot, settings: Settings) -> Iterable[Finding]:
    """Jobs skipped because a job queued before them on the same response raised."""
    skipped = [job for job in snapshot.background if job.state == "skipped"]
    for jobs in _group(skipped, lambda j: (_frame_key(j.call_site), j.function)):
        first = jobs[0]
        culprit = _culprit(snapshot, first)
        requests = _requests(jobs, snapshot)
        by = f" queued by {examples(requests)}" if requests else ""
        because = (
            f"{culprit.function} raised before it"
            if culprit
            else (first.reason or "an earlier task raised")
        )
        error = culprit.error if culprit is not None else None
        err = f" ({error.type}: {error.message})" if error else ""
        queued = f" at {where(first.call_site, snapshot)}" if first.call_site else ""
        related: tuple[Frame, ...] = ()
        if culprit is not None:
            raised_at = (
                innermost_application_frame(culprit.error.traceback) if culprit.error else None
            )
            related = tuple(f for f in (raised_at or culprit.call_site,) if f is not None)
        yield Finding(
            kind="background-skipped",
            severity="warning",
            title=f"Background task {first.function} was skipped: {because}",
            detail=(
                f"{plural(len(jobs), 'job')} {first.function}{by} (added{queued}) never ran "
                f"because {because}{err}. Nothing was logged for the skipped job."
            ),
            hint=SKIPPED_HINT,
            location=first.call_site,
            related=related,
            request=requests[0] if requests else None,
            count=len(jobs),
        )


def _culprit(snapshot: Snapshot, job: BackgroundJob) -> BackgroundJob | None:
    """The job that raised before `job` on the same request."""
    if job.request_id is None:
        return None
    failed = [
        other
        for other in snapshot.background
        if other.request_id == job.request_id and other.state == "failed" and other.id != job.id
    ]
    before = [other for other in failed if other.queued_at <= job.queued_at]
    candidates = before or failed
    return candidates[-1] if candidates else None
