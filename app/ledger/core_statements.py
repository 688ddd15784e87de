"""The ledger's SQLAlchemy Core statements, built once: SQLite's (the embedded,
single-machine path) and the rare paths of both dialects (a takeover under the row's lock,
the attempt row a recovery or takeover writes).

On SQLite a transition that writes two tables runs two statements in one transaction. Every
WHERE clause on `state` comes from the transition table (app/ledger/states.py); PostgreSQL's
hot statements are plain SQL, in app/ledger/statements.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter
from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from app.ledger.states import OUTCOMES
from app.ledger.states import Transition as T
from app.ledger.states import target
from app.models import Job
from app.models import JobAttempt
from app.models import JobState

LOST_MESSAGE = (
    "the worker process running this attempt stopped renewing its lease (it died or lost "
    "the database); the job was published again as its next attempt"
)
GIVE_UP_MESSAGE = (
    "every attempt of this job was lost with its worker (killed, or out of memory); not "
    "running it again. Fix the cause and POST /api/v1/jobs/{id}/retry."
)


def _p(name: str, column: str | None = None, table: Any = Job) -> BindParameter[Any]:
    """A bound parameter typed like the column it stands for (`p_` keeps SET names free)."""
    return bindparam(f"p_{name}", type_=table.__table__.c[column or name].type)


def _states(transition: T) -> list[JobState]:
    from app.ledger.states import TABLE

    return sorted(TABLE[transition].sources)


START = (
    update(Job)
    .where(
        Job.id == _p("id"),
        Job.state.in_(_states(T.START)),
        or_(Job.state != JobState.STARTED, Job.lease_expires_at < _p("now", "started_at")),
        Job.attempts < Job.max_attempts,
        Job.cancel_requested_at.is_(None),
    )
    .values(
        state=target(T.START),
        attempts=Job.attempts + 1,
        worker=_p("worker"),
        queue=_p("queue"),
        started_at=_p("now", "started_at"),
        finished_at=None,
        updated_at=_p("now", "started_at"),
        lease_owner=_p("owner", "lease_owner"),
        lease_expires_at=_p("lease", "lease_expires_at"),
        published_at=func.coalesce(Job.published_at, _p("now", "started_at")),
    )
    .returning(Job.attempts)
)


def _end_attempt(build: Any) -> Any:
    """The attempt row written when an attempt ends (statements._PG_END_ATTEMPT), per dialect."""
    statement = build(JobAttempt).values(
        job_id=_p("id", "job_id", JobAttempt),
        number=_p("number", "number", JobAttempt),
        worker=_p("worker", "worker", JobAttempt),
        started_at=_p("started_at", "started_at", JobAttempt),
        finished_at=_p("now", "finished_at", JobAttempt),
        outcome=_p("outcome", "outcome", JobAttempt),
        error_type=_p("error_type", "error_type", JobAttempt),
        error_message=_p("error_message", "error_message", JobAttempt),
    )
    ended = ("finished_at", "outcome", "error_type", "error_message")
    return statement.on_conflict_do_update(
        index_elements=[JobAttempt.job_id, JobAttempt.number],
        set_={name: statement.excluded[name] for name in ended},
        where=JobAttempt.finished_at.is_(None),
    )


END_ATTEMPT = {"postgresql": _end_attempt(pg_insert), "sqlite": _end_attempt(sqlite_insert)}


def end_attempt(
    conn: Connection,
    job_id: str,
    *,
    number: int,
    worker: str | None,
    started_at: datetime,
    now: datetime,
    outcome: str = OUTCOMES[T.RECOVER],
    error_type: str | None = "WorkerLost",
    error_message: str | None = LOST_MESSAGE,
) -> None:
    """Write the row of the job's attempt `number` (the job row's `attempts`, `worker`,
    `started_at` while it ran) as ended; by default as lost with its worker."""
    conn.execute(
        END_ATTEMPT[conn.dialect.name],
        {
            "p_id": job_id,
            "p_number": number,
            "p_worker": worker,
            "p_started_at": started_at,
            "p_now": now,
            "p_outcome": outcome,
            "p_error_type": error_type,
            "p_error_message": error_message,
        },
    )


_FINISH_VALUES: dict[T, dict[str, Any]] = {
    T.SUCCEED: {
        "result": _p("result"),
        "error_type": None,
        "error_message": None,
        "finished_at": _p("now", "finished_at"),
    },
    T.FAIL: {
        "error_type": _p("error_type"),
        "error_message": _p("error_message"),
        "finished_at": _p("now", "finished_at"),
    },
    T.RETRY_LATER: {
        "error_type": func.coalesce(_p("error_type"), Job.error_type),
        "error_message": func.coalesce(_p("error_message"), Job.error_message),
        "eta": _p("eta"),
    },
    T.CANCEL_RUNNING: {"finished_at": _p("now", "finished_at")},
}

FINISH = {
    transition: update(Job)
    .where(
        Job.id == _p("id"),
        Job.state.in_(_states(transition)),
        or_(_p("number", "attempts").is_(None), Job.attempts == _p("number", "attempts")),
    )
    .values(
        state=target(transition),
        updated_at=_p("now", "updated_at"),
        lease_owner=None,
        lease_expires_at=None,
        **values,
    )
    .returning(Job.attempts, Job.worker, Job.started_at)
    for transition, values in _FINISH_VALUES.items()
}

PROGRESS = (
    update(Job)
    .where(Job.id == _p("id"))
    .values(
        progress_current=_p("current", "progress_current"),
        progress_total=_p("total", "progress_total"),
        progress_message=_p("message", "progress_message"),
        updated_at=_p("now", "updated_at"),
    )
    .returning(Job.cancel_requested_at)
)

CANCEL_REQUESTED = select(Job.cancel_requested_at).where(Job.id == _p("id"))

HEARTBEAT = (
    update(Job)
    .where(Job.lease_owner == _p("owner", "lease_owner"), Job.state == JobState.STARTED)
    .values(lease_expires_at=_p("lease", "lease_expires_at"))
)

EXPIRE = (
    update(Job)
    .where(
        Job.id == _p("id"),
        Job.state == JobState.STARTED,
        Job.lease_expires_at > _p("now", "lease_expires_at"),
    )
    .values(lease_expires_at=_p("now", "lease_expires_at"))
)

EXPIRED = (
    select(Job.id)
    .where(Job.state == JobState.STARTED, Job.lease_expires_at < _p("now", "lease_expires_at"))
    .order_by(Job.lease_expires_at)
    .limit(bindparam("p_limit"))
)

_OUTBOX_COLUMNS = (
    Job.id,
    Job.state,
    Job.task,
    Job.queue,
    Job.args,
    Job.eta,
    Job.priority,
    Job.notify_to,
)

CLAIM = (
    update(Job)
    .where(
        Job.id.in_(
            select(Job.id)
            .where(
                Job.published_at.is_(None),
                Job.state == JobState.QUEUED,
                Job.updated_at < _p("due", "updated_at"),
            )
            .order_by(Job.updated_at)
            .limit(bindparam("p_limit"))
        ),
        Job.published_at.is_(None),
        Job.state == JobState.QUEUED,
        Job.updated_at < _p("due", "updated_at"),
    )
    .values(updated_at=_p("now", "updated_at"))
    .returning(*_OUTBOX_COLUMNS)
)

CONFIRM = (
    update(Job)
    .where(Job.id.in_(bindparam("p_ids", expanding=True)), Job.published_at.is_(None))
    .values(published_at=_p("now", "published_at"))
)

# What a takeover needs of the attempt it ends (SQLite's start, or PostgreSQL's under lock).
PRIOR_ATTEMPT = select(Job.state, Job.attempts, Job.worker, Job.started_at).where(
    Job.id == _p("id")
)

JOB_FOR_UPDATE = (
    select(
        Job.state,
        Job.attempts,
        Job.max_attempts,
        Job.lease_owner,
        Job.lease_expires_at,
        Job.cancel_requested_at,
        Job.worker,
        Job.started_at,
    )
    .where(Job.id == _p("id"))
    .with_for_update()
)

SENTRY_EVENT = update(Job).where(Job.id == _p("id")).values(sentry_event_id=_p("sentry_event_id"))
