"""Operation traces: recorded as a traced job's attempt ends, shipped from the ops_trace queue.

`hand_off` runs after the ledger recorded the outcome, while the task's run span is current,
so the record names the trace and span to join; the `ops_trace.ship` job exports it off the
worker's hot path, survives a worker crash and is retried by Celery while a sink is down.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from flask import current_app
from opentelemetry import trace

from app.extensions.ext_database import db
from app.models import Job
from app.models.base import utcnow
from app.services import jobs
from app.services.jobs import Submission
from app.services.tracing.redact import clean
from config import current_settings

log = logging.getLogger(__name__)

SHIP_TASK = "ops_trace.ship"
# A trace is not worth holding up the worker for long when the broker is away.
PUBLISH_TIMEOUT = 1.0
DETAILS = ("provider", "model", "prompt_tokens", "completion_tokens", "latency_ms", "inputs")

_details: dict[str, Callable[[str], dict[str, Any]]] = {}


def register_details(operation: str, details: Callable[[str], dict[str, Any]]) -> None:
    """`details(job_id)` adds what only `operation` knows: DETAILS and outputs."""
    _details[operation] = details


def build(job_id: str, operation: str, *, max_chars: int) -> dict[str, Any] | None:
    """The record of the job's latest attempt, or None when the job has no row."""
    job = db.session.get(Job, job_id, populate_existing=True)
    if job is None:
        return None
    started, finished = job.started_at, job.finished_at or utcnow()
    run = trace.get_current_span().get_span_context()
    # Parent on the run span only when it is in the job's stored trace (or there is none).
    joins = run.is_valid and job.trace_id in (None, trace.format_trace_id(run.trace_id))
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
        "latency_ms": (finished - started).total_seconds() * 1000 if started else None,
        "started_at": started.isoformat() if started else None,
        "finished_at": finished.isoformat(),
        "trace_id": trace.format_trace_id(run.trace_id) if joins else job.trace_id,
        "parent_span_id": trace.format_span_id(run.span_id) if joins else None,
    }
    if operation in _details:
        extra = _details[operation](job_id).items()
        record.update({k: v for k, v in extra if k in (*DETAILS, "outputs")})
    for key in ("inputs", "outputs", "error_message"):
        if record[key] is not None:
            # The one redactor: everything that leaves Tasklane as a trace passes here.
            record[key] = clean(record[key], max_chars=max_chars)
    return record


def hand_off(job_id: str, operation: str) -> bool:
    """Queue the trace of the attempt of `job_id` that just ended; False if none, never raises."""
    settings = current_settings()
    if not settings.tracing.sinks:
        return False
    try:
        record = build(job_id, operation, max_chars=settings.tracing.max_field_chars)
        db.session.rollback()
        if record is None:
            return False
        ship = Submission(task=SHIP_TASK, args={"record": record})
        jobs.submit(current_app.extensions["celery"], ship, broker_timeout=PUBLISH_TIMEOUT)
        return True
    except Exception as exc:
        # The traced job's outcome is recorded already; a lost trace must not change it.
        db.session.rollback()
        log.warning("trace of job %s dropped (check the database and broker): %s", job_id, exc)
        return False
