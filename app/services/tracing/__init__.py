"""Operation traces: recorded as a traced job's attempt ends, shipped from the ops_trace queue.

`hand_off`, an after-run hook, builds the record from the hook's context alone (job id, run
span, task name, outcome, timings, the task's result and what the lane `note`d), with no
re-read, and publishes it as a plain Celery message with no ledger row (tasks/ops_trace.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC
from datetime import datetime
from typing import Any

from celery import current_task
from flask import current_app
from opentelemetry import trace

from app.extensions.ext_database import db
from app.hooks import Outcome
from app.services.tracing import export
from app.services.tracing.redact import clean
from app.tasking import ATTEMPT
from app.tasking import STARTED
from app.tasking import jsonable_args
from config import current_settings

log = logging.getLogger(__name__)

# A trace is not worth holding up the worker for long (about 1 s) when the broker is away.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
PUBLISH = {"queue": "ops_trace", "retry": True, "retry_policy": PUBLISH_RETRY}
DETAILS = ("provider", "model", "prompt_tokens", "completion_tokens", "latency_ms", "inputs")
# Where `note` keeps what the lane adds, on the run's Celery request (one per greenlet).
NOTES = "tasklane_trace_notes"


def note(**details: Any) -> None:
    """Add what only the lane knows (DETAILS, outputs) to the trace of the running task."""
    request = getattr(current_task, "request", None)
    if request is not None and not request.called_directly:
        setattr(request, NOTES, {**(getattr(request, NOTES, None) or {}), **details})


def _from_result(result: Any) -> dict[str, Any]:
    # A lane's result in the gen_ai shape (usage, latency_ms) gives the trace its figures.
    if not isinstance(result, dict):
        return {}
    usage = result["usage"] if isinstance(result.get("usage"), dict) else {}
    found = {k: result.get(k) for k in ("provider", "model", "latency_ms")}
    found.update({k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")})
    return {k: v for k, v in found.items() if v is not None}


def build(outcome: Outcome, *, max_chars: int) -> dict[str, Any]:
    """The record of the attempt that just ended, from the hook's context only."""
    request = outcome.task.request
    started, finished = getattr(request, STARTED, None), time.time()
    run = trace.get_current_span().get_span_context()
    exc = outcome.exception
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "operation": outcome.task.name,
        "status": outcome.state.value,
        "job_id": outcome.job_id,
        "parent_job_id": request.parent_id,
        "attempt": getattr(request, ATTEMPT, None),
        "inputs": jsonable_args(tuple(request.args or ()), dict(request.kwargs or {})),
        "outputs": outcome.result,
        "error_type": type(exc).__name__ if exc is not None else None,
        "error_message": (str(exc) or repr(exc)) if exc is not None else None,
        "latency_ms": (finished - started) * 1000 if started else None,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat() if started else None,
        "finished_at": datetime.fromtimestamp(finished, UTC).isoformat(),
        # The run span continues the trace the job's message carried and its row stores.
        "trace_id": trace.format_trace_id(run.trace_id) if run.is_valid else None,
        "parent_span_id": trace.format_span_id(run.span_id) if run.is_valid else None,
    }
    record.update(_from_result(outcome.result))
    notes = (getattr(request, NOTES, None) or {}).items()
    record.update({k: v for k, v in notes if k in (*DETAILS, "outputs")})
    for key in ("inputs", "outputs", "error_message"):
        if record[key] is not None:
            # The one redactor: everything that leaves Tasklane as a trace passes here.
            record[key] = clean(record[key], max_chars=max_chars)
    return record


def hand_off(outcome: Outcome) -> bool:
    """Publish the trace of the attempt that just ended; False if not sent, never raises."""
    settings = current_settings()
    if not settings.tracing.sinks:
        return False
    record = None
    try:
        record = build(outcome, max_chars=settings.tracing.max_field_chars)
        celery_app = current_app.extensions["celery"]
        celery_app.send_task("ops_trace.ship", kwargs={"record": record}, **PUBLISH)
        return True
    except Exception as exc:
        # The traced job's outcome is recorded already; a lost trace must not change it.
        log.warning("trace of job %s not published (check the broker): %s", outcome.job_id, exc)
    if record is not None and "database" in settings.tracing.sinks:
        # The broker is away: keep the database sink's copy now, the other sinks miss it.
        try:
            db.session.rollback()
            export.store(record)
        except Exception as exc:
            log.warning("trace of job %s dropped: %s", outcome.job_id, exc)
    return False
