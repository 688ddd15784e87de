"""Worker-side transitions: a job row follows its task from start to its last state.

Each transition is one statement on PostgreSQL (two in one transaction on SQLite). The job
row holds the running attempt (number, worker, start); the statement that ends an attempt
writes its `job_attempts` row, except a success, whose attempt stays in the job row for
good. What an API reader sees is never older than the task's last transition.

On PostgreSQL the start and progress writes commit without waiting for the disk: if the
server crashes and loses one, the message is still unacknowledged, and the job's finish sets
the row right. The finish waits for the disk only with LEDGER_SYNCHRONOUS_COMMIT; by default
it is as durable as the Redis broker beside it (see the README's reliability section).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from datetime import timedelta
from typing import Any

from psycopg.types.json import Json
from sqlalchemy.engine import Engine

from app.ledger import core_statements as core
from app.ledger import leases
from app.ledger import notify
from app.ledger import starting
from app.ledger import statements as st
from app.ledger.execute import is_postgres
from app.ledger.execute import ledger_engine
from app.ledger.execute import run
from app.ledger.execute import run_sql
from app.ledger.execute import transaction
from app.ledger.states import OUTCOMES
from app.ledger.states import Transition as T
from app.ledger.states import target
from app.models.base import utcnow
from app.observability.redaction import redact
from config import current_settings

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000


def _error(exc: BaseException | None) -> tuple[str | None, str | None]:
    if exc is None:
        return None, None
    # The one redactor: a message quoting a secret setting or a credential is stored without it.
    return type(exc).__name__, redact(str(exc) or repr(exc))[:MAX_ERROR_CHARS]


def _lease_ttl() -> timedelta:
    return timedelta(seconds=current_settings().ledger.lease_ttl)


def begin_attempt(
    job_id: str,
    *,
    task: str,
    queue: str,
    worker: str | None,
    args: dict[str, Any],
    max_attempts: int,
) -> int | None:
    """Start the job's next attempt and take its lease; None means the task must not run.

    A job that is cancelled, finished, or running under a live lease (a duplicate or stale
    delivery) is never run; one whose lease expired (its worker died) is taken over as its
    next attempt. Jobs that did not come through the API (periodic jobs, sub-tasks) get
    their row here, with `max_attempts` from their task.
    """
    engine = ledger_engine()
    now = utcnow()
    start = starting.Start(job_id, task, queue, worker, args, max_attempts, now, now + _lease_ttl())
    if is_postgres(engine):
        row = run_sql(
            engine,
            st.PG_START,
            {
                "id": job_id,
                "worker": worker,
                "queue": queue,
                "now": now,
                "owner": start.owner,
                "lease": start.lease,
                # A start lost in a PostgreSQL crash lets a second delivery run the job as
                # the same attempt: LEDGER_SYNCHRONOUS_COMMIT makes starts durable too.
                "sync": "on" if current_settings().ledger.synchronous_commit else "off",
            },
        )
        number = row[0] if row else None
    else:
        with transaction(engine) as conn:
            number = starting.start_row(conn, start)
    if number is None:
        number = starting.begin_slow(engine, start)
    if number is not None:
        leases.hold(job_id)
        notify.publish(job_id, target(T.START), at=now)
    else:
        # Refused, or settled under the row lock (cancelled, out of attempts): re-read.
        notify.changed([job_id])
    return number


def record_progress(job_id: str, current: int, total: int | None, message: str | None) -> bool:
    """Store progress; returns True when cancellation has been requested for the job."""
    engine = ledger_engine()
    text = message[:500] if message else None
    now = utcnow()
    if is_postgres(engine):
        params = {"id": job_id, "current": current, "total": total, "message": text}
        row = run_sql(engine, st.PG_PROGRESS, {**params, "now": now, "sync": "off"})
        if row is not None:
            notify.publish(job_id, progress=notify.progress_body(current, total, text), at=now)
        return bool(row and row[0])
    found = run(
        engine,
        core.PROGRESS,
        {"p_id": job_id, "p_current": current, "p_total": total, "p_message": text, "p_now": now},
    )
    if found is not None:
        notify.publish(job_id, progress=notify.progress_body(current, total, text), at=now)
    return found is not None and found.cancel_requested_at is not None


def cancel_requested(job_id: str) -> bool:
    engine = ledger_engine()
    if is_postgres(engine):
        row = run_sql(engine, st.PG_CANCEL_REQUESTED, {"id": job_id})
        return bool(row and row[0])
    found = run(engine, core.CANCEL_REQUESTED, {"p_id": job_id})
    return found is not None and found.cancel_requested_at is not None


def _finish(
    transition: T,
    job_id: str,
    number: int | None,
    *,
    result: Any = None,
    exc: BaseException | None = None,
    eta: datetime | None = None,
) -> bool:
    """End the attempt `number` (None: the current one); False if the table refused it."""
    engine = ledger_engine()
    error_type, error_message = _error(exc)
    now = utcnow()
    if is_postgres(engine):
        durable = current_settings().ledger.synchronous_commit
        row = run_sql(
            engine,
            st.PG_FINISH[transition],
            {
                "id": job_id,
                "number": number,
                "now": now,
                "result": Json(result),
                "error_type": error_type,
                "error_message": error_message,
                "eta": eta,
                "sync": "on" if durable else "off",
            },
        )
        finished = row is not None
    else:
        with transaction(engine) as conn:
            found = conn.execute(
                core.FINISH[transition],
                {
                    "p_id": job_id,
                    "p_number": number,
                    "p_now": now,
                    "p_result": result,
                    "p_error_type": error_type,
                    "p_error_message": error_message,
                    "p_eta": eta,
                },
            ).first()
            if found is not None and transition in st.KEEPS_ATTEMPT_ROW:
                core.end_attempt(
                    conn,
                    job_id,
                    number=found.attempts,
                    worker=found.worker,
                    started_at=found.started_at,
                    now=now,
                    outcome=OUTCOMES[transition],
                    error_type=error_type,
                    error_message=error_message,
                )
        finished = found is not None
    leases.release(job_id)
    if finished:
        notify.publish(job_id, target(transition), at=now)
    if not finished:
        log.warning(
            "job %s: %s of attempt %s refused (the job is no longer this attempt's)",
            job_id,
            transition.value,
            number,
        )
    return finished


def record_success(job_id: str, result: Any, number: int | None = None) -> bool:
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        error = TypeError(f"task returned a result that is not JSON: {exc}")
        return record_failure(job_id, error, number)
    return _finish(T.SUCCEED, job_id, number, result=result)


def record_failure(job_id: str, exc: BaseException, number: int | None = None) -> bool:
    return _finish(T.FAIL, job_id, number, exc=exc)


def record_retry(
    job_id: str, exc: BaseException | None, eta: datetime | None, number: int | None = None
) -> bool:
    return _finish(T.RETRY_LATER, job_id, number, exc=exc, eta=eta)


def record_cancelled(job_id: str, number: int | None = None) -> bool:
    return _finish(T.CANCEL_RUNNING, job_id, number)


def record_sentry_event(engine: Engine, job_id: str, event_id: str) -> None:
    """Store the id of the Sentry error event a run ended with (any app context or none)."""
    run(engine, core.SENTRY_EVENT, {"p_id": job_id, "p_sentry_event_id": event_id})
