"""Trace sinks: the database, an OTLP/HTTP collector (JSON spans), a Langfuse ingestion API."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError

from app.extensions.ext_database import db
from app.models.base import utcnow
from app.models.trace import Trace
from config import Settings

SERVICE_NAME = "tasklane"
MAX_ERROR_CHARS = 300


class SinkError(Exception):
    """A batch was not accepted; `retryable` says whether sending it again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def store(record: dict[str, Any]) -> bool:
    """The database sink: keep the record once (a redelivered one is ignored)."""
    columns = {c.key for c in Trace.__table__.columns}
    values = {k: v for k, v in record.items() if k in columns}
    values["started_at"] = _when(record.get("started_at"))
    values["finished_at"] = _when(record.get("finished_at"))
    db.session.add(Trace(**values))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


class HttpSink:
    """Posts JSON batches; 429, 5xx and connection errors are retryable, other 4xx are not."""

    name = ""

    def __init__(self, url: str, client: httpx.Client, headers: dict[str, str]) -> None:
        self.url = url
        self._client = client
        self._headers = {"Content-Type": "application/json", **headers}

    def encode(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, response: httpx.Response) -> None:
        """Raise SinkError when an accepted status still reports rejected records."""

    def send(self, batch: list[dict[str, Any]]) -> None:
        try:
            response = self._client.post(
                self.url, content=json.dumps(self.encode(batch)), headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise SinkError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if response.status_code >= 400:
            retryable = response.status_code == 429 or response.status_code >= 500
            raise SinkError(
                f"HTTP {response.status_code}: {response.text[:MAX_ERROR_CHARS]}",
                retryable=retryable,
            )
        self.check(response)


def _hex_id(value: str, chars: int) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:chars]


def _nanos(value: str | None) -> str:
    when = _when(value) or utcnow()
    return str(int(when.timestamp() * 1_000_000_000))


def _attribute(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        # OTLP/JSON writes 64-bit integers as strings.
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if not isinstance(value, str):
        value = json.dumps(value)
    return {"key": key, "value": {"stringValue": value}}


OTLP_STATUS = {"succeeded": 1, "failed": 2, "retrying": 2}
SPAN_KIND_INTERNAL = 1
SPAN_KIND_CLIENT = 3


class OtlpSink(HttpSink):
    """OTLP/HTTP with JSON encoding: one span per record, a job tree shares one trace id."""

    name = "otlp"

    def span(self, record: dict[str, Any]) -> dict[str, Any]:
        root = record.get("parent_job_id") or record.get("job_id") or record["id"]
        attributes = {
            "tasklane.job_id": record.get("job_id"),
            "tasklane.parent_job_id": record.get("parent_job_id"),
            "tasklane.status": record["status"],
            "tasklane.attempt": record.get("attempt"),
            "tasklane.latency_ms": record.get("latency_ms"),
            "tasklane.inputs": record.get("inputs"),
            "tasklane.outputs": record.get("outputs"),
            "gen_ai.system": record.get("provider"),
            "gen_ai.request.model": record.get("model"),
            "gen_ai.usage.input_tokens": record.get("prompt_tokens"),
            "gen_ai.usage.output_tokens": record.get("completion_tokens"),
            "error.type": record.get("error_type"),
        }
        status: dict[str, Any] = {"code": OTLP_STATUS.get(record["status"], 0)}
        if record.get("error_message"):
            status["message"] = record["error_message"]
        return {
            "traceId": _hex_id(root, 32),
            "spanId": _hex_id(record["id"], 16),
            "name": record["operation"],
            "kind": SPAN_KIND_CLIENT if record.get("provider") else SPAN_KIND_INTERNAL,
            "startTimeUnixNano": _nanos(record.get("started_at")),
            "endTimeUnixNano": _nanos(record.get("finished_at")),
            "attributes": [_attribute(k, v) for k, v in attributes.items() if v is not None],
            "status": status,
        }

    def encode(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "resourceSpans": [
                {
                    "resource": {"attributes": [_attribute("service.name", SERVICE_NAME)]},
                    "scopeSpans": [
                        {
                            "scope": {"name": "tasklane.ops_trace"},
                            "spans": [self.span(record) for record in batch],
                        }
                    ],
                }
            ]
        }


class LangfuseSink(HttpSink):
    """Langfuse's batch ingestion API: a trace per job tree, a generation or span per record."""

    name = "langfuse"

    def events(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        now = utcnow().isoformat()
        trace_id = record.get("parent_job_id") or record.get("job_id") or record["id"]
        metadata = {
            "job_id": record.get("job_id"),
            "parent_job_id": record.get("parent_job_id"),
            "status": record["status"],
            "attempt": record.get("attempt"),
            "error_type": record.get("error_type"),
        }
        observation: dict[str, Any] = {
            "id": record["id"],
            "traceId": trace_id,
            "name": record["operation"],
            "startTime": record.get("started_at"),
            "endTime": record.get("finished_at"),
            "input": record.get("inputs"),
            "output": record.get("outputs"),
            "metadata": metadata,
            "level": "ERROR" if record["status"] in ("failed", "retrying") else "DEFAULT",
            "statusMessage": record.get("error_message"),
        }
        events = []
        if not record.get("parent_job_id"):
            trace = {"id": trace_id, "name": record["operation"], "metadata": metadata}
            events.append(self._event("trace-create", trace, now))
        if record.get("provider"):
            prompt = record.get("prompt_tokens") or 0
            completion = record.get("completion_tokens") or 0
            observation["model"] = record.get("model")
            observation["usage"] = {
                "input": prompt,
                "output": completion,
                "total": prompt + completion,
                "unit": "TOKENS",
            }
            events.append(self._event("generation-create", observation, now))
        else:
            events.append(self._event("span-create", observation, now))
        return events

    def _event(self, kind: str, body: dict[str, Any], now: str) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "timestamp": now, "type": kind, "body": body}

    def encode(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        return {"batch": [event for record in batch for event in self.events(record)]}

    def check(self, response: httpx.Response) -> None:
        # 207 Multi-Status: events can be refused one by one; those will not succeed later.
        try:
            errors = response.json().get("errors") or []
        except (ValueError, AttributeError):
            return
        if errors:
            raise SinkError(f"{len(errors)} events refused: {errors[:3]}", retryable=False)


def http_sinks(settings: Settings, client: httpx.Client) -> list[HttpSink]:
    """The HTTP sinks TRACE_SINKS names, configured from settings."""
    sinks: list[HttpSink] = []
    if "otlp" in settings.TRACE_SINKS and settings.TRACE_OTLP_ENDPOINT:
        sinks.append(OtlpSink(settings.TRACE_OTLP_ENDPOINT, client, {}))
    host = settings.TRACE_LANGFUSE_HOST
    public, secret = settings.TRACE_LANGFUSE_PUBLIC_KEY, settings.TRACE_LANGFUSE_SECRET_KEY
    if "langfuse" in settings.TRACE_SINKS and host and public and secret:
        token = base64.b64encode(f"{public}:{secret}".encode()).decode()
        url = host.rstrip("/") + "/api/public/ingestion"
        sinks.append(LangfuseSink(url, client, {"Authorization": f"Basic {token}"}))
    return sinks
