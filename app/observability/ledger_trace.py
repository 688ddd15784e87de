"""Stamp each new ledger row with the trace it was created in.

A job submitted over REST gets the request's trace id (the same trace its task span joins);
a sub-task or periodic job that gets its row in the worker gets its task's trace id.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import format_trace_id
from sqlalchemy import event

from app.models import Job


def current_trace_id() -> str | None:
    """The id of the trace this code runs in, or None (OpenTelemetry off, no span)."""
    context = trace.get_current_span().get_span_context()
    return format_trace_id(context.trace_id) if context.is_valid else None


def _stamp(_mapper: Any, _connection: Any, job: Job) -> None:
    if job.trace_id is None:
        job.trace_id = current_trace_id()


def connect() -> None:
    if not event.contains(Job, "before_insert", _stamp):
        event.listen(Job, "before_insert", _stamp)
