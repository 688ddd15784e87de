"""The ledger reads behind the dashboard's pages; every one walks an index, none scans a table.

Indexes they rely on (migration h1_dashboard_indexes): jobs (state, finished_at) for the
per-minute chart, jobs (state, task, error_type) for the failure groups, and
(created_at, id) on documents, mails and generations for their newest-first pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import Integer
from sqlalchemy import cast
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import tuple_

from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from app.models.dataset import Dataset
from app.models.dataset import Document
from app.models.generation import Generation
from app.models.mail import Mail
from app.services import pagination
from app.services.pagination import newest_first

PAGE_SIZE = 50
CHART_MINUTES = 60
# "Retry all in this group" retries at most this many jobs per click, so one request stays short.
RETRY_GROUP_LIMIT = 500


@dataclass(frozen=True)
class JobFilters:
    state: JobState | None = None
    queue: str | None = None
    task: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def jobs_page(
    filters: JobFilters, cursor: str | None, limit: int = PAGE_SIZE
) -> tuple[list[Job], str | None]:
    """Newest first, paged with the API's keyset cursors."""
    query = newest_first(Job)
    if filters.state:
        query = query.where(Job.state == filters.state)
    if filters.queue:
        query = query.where(Job.queue == filters.queue)
    if filters.task:
        query = query.where(Job.task == filters.task)
    if filters.since:
        query = query.where(Job.created_at >= filters.since)
    if filters.until:
        query = query.where(Job.created_at < filters.until)
    return pagination.page(query, Job.created_at, Job.id, limit=limit, cursor=cursor)


@dataclass(frozen=True)
class Attempt:
    number: int
    worker: str | None
    state: str
    error_type: str | None
    error_message: str | None
    started_at: datetime | None
    finished_at: datetime | None


def attempts(job: Job) -> list[Attempt]:
    """Every attempt of a job, oldest first: the ended ones' rows, then the running one."""
    return [
        Attempt(
            number=row.number,
            worker=row.worker,
            # A running attempt has no outcome yet: it is what the job's state says.
            state=row.outcome or job.state.value,
            error_type=row.error_type,
            error_message=row.error_message,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )
        for row in sorted(job.attempt_log, key=lambda row: row.number)
    ]


def _minute_bucket() -> ColumnElement[Any]:
    """Minutes since the epoch of finished_at, computed by the database."""
    if db.engine.dialect.name == "postgresql":
        return func.floor(func.extract("epoch", Job.finished_at) / 60)
    return cast(func.strftime("%s", Job.finished_at), Integer) / 60


@dataclass
class Throughput:
    minutes: list[int]  # epoch seconds of each minute's start, oldest first
    succeeded: list[int]
    failed: list[int]


def finished_per_minute(now: datetime | None = None, minutes: int = CHART_MINUTES) -> Throughput:
    """Jobs succeeded and failed in each of the last `minutes` minutes (index range scan)."""
    now = now or utcnow()
    end = int(now.timestamp()) // 60
    start = end - minutes + 1
    since = datetime.fromtimestamp(start * 60, UTC)
    bucket = _minute_bucket().label("minute")
    rows = db.session.execute(
        select(Job.state, bucket, func.count())
        .where(Job.state.in_([JobState.SUCCEEDED, JobState.FAILED]), Job.finished_at >= since)
        .group_by(Job.state, bucket)
    ).all()
    counts: dict[tuple[JobState, int], int] = {
        (state, int(minute)): count for state, minute, count in rows
    }
    span = range(start, end + 1)
    return Throughput(
        minutes=[m * 60 for m in span],
        succeeded=[counts.get((JobState.SUCCEEDED, m), 0) for m in span],
        failed=[counts.get((JobState.FAILED, m), 0) for m in span],
    )


def running_by_worker() -> dict[str, int]:
    rows = db.session.execute(
        select(Job.worker, func.count())
        .where(Job.state == JobState.STARTED, Job.worker.is_not(None))
        .group_by(Job.worker)
    ).all()
    return {str(worker): int(count) for worker, count in rows}


@dataclass(frozen=True)
class FailureGroup:
    task: str
    error_type: str | None
    count: int
    last_failed_at: datetime | None
    example_message: str | None


def failure_groups(limit: int = 100) -> list[FailureGroup]:
    """Failed jobs grouped by task and error type, biggest group first.

    Two statements whatever the number of groups: the counts (an index-only walk of
    ix_jobs_state_task_error_type) and then each group's latest message, looked up by its
    (task, error type, last finish) in the same index.
    """
    rows = db.session.execute(
        select(Job.task, Job.error_type, func.count(), func.max(Job.finished_at))
        .where(Job.state == JobState.FAILED)
        .group_by(Job.task, Job.error_type)
        .order_by(func.count().desc(), Job.task)
        .limit(limit)
    ).all()
    latest = [(task, kind, _aware(last)) for task, kind, _count, last in rows if kind and last]
    messages: dict[tuple[str, str | None], str | None] = {}
    if latest:
        found = db.session.execute(
            select(Job.task, Job.error_type, Job.error_message).where(
                Job.state == JobState.FAILED,
                tuple_(Job.task, Job.error_type, Job.finished_at).in_(latest),
            )
        ).all()
        messages = {(task, kind): message for task, kind, message in found}
    return [
        FailureGroup(
            task=task,
            error_type=kind,
            count=count,
            last_failed_at=_aware(last),
            example_message=messages.get((task, kind)) if kind else None,
        )
        for task, kind, count, last in rows
    ]


def _group_filter(task: str, error_type: str | None) -> list[ColumnElement[bool]]:
    matches_type = Job.error_type.is_(None) if error_type is None else Job.error_type == error_type
    return [Job.state == JobState.FAILED, Job.task == task, matches_type]


def failed_job_ids(task: str, error_type: str | None, limit: int = RETRY_GROUP_LIMIT) -> list[str]:
    return list(
        db.session.scalars(
            select(Job.id)
            .where(*_group_filter(task, error_type))
            .order_by(Job.finished_at.desc())
            .limit(limit)
        )
    )


def _aware(value: datetime | None) -> datetime | None:
    # Aggregates (max) bypass the column type, so SQLite hands back a naive string-parsed value.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def documents_page(cursor: str | None, limit: int = PAGE_SIZE) -> tuple[list[Any], str | None]:
    """Documents newest first, each with its dataset's name."""
    docs, next_cursor = pagination.page(
        newest_first(Document), Document.created_at, Document.id, limit=limit, cursor=cursor
    )
    rows = db.session.execute(
        select(Dataset.id, Dataset.name).where(Dataset.id.in_({d.dataset_id for d in docs}))
    )
    names = {dataset_id: name for dataset_id, name in rows}
    return [(doc, names.get(doc.dataset_id, "")) for doc in docs], next_cursor


def mails_page(cursor: str | None, limit: int = PAGE_SIZE) -> tuple[list[Mail], str | None]:
    return pagination.page(newest_first(Mail), Mail.created_at, Mail.id, limit=limit, cursor=cursor)


def generations_page(
    cursor: str | None, limit: int = PAGE_SIZE
) -> tuple[list[Generation], str | None]:
    return pagination.page(
        newest_first(Generation), Generation.created_at, Generation.id, limit=limit, cursor=cursor
    )


def age(since: datetime | None, now: datetime | None = None) -> timedelta | None:
    return (now or utcnow()) - since if since else None
