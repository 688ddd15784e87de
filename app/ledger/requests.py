"""API-side transitions: submit, cancel and requeue, each on the caller's session.

They run in the caller's transaction, so a lane that writes its own row (a mail, a document)
and submits its job commits both, and the job's publish intent with them, at once.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy import update
from sqlalchemy.engine import Dialect
from sqlalchemy.engine import Engine
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.orm import scoped_session

from app.ledger import notify
from app.ledger.execute import is_postgres
from app.ledger.execute import once_more_if_dropped
from app.ledger.execute import run_sql
from app.ledger.states import TABLE
from app.ledger.states import Transition as T
from app.ledger.states import target
from app.models import Job
from app.models import JobState
from app.models.base import new_id
from app.models.base import utcnow
from app.models.job import DEFAULT_MAX_ATTEMPTS
from app.observability.ledger_trace import current_trace_id
from app.observability.ledger_trace import statement_span

AnySession = Session | scoped_session[Any]

# The fields a job's message is built from (app.ledger.publishing.publish).
MESSAGE_COLUMNS = (Job.id, Job.task, Job.queue, Job.args, Job.eta, Job.priority, Job.notify_to)


# One batch is one INSERT statement, so one transaction even on an autocommit engine
# (SQLAlchemy would otherwise split an executemany into pages of 1,000 rows).
MAX_ROWS_PER_INSERT = 5000


def create(session: AnySession, job: Job) -> Job:
    """INSERT the new `queued` job with its publish intent, and commit; one statement.

    `job` is transient and stays so: its every column is set here, so nothing reads it
    back from the database afterwards.
    """
    session.execute(insert(Job).values(_row(job)))
    session.commit()
    return job


def create_all(engine: Engine, jobs: Sequence[Job]) -> Sequence[Job]:
    """INSERT new `queued` jobs with their publish intents: one statement, all or none.

    On the ledger's engine (autocommitted on PostgreSQL), outside any session: the
    API's submit writes nothing else, so this is its only round trip. Raises
    IntegrityError when an idempotency key (or id) is taken; nothing is written then.
    """
    rows = [_row(job) for job in jobs]
    if len(rows) == 1 and is_postgres(engine):
        # The API's POST /jobs: SQLAlchemy's execution of a one-row INSERT (its context,
        # parameter handling, result) cost nearly as much CPU as the round trip (cProfile).
        sql, processors = _pg_insert(engine.dialect)
        row = rows[0]
        with statement_span(engine, "INSERT", "jobs", sql):
            run_sql(engine, sql, {k: (p(row[k]) if p else row[k]) for k, p in processors})
        return jobs
    create_rows(engine, rows)
    return jobs


def create_rows(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    """`create_all` for rows `completed` already (a batch builds no ORM objects)."""
    if len(rows) > MAX_ROWS_PER_INSERT:
        raise ValueError(f"at most {MAX_ROWS_PER_INSERT} jobs per INSERT")
    if not rows:
        # A batch whose every item replays an earlier job: nothing to write (an INSERT
        # without rows is an error to SQLAlchemy).
        return
    if is_postgres(engine):
        # The rows as one JSON document the server turns into records: through
        # SQLAlchemy's executemany, binding 1,000 rows' columns one by one cost the batch
        # more than the server's own work (cProfile). A key left out is NULL, as a null.
        document = [{k: v for k, v in row.items() if v is not None} for row in rows]
        with statement_span(engine, "INSERT", "jobs", PG_INSERT_MANY):
            run_sql(engine, PG_INSERT_MANY, {"rows": json.dumps(document, default=_json_value)})
        return

    def insert_rows() -> None:
        with engine.begin() as conn:
            options = conn.execution_options(insertmanyvalues_page_size=MAX_ROWS_PER_INSERT)
            options.execute(insert(Job), rows)

    # If a first try on a dropped connection did commit, the second clashes on the id; the
    # caller sees that.
    once_more_if_dropped(insert_rows)


_COLUMN_LIST = ", ".join(c.name for c in Job.__table__.columns)
# Every column of every row; `published_at` NULL is the rows' intent to publish.
PG_INSERT_MANY = (
    f"INSERT INTO jobs ({_COLUMN_LIST}) "
    f"SELECT {_COLUMN_LIST} FROM json_populate_recordset(NULL::jobs, %(rows)s::json)"
)


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value the batch INSERT knows")


Processor = Callable[[Any], Any] | None


@functools.lru_cache(maxsize=8)
def _pg_insert(dialect: Dialect) -> tuple[str, tuple[tuple[str, Processor], ...]]:
    """The one-row INSERT as SQLAlchemy compiles it, and each column's bind processor (its
    JSON and datetime handling), for plain execution on the driver (app.ledger.execute)."""
    sql = insert(Job).compile(dialect=dialect).string
    processors = tuple(
        (c.key, c.type.dialect_impl(dialect).bind_processor(dialect)) for c in Job.__table__.columns
    )
    return sql, processors


def completed(values: dict[str, Any]) -> dict[str, Any]:
    """A new job's row for its INSERT, from the values its submission set: every column,
    so nothing is read back."""
    row = dict.fromkeys(_KEYS)
    row.update(values)
    row["id"] = row["id"] or new_id()
    row["state"] = target(T.SUBMIT)
    row["attempts"] = 0
    row["max_attempts"] = row["max_attempts"] or DEFAULT_MAX_ATTEMPTS
    row["args"] = row["args"] or {}
    row["created_at"] = row["created_at"] or utcnow()
    row["updated_at"] = row["created_at"]
    # The ledger's Core INSERT fires no ORM event: stamp the submitting trace here.
    row["trace_id"] = row["trace_id"] or current_trace_id()
    # NULL: the intent to publish, in the row itself (app/ledger/outbox.py).
    row["published_at"] = None
    return row


def _row(job: Job) -> dict[str, Any]:
    """Complete `job` (transient) for its INSERT; its row."""
    # From the instance's dict: a column never set is not there, and is None in the row.
    values = job.__dict__
    row = completed({key: values[key] for key in _KEYS if key in values})
    for key in _COMPLETED:
        setattr(job, key, row[key])
    return row


_KEYS = tuple(c.key for c in Job.__table__.columns)
# What `completed` sets on every row.
_COMPLETED = (
    "id",
    "state",
    "attempts",
    "max_attempts",
    "args",
    "created_at",
    "updated_at",
    "trace_id",
    "published_at",
)
_MESSAGE_KEYS = tuple(c.key for c in MESSAGE_COLUMNS)


def message(job: Job) -> dict[str, Any]:
    """The fields of a new job's message; `job` as `_row` completed it (transient)."""
    return row_message(job.__dict__)


def row_message(row: dict[str, Any]) -> dict[str, Any]:
    """The fields of a new job's message, from its `completed` row."""
    return {key: row.get(key) for key in _MESSAGE_KEYS}


def _transition(
    session: AnySession,
    transition: T,
    job_id: str,
    returning: Sequence[Any],
    **values: Any,
) -> Row[Any] | None:
    """One UPDATE: the job takes `transition` (and `values`) if the table allows it from
    the state it is in; the `returning` columns of the moved row, or None."""
    return session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(TABLE[transition].sources))
        .values(state=target(transition), **values)
        .returning(*returning)
    ).first()


def cancel(session: AnySession, job_id: str) -> JobState | None:
    """Cancel: a job not running is `cancelled` at once; a running one is asked to stop.

    Returns the state the job is left in, or None when the table refuses (finished, or no
    such job).
    """
    now = utcnow()
    done = _transition(
        session,
        T.CANCEL,
        job_id,
        (Job.id,),
        cancel_requested_at=now,
        finished_at=now,
        updated_at=now,
        # A cancelled job leaves the outbox: nothing is left to publish.
        published_at=now,
    )
    if done is None:
        # The running task sees this at its next progress report or cancellation check.
        done = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.STARTED)
            .values(cancel_requested_at=now, updated_at=now)
            .returning(Job.id)
        ).first()
        state = JobState.STARTED
    else:
        state = target(T.CANCEL)
    session.commit()
    if done is not None and state == JobState.CANCELLED:
        notify.publish(job_id, state, at=now)
    return state if done is not None else None


def requeue(session: AnySession, job_id: str, budget: int) -> dict[str, Any] | None:
    """A failed or cancelled job goes back to `queued` with `budget` more attempts.

    Returns the job's message fields, or None when the table refuses.
    """
    now = utcnow()
    row = _transition(
        session,
        T.REQUEUE,
        job_id,
        MESSAGE_COLUMNS,
        max_attempts=Job.attempts + max(1, budget),
        cancel_requested_at=None,
        finished_at=None,
        eta=None,
        published_at=None,
        updated_at=now,
    )
    session.commit()
    if row is not None:
        notify.publish(job_id, target(T.REQUEUE), at=now)
    return dict(row._mapping) if row is not None else None
