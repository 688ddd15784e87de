"""A trace record of one finished attempt of a traced job, built from its ledger row.

Operations can add what only they know (a generation's tokens, model and text) through
`register_details`; everything else comes from the ledger, so any task declared with
`traced=True` is traced without code of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from app.extensions.ext_database import db
from app.models import Job
from app.models.base import utcnow
from app.services.tracing.redact import clean

Details = Callable[[str], dict[str, Any]]

_details: dict[str, Details] = {}

FIELDS = (
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "inputs",
    "outputs",
)


def register_details(operation: str, details: Details) -> None:
    """`details(job_id)` returns extra fields (any of FIELDS) for traces of `operation`."""
    _details[operation] = details


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def build(job_id: str, operation: str, *, max_chars: int) -> dict[str, Any] | None:
    """The record for the job's latest attempt, or None when the job has no row."""
    job = db.session.get(Job, job_id, populate_existing=True)
    if job is None:
        db.session.rollback()
        return None
    finished = job.finished_at or utcnow()
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "operation": operation,
        "status": job.state.value,
        "job_id": job.id,
        "parent_job_id": job.parent_id,
        "attempt": job.attempts,
        "inputs": job.args,
        "outputs": job.result,
        "error_type": job.error_type,
        "error_message": job.error_message,
        "latency_ms": (finished - job.started_at).total_seconds() * 1000
        if job.started_at
        else None,
        "provider": None,
        "model": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "started_at": _iso(job.started_at),
        "finished_at": _iso(finished),
    }
    details = _details.get(operation)
    if details is not None:
        record.update({k: v for k, v in details(job_id).items() if k in FIELDS})
    db.session.rollback()
    record["inputs"] = clean(record["inputs"], max_chars=max_chars)
    record["outputs"] = clean(record["outputs"], max_chars=max_chars)
    if record["error_message"]:
        record["error_message"] = clean(record["error_message"], max_chars=max_chars)
    return record
