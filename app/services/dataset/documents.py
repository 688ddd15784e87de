"""Documents of a dataset: upload, status, pause, resume, reindex, remove.

Rows commit before any job is published; each job carries only the document id.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO
from typing import Any

from flask import current_app
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update

from app.extensions.ext_database import db
from app.models import Job
from app.models.base import new_id
from app.models.dataset import Document
from app.models.dataset import IndexingStatus
from app.models.dataset import Segment
from app.models.dataset import UploadBatch
from app.services import jobs
from app.services import tenancy
from app.services.dataset import datasets
from app.services.dataset import storage
from app.services.dataset.detect import detect
from app.services.dataset.errors import DocumentBusy
from app.services.dataset.errors import DocumentNotFound
from app.services.dataset.errors import FileTooLarge
from app.services.dataset.errors import InvalidUpload
from app.services.dataset.errors import UnsupportedFileType
from config import current_settings

log = logging.getLogger(__name__)

INDEX_TASK = "dataset.index_document"
REMOVE_TASK = "dataset.remove_document"
MAX_NAME = 255


@dataclass(frozen=True)
class Upload:
    name: str
    stream: IO[bytes]


def text_upload(name: str | None, text: str, number: int) -> Upload:
    """A raw text from a JSON body, stored like an uploaded file."""
    return Upload(name or f"text-{number}.txt", io.BytesIO(text.encode("utf-8")))


def _submit_job(
    task: str, document_id: str, api_key_id: int | None, idempotency_key: str | None = None
) -> Job:
    settings = current_settings()
    job, _created = jobs.submit(
        current_app.extensions["celery"],
        jobs.Submission(
            task=task,
            args={"document_id": document_id},
            api_key_id=api_key_id,
            # The dataset's project, even when an admin key of another project started it.
            project_id=tenancy.document_project(document_id),
            idempotency_key=idempotency_key,
        ),
        broker_timeout=settings.broker.submit_timeout,
    )
    return job


def _submit(task: str, document_id: str, api_key_id: int | None) -> Job:
    job = _submit_job(task, document_id, api_key_id)
    # The task claims the document itself too, so this only fills in what it may not have.
    db.session.execute(
        update(Document)
        .where(Document.id == document_id, Document.job_id.is_(None))
        .values(job_id=job.id)
    )
    db.session.commit()
    return job


def add(
    dataset_id: str,
    uploads: Sequence[Upload],
    *,
    api_key_id: int | None,
    notify_to: list[str] | None = None,
) -> tuple[UploadBatch, list[tuple[Document, str | None]]]:
    """Store the files, create one document per file and queue one job for each.

    `notify_to` is kept on the batch: its close job mails them once every document settled.
    """
    dataset = datasets.get(dataset_id)
    settings = current_settings()
    if not uploads:
        raise InvalidUpload("send at least one file (multipart field 'files') or text")
    if len(uploads) > settings.dataset.max_files_per_upload:
        raise InvalidUpload(
            f"{len(uploads)} files in one upload; at most "
            f"{settings.dataset.max_files_per_upload} (DATASET_MAX_FILES_PER_UPLOAD)"
        )
    batch = UploadBatch(id=new_id(), dataset_id=dataset.id, notify_to=notify_to or None)
    documents: list[Document] = []
    try:
        for upload in uploads:
            name = (upload.name or "unnamed").rsplit("/", 1)[-1][:MAX_NAME]
            document_id = new_id()
            size, checksum = storage.save_source(
                upload.stream,
                dataset.id,
                document_id,
                max_bytes=settings.dataset.max_file_bytes,
                name=name,
            )
            documents.append(
                Document(
                    id=document_id,
                    dataset_id=dataset.id,
                    batch_id=batch.id,
                    name=name,
                    file_type=_detect(dataset.id, document_id, name),
                    size=size,
                    checksum=checksum,
                )
            )
    except (FileTooLarge, UnsupportedFileType):
        for document in documents:
            storage.remove_document(dataset.id, document.id)
        raise
    db.session.add(batch)
    # No ORM relationship orders the inserts, so the batch row goes first explicitly.
    db.session.flush()
    db.session.add_all(documents)
    db.session.commit()
    return batch, _queue_all(batch, documents, api_key_id)


def _detect(dataset_id: str, document_id: str, name: str) -> str:
    try:
        return detect(storage.path(dataset_id, document_id, storage.SOURCE), name)
    except UnsupportedFileType:
        storage.remove_document(dataset_id, document_id)
        raise


def _queue_all(
    batch: UploadBatch, documents: list[Document], api_key_id: int | None
) -> list[tuple[Document, str | None]]:
    queued: list[tuple[Document, str | None]] = []
    # A broker outage refuses nothing: each job is queued and the outbox relay publishes it.
    for document in documents:
        job = _submit(INDEX_TASK, document.id, api_key_id)
        queued.append((document, job.id))
    return queued


def get(dataset_id: str, document_id: str) -> Document:
    document = db.session.get(Document, document_id)
    if document is None or document.dataset_id != dataset_id or document.removing:
        raise DocumentNotFound(f"no document {document_id!r} in dataset {dataset_id!r}")
    return document


def list_documents(
    dataset_id: str, *, limit: int, offset: int, status: str | None = None
) -> list[Document]:
    datasets.get(dataset_id)
    query = select(Document).where(Document.dataset_id == dataset_id, ~Document.removing)
    if status:
        query = query.where(Document.indexing_status == IndexingStatus(status))
    query = query.order_by(Document.created_at, Document.id).limit(limit).offset(offset)
    return list(db.session.scalars(query))


def describe(documents: Sequence[Document]) -> list[dict[str, Any]]:
    """Documents as the API shows them, with the state of the job working on each.

    `indexing_status` is derived from the job and the pipeline's own facts when the row
    loads (app/models/dataset.py), so the two never disagree. A document whose job died
    for good (hard time limit, too many redeliveries) shows as `error` with the job's
    reason, so nothing is ever stuck in a working state forever.
    """
    ids = [doc.job_id for doc in documents if doc.job_id]
    found = db.session.scalars(select(Job).where(Job.id.in_(ids))) if ids else None
    by_id = {job.id: job for job in found or ()}
    described = []
    for doc in documents:
        job = by_id.get(doc.job_id or "")
        status, error = doc.indexing_status.value, doc.error
        if error is None and job is not None and status == IndexingStatus.ERROR.value:
            # No error of the pipeline's own: its job ended without it.
            error = (
                f"its job {job.state.value}: {job.error_message or job.error_type or 'no reason'}"
                "; reindex the document to try again"
            )
        described.append(
            {
                "document": doc,
                "indexing_status": status,
                "error": error,
                "job_state": job.state.value if job else None,
            }
        )
    return described


def pause(dataset_id: str, document_id: str) -> Document:
    """Ask the running pipeline to stop before its next stage."""
    document = get(dataset_id, document_id)
    if document.indexing_status.settled:
        raise DocumentBusy(
            f"document is {document.indexing_status.value}; only waiting or running documents "
            "can be paused"
        )
    document.pause_requested = True
    db.session.commit()
    return document


def resume(dataset_id: str, document_id: str, *, api_key_id: int | None) -> Document:
    """Continue a paused document from the stage it stopped before."""
    document = get(dataset_id, document_id)
    if document.indexing_status != IndexingStatus.PAUSED:
        raise DocumentBusy(f"document is {document.indexing_status.value}, not paused")
    return _restart(document, document.resume_stage, api_key_id)


def reindex(dataset_id: str, document_id: str, *, api_key_id: int | None) -> Document:
    """Process the document again from its source; its old segments stay until the swap."""
    document = get(dataset_id, document_id)
    # The derived status already shows a document whose job died for good as `error`.
    if document.indexing_status not in (IndexingStatus.COMPLETED, IndexingStatus.ERROR):
        raise DocumentBusy(
            f"document is {document.indexing_status.value}; reindex a completed or "
            "failed document (pause first to stop a running one)"
        )
    return _restart(document, None, api_key_id)


def _restart(document: Document, stage: str | None, api_key_id: int | None) -> Document:
    # A new run: the outcome facts of the last one go, so the status is the new job's.
    document.resume_stage = stage
    document.pause_requested = False
    document.error = None
    document.error_at = None
    document.completed_at = None
    document.paused_at = None
    document.job_id = None
    batch_id = document.batch_id
    if batch_id is not None:
        # The upload is not finished while one of its documents runs again.
        db.session.execute(
            update(UploadBatch).where(UploadBatch.id == batch_id).values(finished_at=None)
        )
    db.session.commit()
    _submit(INDEX_TASK, document.id, api_key_id)
    db.session.refresh(document)
    return document


def remove(dataset_id: str, document_id: str, *, api_key_id: int | None) -> str:
    """Hide the document from retrieval now; a job deletes its segments and files."""
    document = get(dataset_id, document_id)
    document.removing = True
    # Hidden from the vector matrices other processes cache, in the same commit.
    datasets.bump_index_version(dataset_id)
    db.session.commit()
    return _submit_job(REMOVE_TASK, document.id, api_key_id, f"{REMOVE_TASK}:{document.id}").id


def purge(document_id: str) -> dict[str, Any]:
    """Delete a removed document's segments, row and files (the removal job's work)."""
    document = db.session.get(Document, document_id)
    if document is None:
        return {"document_id": document_id, "segments_deleted": 0}
    dataset_id, batch_id = document.dataset_id, document.batch_id
    # The index triggers (SQLite) and generated column (PostgreSQL) follow the rows.
    deleted = db.session.execute(delete(Segment).where(Segment.document_id == document_id))
    db.session.execute(delete(Document).where(Document.id == document_id))
    datasets.bump_index_version(dataset_id)
    db.session.commit()
    storage.remove_document(dataset_id, document_id)
    return {
        "document_id": document_id,
        "batch_id": batch_id,
        "segments_deleted": deleted.rowcount,  # type: ignore[attr-defined]
    }
