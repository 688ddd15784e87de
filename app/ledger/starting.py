"""Starting an attempt: the statements behind `transitions.begin_attempt`.

The common case is one statement (PostgreSQL) or one transaction (SQLite); `begin_slow`
settles the rare rest under the row's lock: a job with no row yet, finished, leased,
cancelled or out of attempts.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.ledger import leases
from app.ledger import statements as st
from app.ledger.execute import is_postgres
from app.ledger.execute import transaction
from app.models import Job
from app.models import JobState
from app.observability.ledger_trace import current_trace_id

log = logging.getLogger(__name__)


def start_params(
    job_id: str, queue: str, worker: str | None, owner: str, now: datetime, lease: datetime
) -> dict[str, Any]:
    return {
        "p_id": job_id,
        "p_queue": queue,
        "p_worker": worker,
        "p_owner": owner,
        "p_now": now,
        "p_lease": lease,
    }


def start_sqlite(
    conn: Connection,
    job_id: str,
    queue: str,
    worker: str | None,
    owner: str,
    now: datetime,
    lease: datetime,
) -> int | None:
    row = conn.execute(st.START, start_params(job_id, queue, worker, owner, now, lease)).first()
    if row is None:
        return None
    number: int = row[0]
    if number > 1:
        close_attempt(conn, job_id, now, "lost", "WorkerLost", st.LOST_MESSAGE)
    conn.execute(
        st.INSERT_ATTEMPT, {"p_id": job_id, "p_number": number, "p_worker": worker, "p_now": now}
    )
    return number


def close_attempt(
    conn: Connection,
    job_id: str,
    now: datetime,
    outcome: str,
    error_type: str | None,
    error_message: str | None,
) -> None:
    conn.execute(
        st.CLOSE_OPEN_ATTEMPT,
        {
            "p_id": job_id,
            "p_now": now,
            "p_outcome": outcome,
            "p_error_type": error_type,
            "p_error_message": error_message,
        },
    )


def begin_slow(
    engine: Engine,
    job_id: str,
    task: str,
    queue: str,
    worker: str | None,
    args: dict[str, Any],
    max_attempts: int,
    now: datetime,
    lease: datetime,
) -> int | None:
    """The row is missing, finished, cancelled, leased or out of attempts: settle which."""
    owner = leases.owner(worker)
    try:
        with transaction(engine) as conn:
            job = conn.execute(st.JOB_FOR_UPDATE, {"p_id": job_id}).first()
            if job is None:
                return _insert_started(
                    conn, job_id, task, queue, worker, args, max_attempts, now, lease
                )
            state = JobState(job.state)
            if state.terminal:
                return None
            if state == JobState.STARTED and job.lease_expires_at > now:
                log.info(
                    "job %s is running under %s's lease; not running it", job_id, job.lease_owner
                )
                return None
            if job.cancel_requested_at is not None:
                _settle(conn, job_id, JobState.CANCELLED, None, None, now)
                return None
            if job.attempts >= job.max_attempts:
                _settle(
                    conn,
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
            if is_postgres(engine):
                row = conn.execute(
                    st.START, start_params(job_id, queue, worker, owner, now, lease)
                ).first()
                if row is None:
                    return None
                if row[0] > 1:
                    close_attempt(conn, job_id, now, "lost", "WorkerLost", st.LOST_MESSAGE)
                conn.execute(
                    st.INSERT_ATTEMPT,
                    {"p_id": job_id, "p_number": row[0], "p_worker": worker, "p_now": now},
                )
                number: int = row[0]
                return number
            return start_sqlite(conn, job_id, queue, worker, owner, now, lease)
    except IntegrityError:
        # Another delivery of the same message created the row first.
        return None


def _insert_started(
    conn: Connection,
    job_id: str,
    task: str,
    queue: str,
    worker: str | None,
    args: dict[str, Any],
    max_attempts: int,
    now: datetime,
    lease: datetime,
) -> int:
    conn.execute(
        insert(Job),
        {
            "id": job_id,
            "task": task,
            "queue": queue,
            "args": args,
            "state": JobState.STARTED,
            "attempts": 1,
            "max_attempts": max(1, max_attempts),
            "worker": worker,
            "lease_owner": leases.owner(worker),
            "lease_expires_at": lease,
            "published_at": now,
            "trace_id": current_trace_id(),
            "created_at": now,
            "started_at": now,
            "updated_at": now,
        },
    )
    conn.execute(
        st.INSERT_ATTEMPT, {"p_id": job_id, "p_number": 1, "p_worker": worker, "p_now": now}
    )
    return 1


def _settle(
    conn: Connection,
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
    close_attempt(conn, job_id, now, "lost", "WorkerLost", st.LOST_MESSAGE)
