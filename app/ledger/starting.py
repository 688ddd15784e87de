"""Starting an attempt: the statements behind `transitions.begin_attempt`.

The common case is one statement (PostgreSQL) or one transaction (SQLite); `begin_slow`
settles the rare rest under the row's lock: a job with no row yet, finished, leased,
cancelled or out of attempts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.ledger import core_statements as core
from app.ledger import leases
from app.ledger.execute import transaction
from app.models import Job
from app.models import JobState
from app.observability.ledger_trace import current_trace_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    """One delivery's request to start its job's next attempt, under a lease until `lease`."""

    job_id: str
    task: str
    queue: str
    worker: str | None
    args: dict[str, Any]
    max_attempts: int
    now: datetime
    lease: datetime

    @property
    def owner(self) -> str:
        return leases.owner(self.worker)


def start_row(conn: Connection, start: Start, prior: Any = None) -> int | None:
    """Start the next attempt of a row that may run (SQLite, or PostgreSQL under the row's
    lock); None when the row may not run now. Taking over a `started` job whose lease
    expired ends its previous attempt as lost (that attempt's row is written now). `prior`:
    the row as the caller already read it (state, attempts, worker, started_at)."""
    if prior is None:
        prior = conn.execute(core.PRIOR_ATTEMPT, {"p_id": start.job_id}).first()
    params = {
        "p_id": start.job_id,
        "p_queue": start.queue,
        "p_worker": start.worker,
        "p_owner": start.owner,
        "p_now": start.now,
        "p_lease": start.lease,
    }
    row = conn.execute(core.START, params).first()
    if row is None:
        return None
    if prior is not None and prior.state == JobState.STARTED:
        _end_lost(conn, start.job_id, prior, start.now)
    number: int = row[0]
    return number


def begin_slow(engine: Engine, start: Start) -> int | None:
    """The row is missing, finished, cancelled, leased or out of attempts: settle which."""
    job_id, now = start.job_id, start.now
    try:
        with transaction(engine) as conn:
            job = conn.execute(core.JOB_FOR_UPDATE, {"p_id": job_id}).first()
            if job is None:
                return _insert_started(conn, start)
            state = JobState(job.state)
            if state.terminal:
                return None
            if state == JobState.STARTED and job.lease_expires_at > now:
                log.info(
                    "job %s is running under %s's lease; not running it", job_id, job.lease_owner
                )
                return None
            if job.cancel_requested_at is not None:
                _settle(conn, job, job_id, JobState.CANCELLED, None, None, now)
                return None
            if job.attempts >= job.max_attempts:
                _settle(
                    conn,
                    job,
                    job_id,
                    JobState.FAILED,
                    "TooManyAttempts",
                    f"job was delivered {job.attempts} times without finishing (its worker "
                    "died or it kept failing); not running it again. Fix the cause and "
                    f"POST /api/v1/jobs/{job_id}/retry.",
                    now,
                )
                return None
            # The row changed between the two statements (a retry re-queued it): we hold its
            # lock now, so this start cannot race.
            return start_row(conn, start, prior=job)
    except IntegrityError:
        # Another delivery of the same message created the row first.
        return None


def _insert_started(conn: Connection, start: Start) -> int:
    conn.execute(
        insert(Job),
        {
            "id": start.job_id,
            "task": start.task,
            "queue": start.queue,
            "args": start.args,
            "state": JobState.STARTED,
            "attempts": 1,
            "max_attempts": max(1, start.max_attempts),
            "worker": start.worker,
            "lease_owner": start.owner,
            "lease_expires_at": start.lease,
            "published_at": start.now,
            "trace_id": current_trace_id(),
            "created_at": start.now,
            "started_at": start.now,
            "updated_at": start.now,
        },
    )
    return 1


def _settle(
    conn: Connection,
    job: Any,
    job_id: str,
    state: JobState,
    error_type: str | None,
    error_message: str | None,
    now: datetime,
) -> None:
    """End a job that will not run again (the GIVE_UP or cancel transitions), row locked."""
    values: dict[str, Any] = {
        "state": state,
        "finished_at": now,
        "updated_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
        "published_at": now,
    }
    if error_type is not None:
        values.update(error_type=error_type, error_message=error_message)
    conn.execute(update(Job).where(Job.id == job_id).values(values))
    if JobState(job.state) == JobState.STARTED:
        _end_lost(conn, job_id, job, now)


def _end_lost(conn: Connection, job_id: str, job: Any, now: datetime) -> None:
    """The row of the attempt `job` (a row read from `jobs`) was running, ended as lost."""
    core.end_attempt(
        conn,
        job_id,
        number=job.attempts,
        worker=job.worker,
        started_at=job.started_at,
        now=now,
    )
