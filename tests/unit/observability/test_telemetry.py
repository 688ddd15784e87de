"""Exporter and resource choices made from settings (no provider is installed here)."""

from __future__ import annotations

import os

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan
from opentelemetry.trace import SpanContext
from opentelemetry.trace import SpanKind
from opentelemetry.trace import TraceFlags
from opentelemetry.trace import set_span_in_context

from app.observability import telemetry
from app.observability.sampling import sampler
from config import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, OTEL_ENABLED=True, **values)  # type: ignore[arg-type]


def test_otlp_http_appends_the_signal_path_to_the_collector_url() -> None:
    chosen = settings(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318/")
    spans = telemetry.span_exporter(chosen)
    assert isinstance(spans, OTLPSpanExporter)
    assert spans._endpoint == "http://collector:4318/v1/traces"
    metrics = telemetry.metric_exporter(chosen)
    assert isinstance(metrics, OTLPMetricExporter)
    assert metrics._endpoint == "http://collector:4318/v1/metrics"


@pytest.mark.parametrize(
    ("exporter", "kind"), [("otlp_grpc", GrpcSpans), ("console", ConsoleSpanExporter)]
)
def test_other_exporters(exporter: str, kind: type) -> None:
    chosen = telemetry.span_exporter(
        settings(OTEL_EXPORTER=exporter, OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4317")
    )
    assert isinstance(chosen, kind)
    chosen.shutdown()


def test_resource_names_the_role_and_release() -> None:
    attributes = telemetry.resource(settings(SENTRY_RELEASE="tasklane@9.9"), "beat").attributes
    assert attributes["service.name"] == "tasklane-beat"
    assert attributes["service.version"] == "tasklane@9.9"
    assert attributes["process.pid"] == os.getpid()


def test_traces_start_at_requests_and_tasks_never_at_a_bare_client_call() -> None:
    chosen = sampler(1.0)
    assert chosen.should_sample(None, 1, "SELECT", SpanKind.CLIENT).decision == Decision.DROP
    for kind in (SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.PRODUCER):
        assert chosen.should_sample(None, 1, "x", kind).decision == Decision.RECORD_AND_SAMPLE
    # Inside a sampled trace a client call is kept, whatever the ratio for new traces.
    parent = SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    context = set_span_in_context(NonRecordingSpan(parent))
    decision = sampler(0.0).should_sample(context, 1, "SELECT", SpanKind.CLIENT).decision
    assert decision == Decision.RECORD_AND_SAMPLE
