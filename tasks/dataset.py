"""Dataset tasks on the `dataset` (prefork, CPU) queue: index, remove, close a batch."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from celery import Task

from app.services.dataset import batches
from app.services.dataset import documents
from app.services.dataset import ingestion
from app.services.dataset.errors import DocumentFailed
from app.tasking import ExpectedFailure
from app.tasking import job_task


def dataset_task(
    name: str, *, soft_time_limit: int, time_limit: int, **options: Any
) -> Callable[[Callable[..., Any]], Any]:
    """A job of the dataset lane: its queue, and no automatic retry (max_retries=0)."""
    return job_task(
        name,
        queue="dataset",
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
        max_retries=0,
        **options,
    )


@dataset_task("dataset.index_document", soft_time_limit=1800, time_limit=1860, traced=True)
def index_document(self: Task, document_id: str) -> dict[str, Any]:
    """Parse, clean, split and index one document; resumes at the stage it had reached."""

    def report(current: int, total: int | None, message: str) -> None:
        # The pid lets an operator (and the redelivery test) find the process doing the work.
        self.progress(current, total, f"{message} [pid {os.getpid()}]")

    try:
        return ingestion.process(document_id, self.request.id, report)
    except DocumentFailed as exc:
        # The document's own fault: it is marked `error` with this message already.
        raise ExpectedFailure(str(exc)) from exc


@dataset_task("dataset.remove_document", soft_time_limit=600, time_limit=660)
def remove_document(self: Task, document_id: str) -> dict[str, Any]:
    """Delete a removed document's segments, row and files."""
    return documents.purge(document_id)


@dataset_task("dataset.close_batch", soft_time_limit=60, time_limit=90)
def close_batch(self: Task, batch_id: str) -> dict[str, Any]:
    """Run the batch-finished hook once every document of an upload has finished."""
    return batches.on_batch_finished(batch_id)
