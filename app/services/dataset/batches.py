"""Upload batches: aggregate progress, and closing a batch once all its documents finished.

The close is decided in the database, not by a Celery chord: each document task, after its
final state has committed, checks whether any document of its batch is still unfinished,
and the one conditional UPDATE that flips `finished_at` wins. That survives redelivered and
killed tasks (a chord counter in the result backend does not) and needs no result backend.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from app.extensions.ext_database import db
from app.models import Job
from app.models.base import utcnow
from app.models.dataset import Document
from app.models.dataset import IndexingStatus
from app.models.dataset import UploadBatch
from app.services import jobs
from app.services import tenancy
from app.services.dataset.errors import BatchNotFound
from app.services.errors import JobError
from app.services.mail import notifications
from config import current_settings

log = logging.getLogger(__name__)

FINISHED = (IndexingStatus.COMPLETED, IndexingStatus.ERROR)
CLOSE_TASK = "dataset.close_batch"
# Failed documents listed in a batch's mail; the rest are at GET .../documents?status=error.
MAILED_ERRORS = 20


def close_key(batch_id: str) -> str:
    """The close job's idempotency key: one close job per batch, however often settled."""
    return f"{CLOSE_TASK}:{batch_id}"


def settle(batch_id: str | None) -> bool:
    """Close the batch if every document in it has finished; True if this call closed it."""
    if batch_id is None:
        return False
    unfinished = db.session.scalar(
        select(func.count())
        .select_from(Document)
        .where(Document.batch_id == batch_id, Document.indexing_status.not_in(FINISHED))
    )
    if unfinished:
        db.session.rollback()
        return False
    closed = db.session.execute(
        update(UploadBatch)
        .where(UploadBatch.id == batch_id, UploadBatch.finished_at.is_(None))
        .values(finished_at=utcnow())
    )
    db.session.commit()
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    settings = current_settings()
    jobs.submit(
        current_app.extensions["celery"],
        jobs.Submission(
            task=CLOSE_TASK,
            args={"batch_id": batch_id},
            idempotency_key=close_key(batch_id),
            project_id=tenancy.batch_project(batch_id),
        ),
        broker_timeout=settings.broker.submit_timeout,
    )
    return True


def on_batch_finished(batch_id: str) -> dict[str, Any]:
    """Extension point run once per batch after its last document finished.

    The summary becomes the close job's result; when the upload asked for `notify`, the
    job_finished mail reporting the batch is queued too (its id is in the result).
    """
    summary = progress(batch_id)
    counts: dict[str, int] = summary["counts"]
    log.info(
        "batch %s finished: %s completed, %s failed",
        batch_id,
        counts.get("completed", 0),
        counts.get("error", 0),
    )
    result: dict[str, Any] = {
        "batch_id": batch_id,
        "dataset_id": summary["dataset_id"],
        "counts": counts,
    }
    if summary["notify"]:
        result["mail_id"] = _notify(batch_id, summary)
    return result


def _notify(batch_id: str, summary: dict[str, Any]) -> str | None:
    """Queue the batch's job_finished mail; None when it could not be queued (logged)."""
    close_job = db.session.scalar(select(Job).where(Job.idempotency_key == close_key(batch_id)))
    if close_job is None:
        log.error("batch %s has no close job; its job_finished mail is not sent", batch_id)
        return None
    errors = [
        {"name": name, "error": error or ""}
        for name, error in db.session.execute(
            select(Document.name, Document.error)
            .where(
                Document.batch_id == batch_id,
                Document.indexing_status == IndexingStatus.ERROR,
            )
            .order_by(Document.created_at, Document.id)
            .limit(MAILED_ERRORS)
        )
    ]
    try:
        mail = notifications.notify_job_finished(
            current_app.extensions["celery"],
            close_job,
            list(summary["notify"]),
            batch=notifications.batch_context(summary, errors),
        )
    except (JobError, SQLAlchemyError):
        # The batch is closed and its documents are indexed; only the mail is lost.
        db.session.rollback()
        log.exception("batch %s closed but its job_finished mail could not be queued", batch_id)
        return None
    return mail.id


def progress(batch_id: str, dataset_id: str | None = None) -> dict[str, Any]:
    """Documents per status and segments done, for one upload."""
    batch = db.session.get(UploadBatch, batch_id)
    if batch is None or (dataset_id is not None and batch.dataset_id != dataset_id):
        raise BatchNotFound(f"no batch {batch_id!r} in this dataset")
    rows = db.session.execute(
        select(
            Document.indexing_status,
            func.count(),
            func.coalesce(func.sum(Document.segments_done), 0),
            func.coalesce(func.sum(Document.segment_count), 0),
        )
        .where(Document.batch_id == batch_id)
        .group_by(Document.indexing_status)
    ).all()
    counts: dict[str, int] = {}
    segments_done = segments_total = 0
    for status, count, done, seg_total in rows:
        counts[status.value] = int(count)
        segments_done += int(done or 0)
        segments_total += int(seg_total or 0)
    total = sum(counts.values())
    finished = sum(counts.get(status.value, 0) for status in FINISHED)
    return {
        "id": batch.id,
        "dataset_id": batch.dataset_id,
        "created_at": batch.created_at,
        "finished_at": batch.finished_at,
        "total_documents": total,
        "finished_documents": finished,
        "counts": counts,
        "segments_done": segments_done,
        "segments_total": segments_total,
        "notify": batch.notify_to,
    }
