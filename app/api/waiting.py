"""Answering once a job is final: `GET /jobs/{id}?wait=` and `POST /jobs` with `Prefer: wait`.

Both follow the ledger's notifications (app/extensions/ext_notify.py), never a timer: a
waiter registers as a follower of the job, then needs the row's state only where it cannot
know it. The long-poll of a job that exists reads its state after subscribing (a change
committed before is in that read, one after arrives as a message). A submit that waits
(RFC 7240's `Prefer: wait=N`, as a client would ask a server to answer synchronously) picks
the job's id first and follows it before its message is published, so it knows the state
(`queued`, its own INSERT) and reads nothing until the job ends. Either reads the whole job
once at the end; between reads it holds no database connection.
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.api.schemas import MAX_WAIT_SECONDS
from app.extensions import ext_notify
from app.extensions.ext_database import db
from app.extensions.ext_notify import Follower
from app.extensions.ext_notify import Update
from app.ledger.execute import ledger_engine
from app.ledger.execute import once_more_if_dropped
from app.models import Job
from app.models import JobState
from app.services.jobs import JobNotFound


def _final(state: str | None) -> bool:
    return state is not None and JobState(state).terminal


def needs_read(update: Update) -> bool:
    """Whether a follower must read the row: told to, or told the job ended (the final row
    carries the result, which a notification does not)."""
    return update.reread or _final(update.state)


def load(job_id: str) -> Job | None:
    """The job with its attempts in ONE statement (a join, not a second SELECT), as it is now.

    On the ledger's engine (app/ledger/execute.py): autocommitted on PostgreSQL, and without
    the pool's pre-ping, a round trip before the one read a waiter makes once the job ended
    (a third of that read's time in a gevent API process). A connection the server dropped
    fails the read and is invalidated; the read then runs once more on a fresh one.
    """
    return once_more_if_dropped(
        lambda: db.session.get(
            Job,
            job_id,
            options=[joinedload(Job.attempt_rows)],
            populate_existing=True,
            bind_arguments={"bind": ledger_engine()},
        ),
        reset=db.session.rollback,
    )


def _state(job_id: str) -> JobState | None:
    state: JobState | None = db.session.scalar(select(Job.state).where(Job.id == job_id))
    return state


def _until_final(follower: Follower, seconds: float) -> None:
    """Wait until a message says the job ended (or to re-read it), or `seconds` passed."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if any(needs_read(update) for update in follower.wait(remaining)):
            return


def _follow(follower: Follower, state: JobState | None, deadline: float) -> Job:
    """The job once a message says it is final (re-read), or at `deadline` as it is then."""
    job = None
    while state is not None and not state.terminal:
        if deadline - time.monotonic() <= 0:
            break
        db.session.rollback()  # hold no connection while waiting
        _until_final(follower, deadline - time.monotonic())
        job = load(follower.job_id)
        state = job.state if job is not None else None
    if state is not None and job is None:
        job = load(follower.job_id)
    if job is None:
        raise JobNotFound(f"no job with id {follower.job_id!r}")
    return job


def wait_final(job_id: str, seconds: float) -> Job:
    """The job once it is final, or after `seconds` as it is then (long-poll `?wait=`).

    Statements: none more when the access check's read (app.api.access.READ_CHECKS) found
    it final; else the state alone after subscribing, then the whole job once it is final
    (or when told to re-read, or at the end of the wait).
    """
    deadline = time.monotonic() + seconds
    read = db.session.identity_map.get(db.session.identity_key(Job, job_id))
    if isinstance(read, Job) and read.state.terminal:
        return read
    with ext_notify.hub().follow(job_id) as follower:
        return _follow(follower, _state(job_id), deadline)


def wait_new(follower: Follower, seconds: float) -> Job:
    """The job `follower` has followed since before its message was published, once final
    or after `seconds`: nothing read until then (its state was its own INSERT's, `queued`)."""
    return _follow(follower, JobState.QUEUED, time.monotonic() + seconds)


def preferred_wait(values: list[str]) -> int | None:
    """The seconds of an RFC 7240 `Prefer: wait=N` (capped at MAX_WAIT_SECONDS), or None.

    A preference the server does not take, or one it cannot parse, is ignored, as the RFC
    has it: the request is then answered as without the header (a plain 202).
    """
    for header in values:
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            value = value.strip().strip('"')
            if name.strip().lower() == "wait" and value.isascii() and value.isdigit():
                return min(int(value), MAX_WAIT_SECONDS)
    return None
