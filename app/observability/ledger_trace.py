"""Stamp each new ledger row with the trace it was created in; span its plain-SQL submit.

A job submitted over REST gets the request's trace id (the same trace its task span joins);
a sub-task or periodic job that gets its row in the worker gets its task's trace id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace import format_trace_id
from sqlalchemy import event
from sqlalchemy.engine import Engine

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


@contextmanager
def statement_span(engine: Engine, operation: str, table: str, sql: str) -> Iterator[None]:
    """The client span SQLAlchemy's instrumentation would make, for a statement the ledger
    sends as plain SQL on the driver (the INSERT of POST /jobs). Only inside a recording
    span: an unsampled request pays one check."""
    if not trace.get_current_span().is_recording():
        yield
        return
    url = engine.url
    attributes: dict[str, str | int] = {
        "db.system": engine.dialect.name,
        "db.operation": operation,
        "db.statement": sql,
    }
    for name, value in (("db.name", url.database), ("net.peer.name", url.host)):
        if value:
            attributes[name] = value
    if url.port:
        attributes["net.peer.port"] = url.port
    tracer = trace.get_tracer(__name__)
    with tracer.start_as_current_span(
        f"{operation} {table}", kind=SpanKind.CLIENT, attributes=attributes
    ):
        yield
