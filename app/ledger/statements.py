"""One prebuilt statement per transition, per dialect.

PostgreSQL: plain SQL on the driver, one round trip per transition; a transition that also
writes the attempt row does so in a data-modifying CTE of the same statement. Building and
cache-keying SQLAlchemy statements costs more CPU than running them (bench/throughput.py).
`%(sync)s` ('on' or 'off') is synchronous_commit for that statement's own transaction.

SQLite (the embedded, single-machine path): SQLAlchemy Core statements, built once; a
transition that writes two tables runs two statements in one transaction.

Every WHERE clause on `state` comes from the transition table (app/ledger/states.py).
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
from app.ledger.states import sources_sql
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

_PG_SYNC = "set_config('synchronous_commit', %(sync)s, true) IS NOT NULL"

# --- PostgreSQL ------------------------------------------------------------------------

# The common start: one UPDATE of the job row, which holds the running attempt (number,
# worker, start) until it ends; its `job_attempts` row is written then, by the statement
# that ends it (the finish, the recovery loop, a takeover). Taking over a `started` job
# whose lease expired is left to `starting.begin_slow`, under the row's lock, which also
# writes the lost attempt's row. Writing the row at start too (an INSERT and its foreign-key
# check, then an UPDATE at the end) took start + finish from 0.60 to 0.76 ms per job,
# interleaved in one process against the local PostgreSQL.
PG_START = f"""
UPDATE jobs SET state = '{target(T.START).value}', attempts = attempts + 1,
  worker = %(worker)s, queue = %(queue)s, started_at = %(now)s, finished_at = NULL,
  updated_at = %(now)s, lease_owner = %(owner)s, lease_expires_at = %(lease)s,
  published_at = COALESCE(published_at, %(now)s)
WHERE id = %(id)s AND state IN ({sources_sql(T.START)}) AND state <> '{JobState.STARTED.value}'
  AND attempts < max_attempts AND cancel_requested_at IS NULL AND {_PG_SYNC}
RETURNING attempts
"""

# An attempt's row, written when it ends; ON CONFLICT finishes a row that a worker of an
# older release opened at start, and never rewrites an ended one.
_PG_END_ATTEMPT = """
  INSERT INTO job_attempts
    (job_id, number, worker, started_at, finished_at, outcome, error_type, error_message)
  SELECT {source}.id, {source}.attempts, {source}.worker, {source}.started_at, %(now)s,
    '{outcome}', {error_type}, {error_message}
  FROM {source} WHERE {source}.attempts >= 1 AND {source}.started_at IS NOT NULL
  ON CONFLICT (job_id, number) DO UPDATE SET finished_at = excluded.finished_at,
    outcome = excluded.outcome, error_type = excluded.error_type,
    error_message = excluded.error_message
  WHERE job_attempts.finished_at IS NULL
"""

_PG_FINISH_SET = {
    T.SUCCEED: "result = %(result)s, error_type = NULL, error_message = NULL, "
    "finished_at = %(now)s",
    T.FAIL: "error_type = %(error_type)s, error_message = %(error_message)s, finished_at = %(now)s",
    T.RETRY_LATER: "error_type = COALESCE(%(error_type)s, error_type), "
    "error_message = COALESCE(%(error_message)s, error_message), eta = %(eta)s",
    T.CANCEL_RUNNING: "finished_at = %(now)s",
}


def _pg_finish(transition: T) -> str:
    # `number` NULL: the worker's main process records a child it killed (hard time limit)
    # and does not know the attempt; the current one is the child's.
    attempt = _PG_END_ATTEMPT.format(
        source="f",
        outcome=OUTCOMES[transition],
        error_type="%(error_type)s",
        error_message="%(error_message)s",
    )
    return f"""
WITH f AS (
  UPDATE jobs SET state = '{target(transition).value}', {_PG_FINISH_SET[transition]},
    updated_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL
  WHERE id = %(id)s AND state IN ({sources_sql(transition)})
    AND (%(number)s::int IS NULL OR attempts = %(number)s::int)
  RETURNING id, attempts, worker, started_at
), attempt AS ({attempt})
SELECT attempts FROM f WHERE {_PG_SYNC}
"""


# A success ends the job for good (no transition leaves `succeeded`), so its attempt stays in
# the job row (number, worker, start, finish) and `Job.attempt_log` reads it from there: one
# UPDATE, no attempt row. Writing that row took start + finish from 0.66 to 0.76 ms per job
# (interleaved in one process against the local PostgreSQL, 2,400 jobs a side).
PG_SUCCEED = f"""
UPDATE jobs SET state = '{target(T.SUCCEED).value}', {_PG_FINISH_SET[T.SUCCEED]},
  updated_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND state IN ({sources_sql(T.SUCCEED)})
  AND (%(number)s::int IS NULL OR attempts = %(number)s::int) AND {_PG_SYNC}
RETURNING attempts
"""

PG_FINISH: dict[T, str] = {
    transition: PG_SUCCEED if transition == T.SUCCEED else _pg_finish(transition)
    for transition in _PG_FINISH_SET
}

# The transitions whose attempt keeps a `job_attempts` row: those after which the job row
# moves on (a retry, a requeue of a failed or cancelled job, a next attempt).
KEEPS_ATTEMPT_ROW = frozenset(_PG_FINISH_SET) - {T.SUCCEED}

PG_PROGRESS = f"""
UPDATE jobs SET progress_current = %(current)s, progress_total = %(total)s,
  progress_message = %(message)s, updated_at = %(now)s
WHERE id = %(id)s AND {_PG_SYNC}
RETURNING cancel_requested_at IS NOT NULL
"""

PG_CANCEL_REQUESTED = "SELECT cancel_requested_at IS NOT NULL FROM jobs WHERE id = %(id)s"

# One statement per worker process per interval, for all of its running jobs.
PG_HEARTBEAT = f"""
UPDATE jobs SET lease_expires_at = %(lease)s
WHERE lease_owner = %(owner)s AND state = 'started' AND {_PG_SYNC}
"""

# A child the worker's main process saw die: its lease need not run out first.
PG_EXPIRE = """
UPDATE jobs SET lease_expires_at = %(now)s
WHERE id = %(id)s AND state = 'started' AND lease_expires_at > %(now)s
"""

_REQUEUED = "j.cancel_requested_at IS NULL AND j.attempts < j.max_attempts"
_GIVEN_UP = "j.cancel_requested_at IS NULL AND j.attempts >= j.max_attempts"
_RETURNED = "id, state, task, queue, args, eta, priority, notify_to"
_PG_LOST_ATTEMPT = _PG_END_ATTEMPT.format(
    source="moved",
    outcome=OUTCOMES[T.RECOVER],
    error_type="'WorkerLost'",
    error_message="%(lost_message)s",
)
PG_RECOVER = f"""
WITH expired AS (
  SELECT id FROM jobs WHERE state = 'started' AND lease_expires_at < %(now)s
  ORDER BY lease_expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), moved AS (
  UPDATE jobs j SET
    state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN '{target(T.CANCEL_RUNNING).value}'
      WHEN j.attempts < j.max_attempts THEN '{target(T.RECOVER).value}'
      ELSE '{target(T.GIVE_UP).value}' END,
    error_type = CASE WHEN {_GIVEN_UP} THEN 'WorkerLost' ELSE j.error_type END,
    error_message = CASE WHEN {_GIVEN_UP} THEN %(give_up_message)s ELSE j.error_message END,
    finished_at = CASE WHEN {_REQUEUED} THEN NULL ELSE %(now)s END,
    published_at = CASE WHEN {_REQUEUED} THEN NULL ELSE j.published_at END,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = %(now)s
  FROM expired WHERE j.id = expired.id AND j.state = 'started'
  RETURNING j.id, j.state, j.task, j.queue, j.args, j.eta, j.priority, j.notify_to, j.attempts,
    j.worker, j.started_at
), closed AS ({_PG_LOST_ATTEMPT})
SELECT {_RETURNED} FROM moved
"""

# The outbox relay claims intents by moving their clock: a concurrent relay skips them,
# and one whose publish failed is due again after the grace period.
PG_CLAIM = f"""
UPDATE jobs SET updated_at = %(now)s
WHERE id IN (
  SELECT id FROM jobs WHERE published_at IS NULL AND state = 'queued' AND updated_at < %(due)s
  ORDER BY updated_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) AND published_at IS NULL AND state = 'queued' AND updated_at < %(due)s
RETURNING {_RETURNED}
"""

PG_CONFIRM = """
UPDATE jobs SET published_at = %(now)s WHERE id = ANY(%(ids)s) AND published_at IS NULL
"""


# --- SQLite (and the rare paths of both dialects) -------------------------------------


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
    """The attempt row written when an attempt ends (see _PG_END_ATTEMPT), for one dialect."""
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
