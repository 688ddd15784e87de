"""Trace records leave safe and small, as gen_ai spans in the job's trace, over real OTLP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.services.tracing import export
from app.services.tracing.redact import clean
from config import Settings
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.otlp_receiver import otlp_receiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
RUN_SPAN_ID = "00f067aa0ba902b7"
KEYS = ("pk-lf-unit", "sk-lf-unit")

RECORD: dict[str, Any] = {
    "id": "7a0c5c8e-3f1c-4d39-a9c4-4b0a0f7f5b11",
    "operation": "generation.complete",
    "status": "failed",
    "job_id": "job-1",
    "parent_job_id": "batch-1",
    "attempt": 2,
    "inputs": {"messages": [{"role": "user", "content": "hi"}]},
    "outputs": {"text": "partial", "finish_reason": "length"},
    "error_type": "ProviderTimeout",
    "error_message": "no complete answer within 1.0s",
    "latency_ms": 1000.5,
    "provider": "fake",
    "model": "gpt-test",
    "prompt_tokens": 3,
    "completion_tokens": 5,
    "started_at": "2026-01-01T12:00:00+00:00",
    "finished_at": "2026-01-01T12:00:01+00:00",
    "trace_id": TRACE_ID,
    "parent_span_id": RUN_SPAN_ID,
}


def test_secrets_are_redacted_by_key_and_by_shape() -> None:
    cleaned = clean(
        {
            "api_key": "abc",
            "headers": {"Authorization": "Bearer abcdefghijkl"},
            "max_tokens": 100,
            "prompt": "key sk-abcdefghijklmnop, db postgres://app:hunter2@db/x",
        },
        max_chars=1000,
    )
    assert cleaned["api_key"] == "[REDACTED]"
    assert cleaned["headers"]["Authorization"] == "[REDACTED]"
    assert cleaned["max_tokens"] == 100  # a count, not a secret
    assert "sk-abcdef" not in cleaned["prompt"] and "hunter2" not in cleaned["prompt"]


def test_long_values_are_truncated_and_say_so() -> None:
    cleaned = clean({"text": "a" * 500, "items": list(range(80))}, max_chars=100)
    assert cleaned["text"] == "a" * 100 + "…[400 more chars]"
    assert len(cleaned["items"]) == 51 and cleaned["items"][-1] == "…30 more items"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture
def langfuse() -> Iterator[OtlpReceiver]:
    with otlp_receiver("/api/public/otel", auth=KEYS) as receiver:
        yield receiver


def _sinks(otlp: OtlpReceiver, langfuse: OtlpReceiver) -> Settings:
    return _settings(
        TRACE_SINKS="otlp,langfuse",
        TRACE_OTLP_ENDPOINT=otlp.endpoint + "/v1/traces",
        TRACE_LANGFUSE_HOST=langfuse.base_url + "/",
        TRACE_LANGFUSE_PUBLIC_KEY=KEYS[0],
        TRACE_LANGFUSE_SECRET_KEY=KEYS[1],
        # A sink that is down fails the export within this, and Celery retries later.
        TRACE_SHIP_TIMEOUT=0.3,
    )


def test_a_generation_becomes_a_gen_ai_span_of_the_jobs_trace_on_both_sinks(
    otlp: OtlpReceiver, langfuse: OtlpReceiver
) -> None:
    export.ship(RECORD, _sinks(otlp, langfuse), ["otlp", "langfuse"])

    [span] = otlp.of_job("job-1")
    assert (span.trace_id, span.parent_span_id) == (TRACE_ID, RUN_SPAN_ID)
    assert (span.name, span.kind) == ("chat gpt-test", 3)  # SPAN_KIND_CLIENT
    assert (span.status, span.status_message) == (2, "no complete answer within 1.0s")
    assert (span.start_ns, span.end_ns) == (1767268800 * 10**9, 1767268801 * 10**9)
    assert span.service == "tasklane-ops-trace"
    attributes = span.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.system"] == "fake"
    assert attributes["gen_ai.request.model"] == "gpt-test"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (
        3,
        5,
    )
    assert attributes["gen_ai.response.finish_reasons"] == ["length"]
    assert attributes["tasklane.parent_job_id"] == "batch-1"
    # Langfuse got the same span, as a generation it can show, through its basic auth.
    [seen] = langfuse.of_job("job-1")
    assert (seen.trace_id, seen.span_id) == (span.trace_id, span.span_id)
    assert seen.attributes["langfuse.observation.type"] == "generation"
    assert '"partial"' in seen.attributes["langfuse.observation.output"]


def test_a_retried_export_repeats_the_span_and_a_root_keeps_the_stored_trace(
    otlp: OtlpReceiver,
) -> None:
    root = {**RECORD, "parent_span_id": None, "provider": None, "status": "succeeded"}
    settings = _settings()
    [first] = export.spans(root, settings)
    [again] = export.spans(root, settings)
    assert first.context is not None and again.context is not None
    assert first.context.span_id == again.context.span_id
    assert format(first.context.trace_id, "032x") == TRACE_ID and first.parent is None
    assert first.name == "generation.complete"
    # No stored trace (OpenTelemetry off when the job was submitted): a trace of its own.
    [alone] = export.spans({**root, "trace_id": None}, settings)
    assert alone.context is not None
    assert format(alone.context.trace_id, "032x") == uuid.UUID(RECORD["id"]).hex


def test_a_sink_that_is_down_fails_the_export_and_only_it_is_named(
    otlp: OtlpReceiver, langfuse: OtlpReceiver
) -> None:
    langfuse.down = True
    with pytest.raises(export.ExportFailed) as failed:
        export.ship({**RECORD, "job_id": "job-down"}, _sinks(otlp, langfuse), ["otlp", "langfuse"])
    assert list(failed.value.args[0]) == ["langfuse"]
    assert langfuse.refused >= 1 and not langfuse.of_job("job-down")
    assert len(otlp.of_job("job-down")) == 1


def test_wrong_langfuse_keys_fail_the_export(otlp: OtlpReceiver, langfuse: OtlpReceiver) -> None:
    right = _sinks(otlp, langfuse)
    tracing = right.tracing.model_copy(update={"langfuse_secret_key": SecretStr("wrong")})
    settings = right.model_copy(update={"tracing": tracing})
    with pytest.raises(export.ExportFailed, match="langfuse"):
        export.ship({**RECORD, "job_id": "job-401"}, settings, ["langfuse"])
    assert not langfuse.of_job("job-401")


def test_an_otlp_sink_without_endpoint_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="TRACE_OTLP_ENDPOINT must be set"):
        _settings(TRACE_SINKS="otlp")


def test_the_otlp_sink_speaks_grpc_where_configured() -> None:
    settings = _settings(
        TRACE_SINKS="otlp", TRACE_OTLP_ENDPOINT="localhost:4317", OTEL_EXPORTER="otlp_grpc"
    )
    chosen = export.exporter(settings, "otlp")
    assert type(chosen).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
    # Langfuse takes OTLP over HTTP only, whatever the collector speaks.
    langfuse = export.exporter(
        settings.model_copy(
            update={
                "tracing": settings.tracing.model_copy(update={"langfuse_host": "http://lf:3000"})
            }
        ),
        "langfuse",
    )
    assert type(langfuse).__module__.startswith("opentelemetry.exporter.otlp.proto.http")
