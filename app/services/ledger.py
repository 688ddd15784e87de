"""Worker-side ledger transitions: a job row follows its task from start to its last state.

Each transition is one autocommitted statement on the ledger's own engine (no ORM session,
no pre-ping, statements built once; on PostgreSQL the start and the success are plain SQL on
the driver): one round trip per transition, because every job pays for these twice. What an
API reader sees is never older than the task's last transition.

On PostgreSQL the start and progress writes commit without waiting for the disk: if the
server crashes and loses one, the message is still unacknowledged, and the job's finish sets
the row right. The finish waits for the disk only with LEDGER_SYNCHRONOUS_COMMIT; by default
it is as durable as the Redis broker beside it (see the README's reliability section).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import Any

from flask import current_app
from psycopg.types.json import Json
from sqlalchemy import BindParameter
from sqlalchemy import Executable
from sqlalchemy import Row
from sqlalchemy import Update
from sqlalchemy import bindparam
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import IntegrityError

from app.extensions.ext_database import db
from app.models import TERMINAL_STATES
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from app.observability.redaction import redact

MAX_ERROR_CHARS = 4000


def _error_fields(exc: BaseException) -> dict[str, Any]:
    return {
        "error_type": type(exc).__name__,
        "error_message": redact(str(exc) or repr(exc))[:MAX_ERROR_CHARS],
    }


def _param(name: str) -> BindParameter[Any]:
    """A bound parameter typed like the column it stands for (`p_` keeps SET names free)."""
    return bindparam(f"p_{name}", type_=Job.__table__.c[name].type)


# Built once: building and cache-keying a statement costs more CPU than running it.
_START = (
    update(Job)
    .where(Job.id == _param("id"), Job.state.not_in(TERMINAL_STATES))
    .where(Job.attempts < bindparam("p_max_attempts"))
    .values(
        state=JobState.STARTED,
        attempts=Job.attempts + 1,
        worker=_param("worker"),
        queue=_param("queue"),
        started_at=_param("started_at"),
        finished_at=None,
        updated_at=_param("started_at"),
    )
    .returning(Job.id)
)
_PROGRESS = (
    update(Job)
    .where(Job.id == _param("id"))
    .values(
        progress_current=_param("progress_current"),
        progress_total=_param("progress_total"),
        progress_message=_param("progress_message"),
        updated_at=_param("updated_at"),
    )
    .returning(Job.cancel_requested_at)
)
_CANCEL_REQUESTED = select(Job.cancel_requested_at).where(Job.id == _param("id"))


# PostgreSQL runs the two statements every job pays for (its start, and its success) as plain
# SQL through the driver: the same UPDATEs as _START and _finish, without SQLAlchemy's per-call
# machinery, which cost as much CPU as the round trip itself (bench/throughput.py).
_TERMINAL = ", ".join(f"'{state.value}'" for state in sorted(TERMINAL_STATES))
# `p_sync` ('on' or 'off') is synchronous_commit for this statement's own transaction only.
_PG_SYNC = "set_config('synchronous_commit', %(p_sync)s, true) IS NOT NULL"
_PG_START = (
    f"UPDATE jobs SET state = '{JobState.STARTED.value}', attempts = attempts + 1, "
    "worker = %(p_worker)s, queue = %(p_queue)s, started_at = %(p_started_at)s, "
    "finished_at = NULL, updated_at = %(p_started_at)s "
    f"WHERE id = %(p_id)s AND state NOT IN ({_TERMINAL}) AND attempts < %(p_max_attempts)s "
    f"AND {_PG_SYNC} RETURNING id"
)
_PG_SUCCEED = (
    f"UPDATE jobs SET state = '{JobState.SUCCEEDED.value}', result = %(p_result)s, "
    "error_type = NULL, error_message = NULL, finished_at = %(p_now)s, updated_at = %(p_now)s "
    f"WHERE id = %(p_id)s AND {_PG_SYNC}"
)


@cache
def _finish_statement(columns: frozenset[str]) -> Update:
    return update(Job).where(Job.id == _param("id")).values({c: _param(c) for c in columns})


@cache
def _asynchronous_commit(statement: Update, dialect: str) -> Update:
    """`statement`, committed by PostgreSQL without waiting for the disk."""
    if dialect != "postgresql":
        return statement
    # set_config(..., is_local => true) lasts for this statement's own transaction only.
    return statement.where(func.set_config("synchronous_commit", "off", True).is_not(None))


def _run(statement: Executable, params: dict[str, Any], *, durable: bool = True) -> Row[Any] | None:
    """Execute one statement in its own transaction; its first row, if it returns rows.

    A connection the server dropped (a restart) fails its first statement and invalidates
    the pool; the statement then runs once more on a fresh connection.
    """
    engine = _ledger_engine()
    if not durable and isinstance(statement, Update):
        statement = _asynchronous_commit(statement, engine.dialect.name)
    for last_try in (False, True):
        try:
            with engine.connect() as conn:
                result = conn.execute(statement, params)
                return result.first() if result.returns_rows else None
        except DBAPIError as exc:
            if last_try or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _run_sql(engine: Engine, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """`_run` for plain SQL on the driver's connection; errors are SQLAlchemy's, as there."""
    for last_try in (False, True):
        conn = engine.raw_connection()
        try:
            cursor = conn.cursor()
            cursor.execute(sql, params)
            row: tuple[Any, ...] | None = cursor.fetchone() if cursor.description else None
            cursor.close()
            return row
        except engine.dialect.loaded_dbapi.Error as exc:
            dropped = engine.dialect.is_disconnect(exc, conn.dbapi_connection, None)
            if dropped:
                conn.invalidate(exc)
            if dropped and not last_try:
                continue
            raise DBAPIError.instance(
                sql,
                params,
                exc,
                engine.dialect.loaded_dbapi.Error,
                connection_invalidated=dropped,
                dialect=engine.dialect,
            ) from exc
        finally:
            conn.close()
    raise AssertionError("unreachable")


def _ledger_engine() -> Engine:
    engine: Engine = current_app.extensions["ledger_engine"]
    return engine


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
    params = _start_params(job_id, queue, worker, max_attempts, now)
    engine = _ledger_engine()
    # The common case in one round trip; the UPDATE locks the row against a concurrent cancel.
    if engine.dialect.name == "postgresql":
        started = _run_sql(engine, _PG_START, {**params, "p_sync": "off"}) is not None
    else:
        started = _run(_START, params, durable=False) is not None
    if started:
        return True
    return _begin_slow(
        job_id, task=task, queue=queue, worker=worker, args=args, max_attempts=max_attempts, now=now
    )


def _start_params(
    job_id: str, queue: str, worker: str | None, max_attempts: int, now: datetime
) -> dict[str, Any]:
    return {
        "p_id": job_id,
        "p_queue": queue,
        "p_worker": worker,
        "p_max_attempts": max_attempts,
        "p_started_at": now,
    }


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
    started = db.session.execute(_START, _start_params(job_id, queue, worker, max_attempts, now))
    db.session.commit()
    return started.first() is not None


def record_progress(job_id: str, current: int, total: int | None, message: str | None) -> bool:
    """Store progress; returns True when cancellation has been requested for the job."""
    params = {
        "p_id": job_id,
        "p_progress_current": current,
        "p_progress_total": total,
        "p_progress_message": message[:500] if message else None,
        "p_updated_at": utcnow(),
    }
    row = _run(_PROGRESS, params, durable=False)
    return row is not None and row.cancel_requested_at is not None


def cancel_requested(job_id: str) -> bool:
    row = _run(_CANCEL_REQUESTED, {"p_id": job_id})
    return row is not None and row.cancel_requested_at is not None


def _finish(job_id: str, values: dict[str, Any]) -> None:
    values["updated_at"] = utcnow()
    params = {f"p_{name}": value for name, value in values.items()}
    durable = current_app.config["SETTINGS"].LEDGER_SYNCHRONOUS_COMMIT
    _run(_finish_statement(frozenset(values)), {"p_id": job_id, **params}, durable=durable)


def record_success(job_id: str, result: Any) -> None:
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        record_failure(job_id, TypeError(f"task returned a result that is not JSON: {exc}"))
        return
    engine = _ledger_engine()
    if engine.dialect.name == "postgresql":
        durable = current_app.config["SETTINGS"].LEDGER_SYNCHRONOUS_COMMIT
        params = {"p_id": job_id, "p_result": Json(result), "p_now": utcnow()}
        _run_sql(engine, _PG_SUCCEED, {**params, "p_sync": "on" if durable else "off"})
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
