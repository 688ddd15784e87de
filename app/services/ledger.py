"""Worker-side ledger transitions: a job row follows its task from start to its last state.

Every function commits its own short transaction, so what an API reader sees is never
older than the task's last transition.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from app.extensions.ext_database import db
from app.models import TERMINAL_STATES
from app.models import Job
from app.models import JobState
from app.models.base import utcnow

MAX_ERROR_CHARS = 4000


def _error_fields(exc: BaseException) -> dict[str, Any]:
    return {
        "error_type": type(exc).__name__,
        "error_message": (str(exc) or repr(exc))[:MAX_ERROR_CHARS],
    }


def begin_attempt(
    job_id: str,
    *,
    task: str,
    queue: str,
    worker: str | None,
    args: dict[str, Any],
    max_attempts: int,
) -> bool:
    """Mark the job started and count the attempt; False means the task must not run.

    A job that is cancelled or already finished is never run again, whatever the broker
    redelivers. Jobs that did not come through the API (periodic jobs, sub-tasks) get
    their row here.
    """
    now = utcnow()
    # The common case in one round trip; the UPDATE locks the row against a concurrent cancel.
    if _start(job_id, queue=queue, worker=worker, max_attempts=max_attempts, now=now):
        db.session.commit()
        return True
    return _begin_slow(
        job_id, task=task, queue=queue, worker=worker, args=args, max_attempts=max_attempts, now=now
    )


def _start(
    job_id: str, *, queue: str, worker: str | None, max_attempts: int, now: datetime
) -> bool:
    """Mark a runnable job started and count the attempt; False when no runnable row matched."""
    started = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.not_in(TERMINAL_STATES), Job.attempts < max_attempts)
        .values(
            state=JobState.STARTED,
            attempts=Job.attempts + 1,
            worker=worker,
            queue=queue,
            started_at=now,
            finished_at=None,
            updated_at=now,
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).first()
    return started is not None


def _begin_slow(
    job_id: str,
    *,
    task: str,
    queue: str,
    worker: str | None,
    args: dict[str, Any],
    max_attempts: int,
    now: datetime,
) -> bool:
    """The row is missing, finished, cancelled or out of attempts: settle which."""
    job = db.session.get(Job, job_id, with_for_update=True)
    if job is None:
        job = Job(
            id=job_id,
            task=task,
            queue=queue,
            args=args,
            state=JobState.STARTED,
            attempts=1,
            worker=worker,
            started_at=now,
        )
        db.session.add(job)
        try:
            db.session.commit()
        except IntegrityError:
            # Another delivery of the same message created the row first.
            db.session.rollback()
            return False
        return True
    if job.state.terminal:
        db.session.rollback()
        return False
    if job.attempts >= max_attempts:
        job.state = JobState.FAILED
        job.error_type = "TooManyAttempts"
        job.error_message = (
            f"job was delivered {job.attempts} times without finishing (its worker died or it "
            "kept failing); not running it again. Fix the cause and POST /jobs/{id}/retry."
        )
        job.finished_at = now
        db.session.commit()
        return False
    # The row changed between the two statements (a retry re-queued it); we hold its lock now.
    started = _start(job_id, queue=queue, worker=worker, max_attempts=max_attempts, now=now)
    db.session.commit()
    return started


def record_progress(job_id: str, current: int, total: int | None, message: str | None) -> bool:
    """Store progress; returns True when cancellation has been requested for the job."""
    db.session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            progress_current=current,
            progress_total=total,
            progress_message=message[:500] if message else None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    requested = db.session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id))
    db.session.commit()
    return requested is not None


def cancel_requested(job_id: str) -> bool:
    requested = db.session.scalar(select(Job.cancel_requested_at).where(Job.id == job_id))
    db.session.rollback()
    return requested is not None


def _finish(job_id: str, values: dict[str, Any]) -> None:
    db.session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def record_success(job_id: str, result: Any) -> None:
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        record_failure(job_id, TypeError(f"task returned a result that is not JSON: {exc}"))
        return
    _finish(
        job_id,
        {
            "state": JobState.SUCCEEDED,
            "result": result,
            "error_type": None,
            "error_message": None,
            "finished_at": utcnow(),
        },
    )


def record_failure(job_id: str, exc: BaseException) -> None:
    _finish(job_id, {"state": JobState.FAILED, "finished_at": utcnow(), **_error_fields(exc)})


def record_retry(job_id: str, exc: BaseException | None, eta: datetime | None) -> None:
    values: dict[str, Any] = {"state": JobState.RETRYING, "eta": eta}
    if exc is not None:
        values.update(_error_fields(exc))
    _finish(job_id, values)


def record_cancelled(job_id: str) -> None:
    _finish(job_id, {"state": JobState.CANCELLED, "finished_at": utcnow()})
