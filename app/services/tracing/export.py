"""A trace record as an OpenTelemetry span in the job's own trace (parented on its run span),
with `gen_ai.*` and Langfuse's `langfuse.*` attributes, sent by the official OTLP exporters.
Its ids derive from the record's random id: a retried export repeats the span, adds none.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import uuid
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk import trace as sdk
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from sqlalchemy.exc import IntegrityError

from app.extensions.ext_database import db
from app.models.trace import Trace
from app.observability import telemetry
from app.settings import reveal
from config import Settings


class ExportFailed(Exception):
    """Some sinks did not take the record: `args[0]` maps each to its error."""


class _RecordIds(sdk.id_generator.IdGenerator):
    def __init__(self, record: dict[str, Any]) -> None:
        self._id = uuid.UUID(record["id"]).int
        # A root span still belongs to the job's stored trace when it has one.
        self._trace_id = int(record["trace_id"], 16) if record.get("trace_id") else self._id

    def generate_span_id(self) -> int:
        return self._id & (2**64 - 1) or 1

    def generate_trace_id(self) -> int:
        return self._trace_id


def _nanos(value: str | None) -> int | None:
    return int(datetime.fromisoformat(value).timestamp() * 1e9) if value else None


def attributes(record: dict[str, Any]) -> dict[str, Any]:
    generation = bool(record.get("provider"))
    outputs = record["outputs"] if isinstance(record.get("outputs"), dict) else {}
    finish = [outputs["finish_reason"]] if outputs.get("finish_reason") else None
    values = {
        "tasklane.operation": record["operation"],
        "tasklane.job_id": record["job_id"],
        "tasklane.parent_job_id": record.get("parent_job_id"),
        "tasklane.status": record["status"],
        "tasklane.attempt": record.get("attempt"),
        "error.type": record.get("error_type"),
        "gen_ai.operation.name": "chat" if generation else None,
        "gen_ai.system": record.get("provider"),
        "gen_ai.request.model": record.get("model"),
        "gen_ai.usage.input_tokens": record.get("prompt_tokens"),
        "gen_ai.usage.output_tokens": record.get("completion_tokens"),
        "gen_ai.response.finish_reasons": finish,
        "langfuse.observation.type": "generation" if generation else "span",
        "langfuse.observation.input": json.dumps(record.get("inputs"), default=str),
        "langfuse.observation.output": json.dumps(record.get("outputs"), default=str),
        "langfuse.observation.level": "ERROR" if record.get("error_type") else None,
        "langfuse.observation.status_message": record.get("error_message"),
    }
    return {key: value for key, value in values.items() if value is not None}


def spans(record: dict[str, Any], settings: Settings) -> list[sdk.ReadableSpan]:
    """The record's span, finished: the SDK's span is what its exporters take."""
    # One provider per record, without the exit hook that would keep each one alive.
    resource, ids = telemetry.resource(settings, "ops-trace"), _RecordIds(record)
    provider = sdk.TracerProvider(ALWAYS_ON, resource, shutdown_on_exit=False, id_generator=ids)
    parent = None
    if record.get("trace_id") and record.get("parent_span_id"):
        run_ids = int(record["trace_id"], 16), int(record["parent_span_id"], 16)
        run = trace.SpanContext(*run_ids, is_remote=True, trace_flags=trace.TraceFlags(1))
        parent = trace.set_span_in_context(trace.NonRecordingSpan(run))
    generation = bool(record.get("provider"))
    span = provider.get_tracer("tasklane.ops_trace").start_span(
        f"chat {record.get('model')}" if generation else record["operation"],
        context=parent,
        kind=trace.SpanKind.CLIENT if generation else trace.SpanKind.INTERNAL,
        attributes=attributes(record),
        start_time=_nanos(record.get("started_at")),
    )
    if record["status"] == "succeeded":
        span.set_status(trace.Status(trace.StatusCode.OK))
    elif record.get("error_type"):
        span.set_status(trace.Status(trace.StatusCode.ERROR, record.get("error_message")))
    span.end(end_time=_nanos(record.get("finished_at")))
    return [span]  # type: ignore[list-item]


def store(record: dict[str, Any]) -> None:
    """The database sink: keep the record once (a redelivered one is ignored)."""
    values = {c.key: record[c.key] for c in Trace.__table__.columns if c.key in record}
    for key in ("started_at", "finished_at"):
        values[key] = datetime.fromisoformat(record[key]) if record.get(key) else None
    db.session.add(Trace(**values))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()


@functools.cache
def _exporter(protocol: str, url: str | None, auth: str, timeout: float, pid: int) -> SpanExporter:
    # One per process (its HTTP session never crosses a fork) and configuration.
    headers = {"Authorization": auth} if auth else None
    return telemetry.otlp_span_exporter(protocol, url, timeout=timeout, headers=headers)


def exporter(settings: Settings, sink: str) -> SpanExporter:
    tracing, timeout, pid = settings.tracing, settings.tracing.ship_timeout, os.getpid()
    if sink != "langfuse":
        return _exporter(
            settings.observability.otel_exporter, tracing.otlp_endpoint, "", timeout, pid
        )
    # Langfuse takes OTLP over HTTP, with the project's keys as basic auth.
    url = f"{(settings.tracing.langfuse_host or '').rstrip('/')}/api/public/otel/v1/traces"
    keys = f"{reveal(tracing.langfuse_public_key)}:{reveal(tracing.langfuse_secret_key)}"
    auth = "Basic " + base64.b64encode(keys.encode()).decode()
    return _exporter("otlp_http", url, auth, timeout, pid)


def ship(record: dict[str, Any], settings: Settings, sinks: list[str]) -> None:
    """Hand the record to each sink now; ExportFailed names the sinks that did not take it."""
    failures: dict[str, str] = {}
    finished = spans(record, settings)
    for sink in sinks:
        try:
            if sink == "database":
                store(record)
            elif exporter(settings, sink).export(finished) is not SpanExportResult.SUCCESS:
                failures[sink] = "the exporter gave up (its error is in the worker's log)"
        except Exception as exc:
            db.session.rollback()
            failures[sink] = f"{type(exc).__name__}: {exc}"[:300]
    if failures:
        raise ExportFailed(failures)
